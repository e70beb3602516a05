package fsblob

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/storage/blobname"
)

// serve opens a Blobs on cfg (in a new folder unless cfg.Dir is set) whose
// URLs point at a test server that mounts its Handler at MountPath, as the
// server does.
func serve(t *testing.T, cfg Config) (*Blobs, *httptest.Server) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg.PublicURL = "http://" + srv.Listener.Addr().String()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	b, err := Open(t.Context(), cfg)
	if err != nil {
		srv.Listener.Close()
		t.Fatalf("Open: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(MountPath, b.Handler())
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b, srv
}

func TestBlobs(t *testing.T) {
	chattest.TestBlobs(t, func(t *testing.T) chat.Blobs {
		b, _ := serve(t, Config{})
		return b
	})
}

// do sends one request straight to the handler.
func do(h http.Handler, method, target, contentType string, body []byte) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// target is the path and query of a signed URL.
func target(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

func openIn(t *testing.T, dir string) *Blobs {
	t.Helper()
	b, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var badKeys = []string{
	"",
	"/etc/passwd",
	"..",
	"../outside",
	"../../outside",
	"a/../../outside",
	"a/..",
	"a..b",
	".",
	"./a",
	"a/./b",
	".hidden",
	"a/.hidden",
	"a//b",
	"a/",
	`a\..\b`,
	`..\outside`,
	"a b",
	"a%2e%2e",
	"a\x00b",
	"ä",
	"C:",
	strings.Repeat("a", 513),
	strings.Repeat("a", 201),
}

func TestKeyValidation(t *testing.T) {
	for _, k := range badKeys {
		if blobname.CheckKey(k) == nil {
			t.Errorf("blobname.CheckKey(%q) accepted an unsafe key", k)
		}
	}
	for _, k := range []string{"att_01jc5m2x", "a/b/c.png", "x-y_z.1", "thumbs/att_1.webp", strings.Repeat("a", 200)} {
		if err := blobname.CheckKey(k); err != nil {
			t.Errorf("blobname.CheckKey(%q): %v", k, err)
		}
	}
}

// TestKeysCannotEscapeTheFolder tries every unsafe key with every method
// and checks that each is refused as invalid and that nothing appears
// outside the folder.
func TestKeysCannotEscapeTheFolder(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.WriteFile(outside, []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := openIn(t, filepath.Join(parent, "blobs"))
	ctx := t.Context()
	data := []byte("escaped")
	for _, k := range badKeys {
		invalid := func(what string, err error) {
			t.Helper()
			if chat.ErrorCode(err) != chat.CodeInvalid {
				t.Errorf("%s(%q): %v, want invalid_request", what, k, err)
			}
		}
		invalid("Put", b.Put(ctx, k, "text/plain", bytes.NewReader(data), int64(len(data))))
		rc, err := b.Get(ctx, k)
		if err == nil {
			rc.Close()
		}
		invalid("Get", err)
		_, _, err = b.UploadURL(ctx, k, "text/plain", 1, time.Minute)
		invalid("UploadURL", err)
		_, err = b.DownloadURL(ctx, k, "x", "text/plain", time.Minute)
		invalid("DownloadURL", err)
	}
	if got, _ := os.ReadFile(outside); string(got) != "not yours" {
		t.Errorf("a file outside the folder changed: %q", got)
	}
	entries, _ := os.ReadDir(parent)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"blobs", "outside"}) {
		t.Errorf("the folder's parent holds %v, want only blobs and outside", names)
	}
}

// TestHandlerRefusesTraversalPaths sends raw request lines, so no client
// cleans the path first, to the bare Handler (which must refuse them) and
// to the Handler mounted in a ServeMux (which may redirect to the cleaned
// path, but must not serve).
func TestHandlerRefusesTraversalPaths(t *testing.T) {
	b, mounted := serve(t, Config{})
	bare := httptest.NewServer(b.Handler())
	defer bare.Close()
	secret, err := os.ReadFile(filepath.Join(b.root.Name(), secretFile))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := b.DownloadURL(t.Context(), "x", "x", "text/plain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	query := signed[strings.IndexByte(signed, '?'):]
	for _, p := range []string{
		"/blobs/../signing-key",
		"/blobs/%2e%2e/signing-key",
		"/blobs/%2E%2E%2Fsigning-key",
		"/blobs/..%2fsigning-key",
		"/blobs/a/../../signing-key",
		"/blobs//etc/passwd",
		"/blobs/%2fetc%2fpasswd",
		"/blobs/..%5c..%5csigning-key",
		"/blobs/.hidden",
		"/blobs/a%00b",
		"/blobs/",
		"/blobs/../../../../etc/passwd",
	} {
		for _, q := range []string{"", query} {
			status, body := rawGet(t, bare.Listener.Addr().String(), p+q)
			if status < 400 || status >= 500 {
				t.Errorf("GET %s%s: %d, want 4xx", p, q, status)
			}
			if bytes.Contains(body, secret) || bytes.Contains(body, []byte("root:")) {
				t.Errorf("GET %s%s leaked a file: %q", p, q, body)
			}
			status, body = rawGet(t, mounted.Listener.Addr().String(), p+q)
			if status < 300 || status >= 500 {
				t.Errorf("GET %s%s through a ServeMux: %d, want 3xx or 4xx", p, q, status)
			}
			if bytes.Contains(body, secret) || bytes.Contains(body, []byte("root:")) {
				t.Errorf("GET %s%s through a ServeMux leaked a file: %q", p, q, body)
			}
		}
	}
}

// rawGet sends a request line as is and returns the status and body.
func rawGet(t *testing.T, addr, requestTarget string) (int, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", requestTarget, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", requestTarget, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestInternalFilesAreNotKeys shows that keys named like the folder's own
// files land below objects/ and leave those files alone.
func TestInternalFilesAreNotKeys(t *testing.T) {
	dir := t.TempDir()
	b := openIn(t, dir)
	secret, err := os.ReadFile(filepath.Join(dir, secretFile))
	if err != nil {
		t.Fatalf("the generated secret is not in the folder: %v", err)
	}
	ctx := t.Context()
	for _, k := range []string{secretFile, "tmp/x", "objects/x", "signing-key.part"} {
		if err := b.Put(ctx, k, "text/plain", strings.NewReader("blob"), 4); err != nil {
			t.Fatalf("Put %s: %v", k, err)
		}
	}
	// A key cannot be both a blob and a folder of blobs.
	for _, k := range []string{"tmp", "signing-key/x"} {
		if err := b.Put(ctx, k, "text/plain", strings.NewReader("blob"), 4); chat.ErrorCode(err) != chat.CodeConflict {
			t.Errorf("Put %s: %v, want conflict", k, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, secretFile)); !bytes.Equal(got, secret) {
		t.Fatal("a Put changed the signing key")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, objectsDir, secretFile)); string(got) != "blob" {
		t.Fatalf("key %s is not stored below objects/: %q", secretFile, got)
	}
}

func TestSymlinksDoNotEscapeTheFolder(t *testing.T) {
	parent := t.TempDir()
	outsideDir := filepath.Join(parent, "outside")
	if err := os.Mkdir(outsideDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outsideDir, "secret"), []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "blobs")
	b := openIn(t, dir)
	if err := os.Symlink(outsideDir, filepath.Join(dir, objectsDir, "dirlink")); err != nil {
		t.Fatalf("making a symlink: %v", err)
	}
	if err := os.Symlink(filepath.Join(outsideDir, "secret"), filepath.Join(dir, objectsDir, "filelink")); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"dirlink/secret", "filelink"} {
		rc, err := b.Get(ctx, k)
		if err == nil {
			got, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Get %s followed a link out of the folder: %q", k, got)
		}
	}
	if err := b.Put(ctx, "dirlink/planted", "text/plain", strings.NewReader("x"), 1); err == nil {
		t.Error("Put through a link out of the folder succeeded")
	}
	if _, err := os.Stat(filepath.Join(outsideDir, "planted")); err == nil {
		t.Error("Put wrote a file outside the folder")
	}
}

type apiError struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func expectError(t *testing.T, what string, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Errorf("%s: %d %s, want %d", what, w.Code, w.Body, status)
		return
	}
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Errorf("%s: body %s, want an error with code %q", what, w.Body, code)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want JSON", what, ct)
	}
}

