package minio

import (
	"errors"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rules below are the embedded twin's (storage/fsblob): adapters never
// import each other, and both must accept the same keys and serve the same
// headers, or the contract suite tells them apart.

// Key limits: keys are server-made ids, so these are generous.
const (
	maxKeyLen     = 512
	maxSegmentLen = 200
	maxTypeLen    = 255
	maxNameBytes  = 180
)

// checkKey accepts keys of [A-Za-z0-9_./-] whose "/"-separated elements
// are non-empty and do not start with a dot. S3 would store stranger keys,
// but the embedded twin cannot, and the same key must work in both modes.
func checkKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return errors.New("key must be 1 to 512 characters")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '/', c == '-':
		default:
			return errors.New("key has a character outside [A-Za-z0-9_./-]")
		}
	}
	if strings.Contains(key, "..") {
		return errors.New("key must not contain ..")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return errors.New("key must not start or end with / or contain //")
		case seg[0] == '.':
			return errors.New("key elements must not start with a dot")
		case len(seg) > maxSegmentLen:
			return errors.New("key element is too long")
		}
	}
	return nil
}

// checkContentType accepts a media type, with optional parameters, made of
// printable ASCII, so it is safe to sign as a header and to echo as one.
func checkContentType(ct string) error {
	if ct == "" || len(ct) > maxTypeLen {
		return errors.New("content type must be 1 to 255 characters")
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] > 0x7e {
			return errors.New("content type must be printable ASCII")
		}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return errors.New("content type is not a media type")
	}
	return nil
}

// inlineTypes are shown by browsers in place; everything else downloads.
// SVG is absent on purpose: it can carry script.
var inlineTypes = map[string]bool{
	"image/png":  true,
	"image/jpeg": true,
	"image/gif":  true,
	"image/webp": true,
}

func isInline(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && inlineTypes[mt]
}

// safeFilename makes a client's file name safe to offer as a download
// name: only its last path element, without control or invisible format
// characters (such as right-to-left overrides), quotes or backslashes,
// without leading or trailing dots and spaces, at most maxNameBytes long
// (keeping a short extension), and never empty.
func safeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var sb strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			sb.WriteByte('_') // invalid UTF-8
		case r == '\t', unicode.In(r, unicode.Zl, unicode.Zp):
			sb.WriteByte(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		case r == '"', r == '\\':
			sb.WriteByte('_')
		case unicode.IsSpace(r):
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	name = strings.Trim(sb.String(), " .")
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		base := name[:len(name)-len(ext)]
		cut := maxNameBytes - len(ext)
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		name = strings.Trim(base[:cut], " .") + ext
	}
	if name == "" || strings.Trim(name, ".") == "" {
		return "download"
	}
	return name
}

// contentDisposition is the Content-Disposition of a download: inline for
// images, attachment otherwise, with name (already safe) as an ASCII
// fallback and, when it is not ASCII, as RFC 6266 filename* too.
func contentDisposition(contentType, name string) string {
	kind := "attachment"
	if isInline(contentType) {
		kind = "inline"
	}
	ascii := strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f {
			return r
		}
		return '_'
	}, name)
	v := kind + `; filename="` + ascii + `"`
	if ascii != name {
		v += "; filename*=UTF-8''" + encodeExtValue(name)
	}
	return v
}

// encodeExtValue percent-encodes s as an RFC 8187 ext-value: every byte
// but attr-char.
func encodeExtValue(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}
