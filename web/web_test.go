package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
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
	if b := body(t, res); !strings.Contains(b, `<script type="module" src="/js/app.js">`) {
		t.Errorf("index.html does not load the app module:\n%s", b)
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