func TestUploadAnswers(t *testing.T) {
	b, err := Open(t.Context(), Config{Dir: t.TempDir(), MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := b.Handler()
	ctx := t.Context()
	data := bytes.Repeat([]byte("z"), 100)
	upload := func(key string, size int64) string {
		t.Helper()
		u, headers, err := b.UploadURL(ctx, key, "text/plain", size, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if headers["Content-Type"] != "text/plain" {
			t.Fatalf("upload headers %v, want the Content-Type", headers)
		}
		return target(t, u)
	}

	if _, _, err := b.UploadURL(ctx, "big", "text/plain", 101, time.Minute); chat.ErrorCode(err) != chat.CodeTooLarge {
		t.Errorf("UploadURL over the limit: %v, want too_large", err)
	}
	expectError(t, "body over the limit", do(h, "PUT", upload("k1", 100), "text/plain", append(slices.Clone(data), 'x')), http.StatusRequestEntityTooLarge, chat.CodeTooLarge)
	expectError(t, "shorter body", do(h, "PUT", upload("k2", 100), "text/plain", data[:50]), http.StatusBadRequest, chat.CodeInvalid)
	expectError(t, "other type", do(h, "PUT", upload("k3", 100), "text/html", data), http.StatusBadRequest, chat.CodeInvalid)

	sig := upload("k4", 100)
	expectError(t, "no signature", do(h, "PUT", sig[:strings.Index(sig, "&sig=")], "text/plain", data), http.StatusForbidden, chat.CodeForbidden)
	expectError(t, "extra parameter", do(h, "PUT", sig+"&x=1", "text/plain", data), http.StatusForbidden, chat.CodeForbidden)
	expectError(t, "repeated parameter", do(h, "PUT", sig+"&size=100", "text/plain", data), http.StatusForbidden, chat.CodeForbidden)
	expectError(t, "signature of another key", do(h, "PUT", strings.Replace(sig, "/k4?", "/k5?", 1), "text/plain", data), http.StatusForbidden, chat.CodeForbidden)

	b.now = func() time.Time { return time.Now().Add(-time.Hour) }
	old := upload("k6", 100)
	b.now = time.Now
	w := do(h, "PUT", old, "text/plain", data)
	expectError(t, "expired URL", w, http.StatusForbidden, chat.CodeForbidden)
	if !strings.Contains(w.Body.String(), "expired") {
		t.Errorf("expired URL: %s, want it to say so", w.Body)
	}

	w = do(h, "DELETE", sig, "", nil)
	expectError(t, "DELETE", w, http.StatusMethodNotAllowed, "method_not_allowed")
	if w.Header().Get("Allow") != "GET, PUT" {
		t.Errorf("405 Allow %q", w.Header().Get("Allow"))
	}

	if w := do(h, "PUT", sig, "text/plain", data); w.Code != http.StatusOK {
		t.Fatalf("upload as signed: %d %s", w.Code, w.Body)
	}
	for _, k := range []string{"k1", "k2", "k3", "k5", "k6"} {
		if _, err := b.Get(ctx, k); !chat.IsNotFound(err) {
			t.Errorf("refused upload of %s: Get %v, want not_found", k, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(b.root.Name(), tmpDir))
	if len(entries) != 0 {
		t.Errorf("refused uploads left %d temporary files", len(entries))
	}
}

func TestErrorBodyCarriesRequestID(t *testing.T) {
	b := openIn(t, t.TempDir())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_42")
		b.Handler().ServeHTTP(w, r)
	})
	w := do(h, "GET", "/blobs/x?exp=1&type=a/b&name=x&sig=00", "", nil)
	want := `{"error":{"code":"forbidden","message":"the URL's signature is missing or wrong","request_id":"req_42"}}`
	if w.Code != http.StatusForbidden || w.Body.String() != want {
		t.Errorf("bad signature: %d %s, want 403 %s", w.Code, w.Body, want)
	}
}

func TestDownloadHeaders(t *testing.T) {
	b := openIn(t, t.TempDir())
	ctx := t.Context()
	for _, tc := range []struct {
		contentType, name, disposition string
	}{
		{"image/png", "cat.png", `inline; filename="cat.png"`},
		{"image/jpeg", "a/b/photo.jpg", `inline; filename="photo.jpg"`},
		{"application/pdf", "report.pdf", `attachment; filename="report.pdf"`},
		{"image/svg+xml", "logo.svg", `attachment; filename="logo.svg"`},
		{"text/html", `x"><script>.html`, `attachment; filename="x_><script>.html"`},
		{"application/pdf", "résumé.pdf", `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
	} {
		key := "k" + strconv.Itoa(len(tc.name))
		if err := b.Put(ctx, key, tc.contentType, strings.NewReader("data"), 4); err != nil {
			t.Fatal(err)
		}
		u, err := b.DownloadURL(ctx, key, tc.name, tc.contentType, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		w := do(b.Handler(), "GET", target(t, u), "", nil)
		if w.Code != http.StatusOK || w.Body.String() != "data" {
			t.Fatalf("download %s: %d %q", tc.name, w.Code, w.Body)
		}
		for k, want := range map[string]string{
			"Content-Type":           tc.contentType,
			"Content-Disposition":    tc.disposition,
			"X-Content-Type-Options": "nosniff",
			"Cache-Control":          "private, max-age=300",
			"Content-Length":         "4",
		} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("download %s: %s %q, want %q", tc.name, k, got, want)
			}
		}
		if _, p, err := mime.ParseMediaType(tc.disposition); err != nil || p["filename"] != blobname.SafeFilename(tc.name) {
			t.Errorf("disposition %q reads back as %q (%v)", tc.disposition, p["filename"], err)
		}
	}
}

func TestSafeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":                      "report.pdf",
		"../../etc/passwd":                "passwd",
		`C:\Users\me\a.txt`:               "a.txt",
		"a\r\nSet-Cookie: x=1":            "aSet-Cookie: x=1",
		`say "hi".txt`:                    "say _hi_.txt",
		"\u202egnp.exe":                   "gnp.exe",
		"zero\u200bwidth":                 "zerowidth",
		"tab\there":                       "tab here",
		"bad\xffutf8":                     "bad_utf8",
		"":                                "download",
		"..":                              "download",
		" . ":                             "download",
		".bashrc":                         "bashrc",
		"dir/":                            "download",
		"résumé.pdf":                      "résumé.pdf",
		strings.Repeat("é", 200):          strings.Repeat("é", 90),
		strings.Repeat("a", 300) + ".png": strings.Repeat("a", 176) + ".png",
	} {
		if got := blobname.SafeFilename(in); got != want {
			t.Errorf("blobname.SafeFilename(%q) = %q, want %q", in, got, want)
		}
		if got := blobname.SafeFilename(blobname.SafeFilename(in)); got != blobname.SafeFilename(in) {
			t.Errorf("safeFilename is not idempotent on %q: %q", in, got)
		}
	}
}

func expiresOf(t *testing.T, raw string) time.Time {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := strconv.ParseInt(u.Query().Get(paramExpires), 10, 64)
	if err != nil {
		t.Fatalf("URL %s has no expiry", raw)
	}
	return time.Unix(sec, 0)
}

func TestTTLsAreClamped(t *testing.T) {
	b := openIn(t, t.TempDir())
	ctx := t.Context()
	now := time.Now()
	up, _, err := b.UploadURL(ctx, "k", "text/plain", 1, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if exp := expiresOf(t, up); exp.After(now.Add(MaxUploadTTL + time.Second)) {
		t.Errorf("upload URL expires in %v, want at most %v", exp.Sub(now), MaxUploadTTL)
	}
	down, err := b.DownloadURL(ctx, "k", "k", "text/plain", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if exp := expiresOf(t, down); exp.After(now.Add(MaxDownloadTTL + time.Second)) {
		t.Errorf("download URL expires in %v, want at most %v", exp.Sub(now), MaxDownloadTTL)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, _, err := b.UploadURL(ctx, "k", "text/plain", 1, ttl); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("UploadURL with ttl %v: %v, want invalid_request", ttl, err)
		}
		if _, err := b.DownloadURL(ctx, "k", "k", "text/plain", ttl); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("DownloadURL with ttl %v: %v, want invalid_request", ttl, err)
		}
	}
}

func TestContentTypeMustBeAMediaType(t *testing.T) {
	b := openIn(t, t.TempDir())
	for _, ct := range []string{"", "text", "text/plain\r\nX: y", "tëxt/plain", "/", strings.Repeat("a", 250) + "/aaaaaa"} {
		if _, _, err := b.UploadURL(t.Context(), "k", ct, 1, time.Minute); chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("UploadURL with type %q: %v, want invalid_request", ct, err)
		}
	}
}

func TestGeneratedSecretSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	first := openIn(t, dir)
	if err := first.Put(t.Context(), "k", "text/plain", strings.NewReader("kept"), 4); err != nil {
		t.Fatal(err)
	}
	u, err := first.DownloadURL(t.Context(), "k", "k.txt", "text/plain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := openIn(t, dir)
	if w := do(second.Handler(), "GET", target(t, u), "", nil); w.Code != http.StatusOK || w.Body.String() != "kept" {
		t.Fatalf("a URL signed before the restart: %d %q, want 200", w.Code, w.Body)
	}
	other := openIn(t, t.TempDir())
	if w := do(other.Handler(), "GET", target(t, u), "", nil); w.Code != http.StatusForbidden {
		t.Fatalf("a URL signed by another folder's secret: %d, want 403", w.Code)
	}
}

func TestOpenRemovesPartialUploads(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o700); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(dir, tmpDir, "abc.part")
	if err := os.WriteFile(partial, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	openIn(t, dir)
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("a partial upload survived Open: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{Dir: "d"}, true},
		{Config{Dir: "d", PublicURL: "https://chat.example.com", Secret: []byte("0123456789abcdef")}, true},
		{Config{Dir: "d", PublicURL: "http://localhost:8080/parley"}, true},
		{Config{}, false},
		{Config{Dir: "d", Secret: []byte("short")}, false},
		{Config{Dir: "d", MaxSize: -1}, false},
		{Config{Dir: "d", PublicURL: "chat.example.com"}, false},
		{Config{Dir: "d", PublicURL: "https://chat.example.com/"}, false},
		{Config{Dir: "d", PublicURL: "ftp://chat.example.com"}, false},
		{Config{Dir: "d", PublicURL: "https://chat.example.com?x=1"}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}

func TestRelativeURLsWithoutPublicURL(t *testing.T) {
	b := openIn(t, t.TempDir())
	u, _, err := b.UploadURL(t.Context(), "att_1", "text/plain", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, MountPath+"att_1?") {
		t.Errorf("URL %q, want a root-relative %s URL", u, MountPath)
	}
}

// TestReadersNeverSeeAPartialBlob replaces a blob over and over while
// others read it: every read is one whole version.
func TestReadersNeverSeeAPartialBlob(t *testing.T) {
	b := openIn(t, t.TempDir())
	ctx := t.Context()
	a, c := bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("c"), 64<<10)
	if err := b.Put(ctx, "k", "application/octet-stream", bytes.NewReader(a), int64(len(a))); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rc, err := b.Get(ctx, "k")
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, c)) {
					t.Errorf("read %d bytes that are neither version (%v)", len(got), err)
					return
				}
			}
		}()
	}
	for i := range 30 {
		v := a
		if i%2 == 0 {
			v = c
		}
		if err := b.Put(ctx, "k", "application/octet-stream", bytes.NewReader(v), int64(len(v))); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

func TestClosedIsUnavailable(t *testing.T) {
	b, err := Open(t.Context(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), "k", "text/plain", strings.NewReader("x"), 1); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Put after Close: %v, want unavailable", err)
	}
	if err := b.Ping(t.Context()); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping after Close: %v, want unavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
