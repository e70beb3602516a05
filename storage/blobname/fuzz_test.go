package blobname

import (
	"mime"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzSafeFilename: whatever name a client gives an attachment, the
// download name is valid UTF-8, one path element without quotes,
// backslashes, control or format characters, not empty, not over the
// limit, stable when made safe again, and the Content-Disposition built
// from it parses back to it.
func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"report.pdf", "../../etc/passwd", "a\u202Egnp.exe", "\"quoted\".txt", "日本語.txt", "..", " . ", "\xff\xfe.png", strings.Repeat("é", 200) + ".jpeg"} {
		f.Add(s, "image/png")
		f.Add(s, "application/pdf")
	}
	f.Fuzz(func(t *testing.T, name, contentType string) {
		out := SafeFilename(name)
		switch {
		case out == "":
			t.Fatal("empty name")
		case !utf8.ValidString(out):
			t.Fatalf("%q: invalid UTF-8 %q", name, out)
		case len(out) > maxNameBytes:
			t.Fatalf("%q: %d bytes", name, len(out))
		case strings.ContainsAny(out, "/\\\""):
			t.Fatalf("%q: %q holds a separator or quote", name, out)
		case strings.IndexFunc(out, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0:
			t.Fatalf("%q: %q holds a control or format character", name, out)
		case SafeFilename(out) != out:
			t.Fatalf("%q: %q is not stable: %q", name, out, SafeFilename(out))
		}
		cd := ContentDisposition(contentType, out)
		kind, params, err := mime.ParseMediaType(cd)
		if err != nil {
			t.Fatalf("%q: Content-Disposition %q does not parse: %v", name, cd, err)
		}
		if want := map[bool]string{true: "inline", false: "attachment"}[IsInline(contentType)]; kind != want {
			t.Fatalf("%q as %q: %s, want %s", name, contentType, kind, want)
		}
		if params["filename"] != out {
			t.Fatalf("%q: Content-Disposition %q names %q, want %q", name, cd, params["filename"], out)
		}
	})
}

// FuzzCheckKey: an accepted key is a plain relative path below the
// objects folder.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"att/abc", "../x", "a//b", ".hidden", "a/./b", "/abs", "ok-key_1.bin", "a/..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if CheckKey(key) != nil {
			return
		}
		if strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") || strings.Contains(key, "..") || strings.Contains(key, "//") {
			t.Fatalf("key %q accepted", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg[0] == '.' || seg == "." {
				t.Fatalf("key %q accepted with element %q", key, seg)
			}
		}
	})
}
