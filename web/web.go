// Package web serves Parley's browser client, which is embedded in the
// server binary so that `parley serve` needs no other files.
//
// Caching: the client has no build step, so its files keep stable names
// (an ES module imports its siblings by name, and fingerprinting those names
// would need a bundler). Every file is therefore served with
// "Cache-Control: no-cache" and a strong ETag computed from its bytes at
// start-up: browsers keep a copy but revalidate it on each load, which costs
// one 304 per file and never serves a stale client after an upgrade.
//
// Security: every answer carries a Content-Security-Policy that allows
// scripts, styles and connections only from the page's own origin (plus
// ws:/wss: for the realtime connection), no inline script or style, no
// plugins and no framing, and "X-Content-Type-Options: nosniff".
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// The reference client is a package of its own (web/client: package.json,
// TypeScript declarations, README) that other web apps can use; the web
// client imports it from the URL it always had.
//
//go:embed client/parley-client.js
var clientModule []byte

// clientModulePath is where the web client (and anyone else) loads the
// reference client from the server.
const clientModulePath = "js/parley-client.js"

// Options adjusts the handler for deployments whose attachment URLs live on
// another origin.
type Options struct {
	// MediaOrigins are extra origins (for example "https://s3.example.com")
	// that the client may upload attachments to and load images from. In
	// embedded mode attachment URLs are on the server's own origin and this
	// stays empty; with S3-compatible storage its endpoint goes here.
	MediaOrigins []string
}

// Handler serves the embedded web client at "/" with the default Options.
func Handler() http.Handler { return NewHandler(Options{}) }

// NewHandler serves the embedded web client at "/". index.html answers "/"
// and any unknown path without a file extension (such as "/c/conv_1"), so
// that deep links into the single-page client work; unknown paths with an
// extension and API paths answer 404.
func NewHandler(opts Options) http.Handler {
	h := &handler{assets: make(map[string]*asset), csp: contentSecurityPolicy(opts)}
	root, err := fs.Sub(files, "static")
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err)) // cannot happen with a valid go:embed
	}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		h.assets[name] = &asset{
			body:        body,
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
			contentType: contentType(name),
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err))
	}
	sum := sha256.Sum256(clientModule)
	h.assets[clientModulePath] = &asset{
		body:        clientModule,
		etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		contentType: contentType(clientModulePath),
	}
	if h.assets["index.html"] == nil {
		panic("web: embedded files lack index.html")
	}
	return h
}

type asset struct {
	body        []byte
	etag        string
	contentType string
}

type handler struct {
	assets map[string]*asset
	csp    string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")

	if isAPIPath(r.URL.Path) {
		// The API router should have answered; if it did not, answer as the
		// API would rather than with the client's HTML.
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"code":"not_found","message":"no such endpoint","request_id":""}}`)
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	a := h.assets[name]
	if name == "" || strings.HasSuffix(r.URL.Path, "/") {
		a = h.assets["index.html"]
	}
	if a == nil {
		if path.Ext(name) != "" {
			http.NotFound(w, r)
			return
		}
		a = h.assets["index.html"] // a client-side route such as /c/{id}
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// isAPIPath reports whether p belongs to the server's API rather than to the
// client, so that a typo in an API path never answers 200 with HTML.
func isAPIPath(p string) bool {
	switch p {
	case "/healthz", "/readyz", "/metrics", "/v1":
		return true
	}
	return strings.HasPrefix(p, "/v1/")
}

func contentSecurityPolicy(opts Options) string {
	media := ""
	for _, o := range opts.MediaOrigins {
		if o = strings.TrimSpace(o); o != "" && !strings.ContainsAny(o, " ;,'\"") {
			media += " " + o
		}
	}
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"connect-src 'self' ws: wss:" + media,
		"img-src 'self' blob: data:" + media,
		"media-src 'self' blob:" + media,
		"font-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
}

// contentType names each file type the client ships, independently of the
// host's mime.types, which may map .js to a legacy type.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
