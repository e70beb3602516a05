package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/andybalholm/brotli"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self' ws: wss:",
		"img-src 'self' blob: data:", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
		if strings.Contains(csp, bad) {
			t.Errorf("Content-Security-Policy %q allows %q", csp, bad)
		}
	}
}

func TestIndexIsServedAtRootWithSecurityAndCacheHeaders(t *testing.T) {
	res := get(t, Handler(), http.MethodGet, "/", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	if res.Header.Get("ETag") == "" {
		t.Error("no ETag")
	}
	checkSecurityHeaders(t, res)
	if b := body(t, res); !regexp.MustCompile(`<script type="module" src="/js/app\.[0-9a-f]{10}\.js">`).MatchString(b) {
		t.Errorf("index.html does not load the fingerprinted app module:\n%s", b)
	}
}

func TestDeepLinksServeIndex(t *testing.T) {
	index := body(t, get(t, Handler(), http.MethodGet, "/", nil))
	for _, p := range []string{"/c/xyz", "/c/conv_01HZ", "/settings", "/index.html"} {
		res := get(t, Handler(), http.MethodGet, p, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", p, res.StatusCode)
			continue
		}
		if b := body(t, res); b != index {
			t.Errorf("%s: did not serve index.html", p)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control = %q", p, cc)
		}
		checkSecurityHeaders(t, res)
	}
}

func TestEveryJavaScriptModuleIsServedAsJavaScript(t *testing.T) {
	h := Handler()
	n := 0
	err := fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".js") {
			return err
		}
		n++
		p := strings.TrimPrefix(name, "static")
		res := get(t, h, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
			t.Errorf("%s: Content-Type = %q", p, ct)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control = %q", p, cc)
		}
		checkSecurityHeaders(t, res)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("found only %d JavaScript files", n)
	}
}

func TestStylesheetAndIconContentTypes(t *testing.T) {
	for p, want := range map[string]string{
		"/css/app.css":  "text/css; charset=utf-8",
		"/favicon.svg":  "image/svg+xml",
		"/index.html":   "text/html; charset=utf-8",
		"/js/app.js":    "text/javascript; charset=utf-8",
		"/c/abc/def?x=": "text/html; charset=utf-8",
	} {
		res := get(t, Handler(), http.MethodGet, p, nil)
		if ct := res.Header.Get("Content-Type"); ct != want {
			t.Errorf("%s: Content-Type = %q, want %q", p, ct, want)
		}
	}
}

func TestMissingAssetsAndAPIPathsAnswer404(t *testing.T) {
	for _, p := range []string{"/js/missing.js", "/css/nope.css", "/favicon.ico"} {
		res := get(t, Handler(), http.MethodGet, p, nil)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, res.StatusCode)
		}
		checkSecurityHeaders(t, res)
	}
	res := get(t, Handler(), http.MethodGet, "/v1/nope", nil)
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("/v1/nope: status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/v1/nope: Content-Type %q", ct)
	}
	if b := body(t, res); !strings.Contains(b, `"code":"not_found"`) {
		t.Errorf("/v1/nope: body %s", b)
	}
}

func TestConditionalRequestAnswers304(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/js/parley-client.js"} {
		etag := get(t, h, http.MethodGet, p, nil).Header.Get("ETag")
		res := get(t, h, http.MethodGet, p, map[string]string{"If-None-Match": etag})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match %s: status %d, want 304", p, etag, res.StatusCode)
		}
	}
}

func TestHeadIsAllowedAndOtherMethodsAre405(t *testing.T) {
	if res := get(t, Handler(), http.MethodHead, "/", nil); res.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: status %d", res.StatusCode)
	}
	res := get(t, Handler(), http.MethodPost, "/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: status %d", res.StatusCode)
	}
	if allow := res.Header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow = %q", allow)
	}
}

func TestMediaOriginsWidenOnlyConnectAndImageSources(t *testing.T) {
	h := NewHandler(Options{MediaOrigins: []string{"https://s3.example.com", "bad origin; script-src *"}})
	csp := get(t, h, http.MethodGet, "/", nil).Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' ws: wss: https://s3.example.com") ||
		!strings.Contains(csp, "img-src 'self' blob: data: https://s3.example.com") {
		t.Errorf("CSP %q lacks the media origin", csp)
	}
	if strings.Contains(csp, "script-src *") || strings.Contains(csp, "bad origin") {
		t.Errorf("CSP %q took an invalid origin", csp)
	}
	if !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("CSP %q changed script-src", csp)
	}
}

