// Package web serves Parley's browser client, which is embedded in the
// server binary so that `parley serve` needs no other files.
//
// Caching: the client has no build step, so the fingerprinting is done here,
// once, at start-up. Every file except index.html also answers under a
// fingerprinted name ("js/app.3f9c2a1b7d.js", from a hash of its bytes)
// with "Cache-Control: public, max-age=31536000, immutable". The ES modules'
// relative imports and index.html's src/href references are rewritten to
// those names, dependencies first, so a module's fingerprint covers the
// fingerprints of everything it imports: a change anywhere renames every
// module that (transitively) imports it, and a browser never mixes old and
// new modules. index.html, and every file under its plain name, is served
// with "Cache-Control: no-cache" and a strong ETag: revalidated on each load
// (a cheap 304), so an upgrade is seen on the next load.
//
// Compression: text files are sent with brotli or gzip, whichever the
// request's Accept-Encoding prefers (brotli first), compressed once on
// first use and kept in memory; each encoding has its own ETag, and every
// answer says "Vary: Accept-Encoding".
//
// Security: every answer carries a Content-Security-Policy that allows
// scripts, styles and connections only from the page's own origin (plus
// ws:/wss: for the realtime connection), no inline script or style, no
// plugins and no framing, and "X-Content-Type-Options: nosniff".
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
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
	root, err := fs.Sub(files, "static")
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err)) // cannot happen with a valid go:embed
	}
	h, err := newHandler(root, opts)
	if err != nil {
		panic(fmt.Sprintf("web: embedded files: %v", err))
	}
	return h
}

// immutable is the Cache-Control of a fingerprinted name: its bytes can
// never change, so browsers and proxies keep it for a year unasked.
const immutable = "public, max-age=31536000, immutable"

// newHandler builds the handler from the files of root (which must hold
// index.html).
func newHandler(root fs.FS, opts Options) (*handler, error) {
	h := &handler{assets: make(map[string]*asset), csp: contentSecurityPolicy(opts)}
	raw := make(map[string][]byte)
	err := fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		raw[name] = body
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := raw[clientModulePath]; !ok {
		raw[clientModulePath] = clientModule
	}
	if raw["index.html"] == nil {
		return nil, fmt.Errorf("no index.html")
	}
	fp := &fingerprinter{raw: raw, out: make(map[string][]byte), names: make(map[string]string), visiting: make(map[string]bool)}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fp.resolve(name)
	}
	for _, name := range names {
		body := fp.out[name]
		sum := sha256.Sum256(body)
		a := &asset{body: body, etag: hex.EncodeToString(sum[:12]), contentType: contentType(name)}
		a.compressible = compressible(a.contentType) && len(body) >= 256
		h.assets[name] = a
		if fpName := fp.names[name]; fpName != "" {
			h.fingerprinted = append(h.fingerprinted, fpName)
			h.assets[fpName] = &asset{body: body, etag: a.etag, contentType: a.contentType, compressible: a.compressible, immutable: true}
		}
	}
	return h, nil
}

// Import specifiers of ES modules that name another of the files, relative
// or from the root: `from "./x.js"`, `import "../x.js"`, `import("/js/x.js")`.
var importRE = regexp.MustCompile(`((?:\bfrom|\bimport)\s*\(?\s*)(["'])((?:\.{1,2})?/[^"'\s]+\.js)(["'])`)

// Root-relative src and href attributes of index.html.
var htmlRefRE = regexp.MustCompile(`(\s(?:src|href)=)"(/[^"?#]+)"`)

// fingerprinter rewrites references to fingerprinted names, dependencies
// before the files that refer to them.
type fingerprinter struct {
	raw      map[string][]byte // name → bytes as embedded
	out      map[string][]byte // name → bytes with references rewritten
	names    map[string]string // name → fingerprinted name ("" for index.html)
	visiting map[string]bool
}

