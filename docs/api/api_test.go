package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func serve(t *testing.T, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

// TestPageDocumentsEveryOperationAndFrame: /docs names every method and
// path of openapi.yaml and every message of asyncapi.yaml, each with an
// anchor a reader can link to.
func TestPageDocumentsEveryOperationAndFrame(t *testing.T) {
	res := serve(t, "GET", "/docs")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	page := string(body)
	var o struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(OpenAPI, &o); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for p, item := range o.Paths {
		for m := range item {
			if m == "parameters" {
				continue
			}
			ops++
			id := anchor("op-", strings.ToUpper(m)+p)
			if !strings.Contains(page, `id="`+id+`"`) || !strings.Contains(page, "<code>"+p+"</code>") {
				t.Errorf("page lacks %s %s (#%s)", strings.ToUpper(m), p, id)
			}
		}
	}
	var a struct {
		Components struct {
			Messages map[string]struct {
				Name string `yaml:"name"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(AsyncAPI, &a); err != nil {
		t.Fatal(err)
	}
	for key, m := range a.Components.Messages {
		if !strings.Contains(page, `id="`+anchor("msg-", key)+`"`) || !strings.Contains(page, "<code>"+m.Name+"</code>") {
			t.Errorf("page lacks frame %s", m.Name)
		}
	}
	if ops < 40 || len(a.Components.Messages) < 20 {
		t.Fatalf("only %d operations and %d frames read", ops, len(a.Components.Messages))
	}
	for _, want := range []string{"WebSocket close codes", "<code>4410</code>", `id="schema-Message"`, `id="schema-EventCommon"`, "next_after"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Every internal link lands on an anchor of the page.
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`id="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`href="#([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if !ids[m[1]] {
			t.Errorf("link to #%s, which the page lacks", m[1])
		}
	}
}

// TestPageLoadsNothingFromElsewhere: no script at all, and no stylesheet,
// image, font or frame from another origin; the CSP header says the same.
func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	res := serve(t, "GET", "/docs")
	body, _ := io.ReadAll(res.Body)
	page := strings.ToLower(string(body))
	for _, bad := range []string{"<script", "<link", "<iframe", "<img", "@import", "url(", `src="http`, "cdn"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestSourcesServedAsEmbedded(t *testing.T) {
	for path, want := range map[string][]byte{"/docs/openapi.yaml": OpenAPI, "/docs/asyncapi.yaml": AsyncAPI} {
		res := serve(t, "GET", path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || string(body) != string(want) {
			t.Errorf("GET %s: %d, %d bytes, want %d", path, res.StatusCode, len(body), len(want))
		}
	}
	if res := serve(t, "GET", "/docs/nothing"); res.StatusCode != 404 {
		t.Errorf("GET /docs/nothing: %d", res.StatusCode)
	}
	if res := serve(t, "POST", "/docs"); res.StatusCode != 405 || res.Header.Get("Allow") == "" {
		t.Errorf("POST /docs: %d", res.StatusCode)
	}
	if res := serve(t, "HEAD", "/docs"); res.StatusCode != 200 {
		t.Errorf("HEAD /docs: %d", res.StatusCode)
	}
}

// TestEscapesText: text from the files cannot inject markup.
func TestEscapesText(t *testing.T) {
	o := []byte("openapi: 3.1.0\ninfo: {title: '<script>x</script>', version: '1', description: 'a `<b>` c'}\npaths: {}\n")
	a := []byte("asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\n")
	b, err := render(o, a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "<script>") || strings.Contains(string(b), "<b>") {
		t.Fatalf("unescaped: %s", b)
	}
	if !strings.Contains(string(b), "<code>&lt;b&gt;</code>") {
		t.Fatal("code span lost")
	}
}