// The CSP forbids inline scripts; the static files must not need them.
func TestStaticFilesUseNoInlineScriptsOrHandlers(t *testing.T) {
	inlineHandler := regexp.MustCompile(`(?i)<[^>]+\son[a-z]+\s*=`)
	scriptTag := regexp.MustCompile(`(?i)<script\b[^>]*>`)
	err := fs.WalkDir(files, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".html") {
			return err
		}
		b, _ := fs.ReadFile(files, name)
		s := string(b)
		if inlineHandler.MatchString(s) {
			t.Errorf("%s has an inline event handler: %s", name, inlineHandler.FindString(s))
		}
		for _, tag := range scriptTag.FindAllString(s, -1) {
			if !strings.Contains(tag, "src=") {
				t.Errorf("%s has an inline script: %s", name, tag)
			}
		}
		if strings.Contains(s, "style=") || strings.Contains(s, "<style") {
			t.Errorf("%s has inline styles", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// innerHTML appears only in the highlight sanitizer, and the protocol module
// holds no DOM code, so other clients can read it as the reference client.
func TestInnerHTMLOnlyInSanitizerAndNoDOMInProtocolModule(t *testing.T) {
	err := fs.WalkDir(files, "static/js", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(files, name)
		s := string(b)
		if n := strings.Count(s, "innerHTML"); n > 0 && !(name == "static/js/ui/dom.js" && n == 1) {
			t.Errorf("%s uses innerHTML %d times", name, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range []string{"document.", "window.", "querySelector", "createElement", "innerHTML", "textContent"} {
		if strings.Contains(string(clientModule), dom) {
			t.Errorf("client/parley-client.js refers to the DOM (%s)", dom)
		}
	}
}

var fingerprintRE = regexp.MustCompile(`\.[0-9a-f]{10}\.(js|css|svg)$`)

// index.html names fingerprinted files; those answer as immutable, and the
// modules import each other by their fingerprinted names too, so a page
// loads nothing under a plain (revalidated) name except index.html itself.
func TestFingerprintedFilesAreImmutableAndImportEachOther(t *testing.T) {
	h := Handler()
	index := body(t, get(t, h, http.MethodGet, "/", nil))
	refs := regexp.MustCompile(`(?:src|href)="(/[^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html refers to %d files", len(refs))
	}
	queue := []string{}
	for _, r := range refs {
		if !fingerprintRE.MatchString(r[1]) {
			t.Errorf("index.html refers to %s, not a fingerprinted name", r[1])
		}
		queue = append(queue, r[1])
	}
	imports := regexp.MustCompile(`(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']`)
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		res := get(t, h, http.MethodGet, p, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", p, res.StatusCode)
			continue
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control = %q", p, cc)
		}
		checkSecurityHeaders(t, res)
		for _, m := range imports.FindAllStringSubmatch(body(t, res), -1) {
			target := path.Join(path.Dir(p), m[1])
			if !fingerprintRE.MatchString(target) {
				t.Errorf("%s imports %s by its plain name", p, m[1])
			}
			queue = append(queue, target)
		}
	}
	if len(seen) < 8 {
		t.Errorf("followed only %d files from index.html", len(seen))
	}
	// The plain names still answer (old pages, the service worker), revalidated.
	res := get(t, h, http.MethodGet, "/js/app.js", nil)
	if res.StatusCode != http.StatusOK || res.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("/js/app.js: status %d, Cache-Control %q", res.StatusCode, res.Header.Get("Cache-Control"))
	}
	if res := get(t, h, http.MethodGet, "/js/app.0123456789.js", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("a made-up fingerprint: status %d, want 404", res.StatusCode)
	}
}

// A change in a module renames it and every module that imports it (and
// index.html's reference), and nothing else.
func TestAChangedDependencyRenamesItsImporters(t *testing.T) {
	build := func(dep string) map[string]string {
		fsys := fstest.MapFS{
			"index.html":    {Data: []byte(`<link rel="stylesheet" href="/css/a.css"><script type="module" src="/js/app.js"></script>`)},
			"css/a.css":     {Data: []byte(`body{}`)},
			"js/app.js":     {Data: []byte(`import { x } from './ui/x.js'; import "./other.js"; x();`)},
			"js/ui/x.js":    {Data: []byte(`import { y } from '../util.js'; export const x = () => y;`)},
			"js/util.js":    {Data: []byte(dep)},
			"js/other.js":   {Data: []byte(`export {}; const later = () => import('/js/util.js');`)},
			"js/cycle-a.js": {Data: []byte(`import './cycle-b.js';`)},
			"js/cycle-b.js": {Data: []byte(`import './cycle-a.js';`)},
		}
		h, err := newHandler(fsys, Options{})
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]string{}
		for _, n := range h.fingerprinted {
			names[fingerprintRE.ReplaceAllString(n, ".$1")] = n
		}
		names["index"] = string(h.assets["index.html"].body)
		names["app-body"] = string(h.assets[names["js/app.js"]].body)
		names["other-body"] = string(h.assets[names["js/other.js"]].body)
		return names
	}
	v1, v2 := build(`export const y = 1;`), build(`export const y = 2;`)
	for _, changed := range []string{"js/util.js", "js/ui/x.js", "js/app.js", "js/other.js", "index"} {
		if v1[changed] == v2[changed] {
			t.Errorf("%s kept its name after util.js changed", changed)
		}
	}
	if !strings.Contains(v1["other-body"], "import('/"+v1["js/util.js"]+"')") {
		t.Errorf("a root-relative dynamic import not rewritten:\n%s", v1["other-body"])
	}
	for _, same := range []string{"css/a.css", "js/cycle-a.js"} {
		if v1[same] != v2[same] {
			t.Errorf("%s was renamed though it did not change", same)
		}
	}
	if !strings.Contains(v1["app-body"], "from './ui/"+path.Base(v1["js/ui/x.js"])+"'") ||
		!strings.Contains(v1["app-body"], `import "./`+path.Base(v1["js/other.js"])+`"`) {
		t.Errorf("app.js imports not rewritten:\n%s", v1["app-body"])
	}
	if !strings.Contains(v1["index"], `src="/`+v1["js/app.js"]+`"`) || !strings.Contains(v1["index"], `href="/`+v1["css/a.css"]+`"`) {
		t.Errorf("index.html references not rewritten:\n%s", v1["index"])
	}
}

// Text files go out with brotli or gzip as asked, each with its own ETag
// that revalidates; Vary names Accept-Encoding.
func TestCompressionNegotiatesBrotliThenGzip(t *testing.T) {
	h := Handler()
	plain := body(t, get(t, h, http.MethodGet, "/js/parley-client.js", nil))
	etags := map[string]string{}
	for _, tc := range []struct{ accept, want string }{
		{"gzip, deflate, br", "br"},
		{"br;q=0, gzip", "gzip"},
		{"gzip;q=0.5, br;q=0", "gzip"},
		{"", ""},
		{"identity", ""},
		{"*", "br"},
		{"*;q=0, gzip", "gzip"},
	} {
		res := get(t, h, http.MethodGet, "/js/parley-client.js", map[string]string{"Accept-Encoding": tc.accept})
		if got := res.Header.Get("Content-Encoding"); got != tc.want {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tc.accept, got, tc.want)
			continue
		}
		if v := res.Header.Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("Vary = %q", v)
		}
		raw, _ := io.ReadAll(res.Body)
		var r io.Reader = bytes.NewReader(raw)
		switch tc.want {
		case "br":
			r = brotli.NewReader(r)
		case "gzip":
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != plain {
			t.Errorf("Accept-Encoding %q: body does not decode to the file (%v)", tc.accept, err)
		}
		if tc.want != "" && len(raw) >= len(plain)/2 {
			t.Errorf("%s: %d bytes of %d, hardly compressed", tc.want, len(raw), len(plain))
		}
		etags[tc.want] = res.Header.Get("ETag")
		res = get(t, h, http.MethodGet, "/js/parley-client.js", map[string]string{"Accept-Encoding": tc.accept, "If-None-Match": etags[tc.want]})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("Accept-Encoding %q: revalidation status %d", tc.accept, res.StatusCode)
		}
	}
	if etags["br"] == etags["gzip"] || etags["br"] == etags[""] || etags["gzip"] == etags[""] {
		t.Errorf("encodings share ETags: %v", etags)
	}
	// index.html is compressed too, and still revalidated.
	res := get(t, h, http.MethodGet, "/", map[string]string{"Accept-Encoding": "br"})
	if res.Header.Get("Content-Encoding") != "br" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("/: Content-Encoding %q, Cache-Control %q", res.Header.Get("Content-Encoding"), res.Header.Get("Cache-Control"))
	}
}