func (f *fingerprinter) resolve(name string) {
	if _, done := f.out[name]; done {
		return
	}
	if f.visiting[name] { // an import cycle: that reference keeps the plain name
		return
	}
	f.visiting[name] = true
	defer delete(f.visiting, name)
	body := f.raw[name]
	switch {
	case strings.HasSuffix(name, ".js"):
		body = importRE.ReplaceAllFunc(body, func(m []byte) []byte {
			sub := importRE.FindSubmatch(m)
			if !bytes.Equal(sub[2], sub[4]) {
				return m
			}
			spec := string(sub[3])
			absolute := strings.HasPrefix(spec, "/")
			target := path.Join(path.Dir(name), spec)
			if absolute {
				target = strings.TrimPrefix(path.Clean(spec), "/")
			}
			if _, ok := f.raw[target]; !ok {
				return m
			}
			f.resolve(target)
			fpName := f.names[target]
			if fpName == "" {
				return m
			}
			newSpec := path.Join(path.Dir(spec), path.Base(fpName))
			if !absolute && !strings.HasPrefix(newSpec, ".") {
				newSpec = "./" + newSpec
			}
			return []byte(string(sub[1]) + string(sub[2]) + newSpec + string(sub[4]))
		})
	case name == "index.html":
		body = htmlRefRE.ReplaceAllFunc(body, func(m []byte) []byte {
			sub := htmlRefRE.FindSubmatch(m)
			target := strings.TrimPrefix(string(sub[2]), "/")
			if _, ok := f.raw[target]; !ok || target == "index.html" {
				return m
			}
			f.resolve(target)
			if f.names[target] == "" {
				return m
			}
			return []byte(string(sub[1]) + `"/` + f.names[target] + `"`)
		})
	}
	f.out[name] = body
	if name != "index.html" {
		sum := sha256.Sum256(body)
		ext := path.Ext(name)
		f.names[name] = strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:5]) + ext
	}
}

type asset struct {
	body         []byte
	etag         string // without quotes or encoding suffix
	contentType  string
	compressible bool
	immutable    bool
}

// encoded holds the brotli and gzip copies of one file's bytes, made on
// first use. Handlers share them through compressCache (keyed by the
// bytes' hash), so building another handler compresses nothing again.
type encoded struct {
	once sync.Once
	br   []byte // nil when not smaller than the file
	gz   []byte
}

var compressCache sync.Map // etag → *encoded

// compressed returns the brotli and gzip copies of a's bytes (nil for one
// that would not be smaller), compressing them on first use.
func (a *asset) compressed() (br, gz []byte) {
	v, _ := compressCache.LoadOrStore(a.etag, &encoded{})
	e := v.(*encoded)
	e.once.Do(func() {
		var b bytes.Buffer
		w := brotli.NewWriterLevel(&b, brotli.BestCompression)
		_, _ = w.Write(a.body) // writes to memory cannot fail
		_ = w.Close()
		if b.Len() < len(a.body) {
			e.br = bytes.Clone(b.Bytes())
		}
		b.Reset()
		z, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = z.Write(a.body)
		_ = z.Close()
		if b.Len() < len(a.body) {
			e.gz = bytes.Clone(b.Bytes())
		}
	})
	return e.br, e.gz
}

type handler struct {
	assets        map[string]*asset
	fingerprinted []string // the fingerprinted names, for tests
	csp           string
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
	if a.immutable {
		hdr.Set("Cache-Control", immutable)
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, a.etag
	if a.compressible {
		hdr.Add("Vary", "Accept-Encoding")
		var br, gz []byte
		if accept := r.Header.Get("Accept-Encoding"); negotiate(accept, true, true) != "" {
			br, gz = a.compressed()
		}
		switch negotiate(r.Header.Get("Accept-Encoding"), br != nil, gz != nil) {
		case "br":
			body, etag = br, etag+"-br"
			hdr.Set("Content-Encoding", "br")
		case "gzip":
			body, etag = gz, etag+"-gz"
			hdr.Set("Content-Encoding", "gzip")
		}
	}
	hdr.Set("ETag", `"`+etag+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// negotiate picks the content coding from an Accept-Encoding header: "br"
// when accepted (q > 0) and available, else "gzip", else "" (identity).
// "*" accepts any coding not named.
func negotiate(accept string, haveBr, haveGz bool) string {
	q := map[string]float64{}
	star := -1.0
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		coding := strings.ToLower(strings.TrimSpace(fields[0]))
		if coding == "" {
			continue
		}
		weight := 1.0
		for _, p := range fields[1:] {
			p = strings.TrimSpace(p)
			if v, ok := strings.CutPrefix(p, "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					weight = f
				}
			}
		}
		if coding == "*" {
			star = weight
			continue
		}
		q[coding] = weight
	}
	accepts := func(c string) bool {
		if w, ok := q[c]; ok {
			return w > 0
		}
		return star > 0
	}
	switch {
	case haveBr && accepts("br"):
		return "br"
	case haveGz && accepts("gzip"):
		return "gzip"
	}
	return ""
}

// compressible reports whether a content type is text that compresses.
func compressible(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "image/svg+xml") ||
		strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "application/manifest+json")
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
