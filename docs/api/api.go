// Package api holds Parley's API reference, openapi.yaml (REST, OpenAPI
// 3.1) and asyncapi.yaml (realtime frames, AsyncAPI 3), embedded so the
// server can serve them, and renders both as one HTML page for /docs.
//
// The page is built on the server from the embedded files: no script, no
// stylesheet or font from anywhere else, so it reads the same offline and
// behind a strict Content-Security-Policy.
package api

import (
	_ "embed"
	"net/http"
	"sync"
)

// OpenAPI is docs/api/openapi.yaml as built into the binary.
//
//go:embed openapi.yaml
var OpenAPI []byte

// AsyncAPI is docs/api/asyncapi.yaml as built into the binary.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte

// MountPath is where Handler expects to be mounted: it serves MountPath
// (the page), MountPath+"/openapi.yaml" and MountPath+"/asyncapi.yaml".
const MountPath = "/docs"

var (
	pageOnce sync.Once
	page     []byte
	pageErr  error
)

// Page returns the reference page, rendered once from the embedded files.
func Page() ([]byte, error) {
	pageOnce.Do(func() { page, pageErr = render(OpenAPI, AsyncAPI) })
	return page, pageErr
}

// Handler serves the reference page and both source files under
// MountPath. It needs no authentication: the reference is public, like the
// files in the repository. Methods other than GET and HEAD get 405.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var body []byte
		switch r.URL.Path {
		case MountPath, MountPath + "/":
			p, err := Page()
			if err != nil {
				http.Error(w, "the API reference does not render: "+err.Error(), http.StatusInternalServerError)
				return
			}
			body = p
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			// The page is self-contained; say so to the browser too.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
		case MountPath + "/openapi.yaml":
			body = OpenAPI
			w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		case MountPath + "/asyncapi.yaml":
			body = AsyncAPI
			w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}
