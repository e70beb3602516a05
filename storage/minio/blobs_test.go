package minio

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/chattest"
	"github.com/parleychat/parley/storage/blobname"
)

const startHint = "is MinIO running? start it with: deploy/local/services up minio"

// testConfig points at the store the tests run against (PARLEY_S3_*, the
// local services by default) and a new bucket nobody has used. The tests
// fail, never skip, when the store does not answer.
func testConfig(t testing.TB) Config {
	t.Helper()
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	p := make([]byte, 6)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return Config{
		Endpoint:  env("PARLEY_S3_ENDPOINT", "http://127.0.0.1:9000"),
		AccessKey: env("PARLEY_S3_ACCESS_KEY", "parley"),
		SecretKey: env("PARLEY_S3_SECRET_KEY", "parleysecret"),
		Bucket:    "parley-test-" + hex.EncodeToString(p),
	}
}

// openTest opens Blobs on cfg and removes its bucket, with every object in
// it, when the test ends.
func openTest(t testing.TB, cfg Config) *Blobs {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open %s at %s: %v\n(%s)", cfg.Bucket, cfg.Endpoint, err, startHint)
	}
	t.Cleanup(func() {
		removeBucket(t, b)
		b.Close()
	})
	return b
}

// removeBucket removes b's bucket and every object in it.
func removeBucket(t testing.TB, b *Blobs) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	objects := b.client.ListObjects(ctx, b.bucket, miniogo.ListObjectsOptions{Recursive: true})
	for rerr := range b.client.RemoveObjects(ctx, b.bucket, objects, miniogo.RemoveObjectsOptions{}) {
		t.Errorf("remove %s from %s: %v", rerr.ObjectName, b.bucket, rerr.Err)
	}
	if err := b.client.RemoveBucket(ctx, b.bucket); err != nil {
		t.Errorf("remove bucket %s: %v", b.bucket, err)
	}
}

func bucketExists(t testing.TB, b *Blobs, bucket string) bool {
	t.Helper()
	ok, err := b.client.BucketExists(t.Context(), bucket)
	if err != nil {
		t.Fatalf("BucketExists %s: %v", bucket, err)
	}
	return ok
}

// TestBlobs runs the contract suite against the real store, each subtest
// in a bucket of its own that Open creates.
func TestBlobs(t *testing.T) {
	chattest.TestBlobs(t, func(t *testing.T) chat.Blobs {
		return openTest(t, testConfig(t))
	})
}

func TestOpenCreatesTheBucketOnceAndReopens(t *testing.T) {
	cfg := testConfig(t)
	b := openTest(t, cfg)
	if !bucketExists(t, b, cfg.Bucket) {
		t.Fatalf("bucket %s does not exist after Open", cfg.Bucket)
	}
	if err := b.Put(t.Context(), "kept", "text/plain", strings.NewReader("kept"), 4); err != nil {
		t.Fatalf("Put: %v", err)
	}
	again, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open of an existing bucket: %v", err)
	}
	defer again.Close()
	rc, err := again.Get(t.Context(), "kept")
	if err != nil {
		t.Fatalf("Get after reopening: %v", err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "kept" {
		t.Errorf("Get after reopening: %q, want %q", got, "kept")
	}
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestUnreachableStoreIsUnavailable(t *testing.T) {
	cfg := testConfig(t)
	cfg.Endpoint = "http://" + closedAddr(t)
	start := time.Now()
	b, err := Open(t.Context(), cfg)
	if err == nil {
		b.Close()
		t.Fatalf("Open of %s succeeded", cfg.Endpoint)
	}
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Open of %s: %v, want unavailable", cfg.Endpoint, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open of %s took %v to fail, want under 5 s", cfg.Endpoint, d)
	}
}

// TestStoreGoneAfterOpenIsUnavailable reaches the store through a proxy,
// then stops the proxy: every operation that talks to the store fails as
// unavailable.
func TestStoreGoneAfterOpenIsUnavailable(t *testing.T) {
	cfg := testConfig(t)
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()
	direct := openTest(t, cfg) // creates the bucket and removes it afterwards
	viaProxy := cfg
	viaProxy.Endpoint = proxy.URL
	b, err := Open(t.Context(), viaProxy)
	if err != nil {
		t.Fatalf("Open through a proxy: %v", err)
	}
	defer b.Close()
	if err := b.Put(t.Context(), "there", "text/plain", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("Put through the proxy: %v", err)
	}
	proxy.Close()

	ctx := t.Context()
	unavailable := func(what string, err error) {
		t.Helper()
		if chat.ErrorCode(err) != chat.CodeUnavailable {
			t.Errorf("%s with the store gone: %v, want unavailable", what, err)
		}
	}
	unavailable("Ping", b.Ping(ctx))
	unavailable("Put", b.Put(ctx, "new", "text/plain", strings.NewReader("x"), 1))
	rc, err := b.Get(ctx, "there")
	if err == nil {
		rc.Close()
	}
	unavailable("Get", err)
	// Signing needs no network.
	if _, _, err := b.UploadURL(ctx, "k", "text/plain", 1, time.Minute); err != nil {
		t.Errorf("UploadURL with the store gone: %v", err)
	}
	if err := direct.Ping(ctx); err != nil {
		t.Errorf("Ping straight to the store: %v", err)
	}
}

func TestMissingBucketAndClosedBlobsAreUnavailable(t *testing.T) {
	b := openTest(t, testConfig(t))
	ctx := t.Context()
	if err := b.client.RemoveBucket(ctx, b.bucket); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping with the bucket removed: %v, want unavailable", err)
	}
	if err := b.client.MakeBucket(ctx, b.bucket, miniogo.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Ping(ctx); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("Ping after Close: %v, want unavailable", err)
	}
	if _, err := b.DownloadURL(ctx, "k", "n", "text/plain", time.Minute); chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Errorf("DownloadURL after Close: %v, want unavailable", err)
	}
}

func TestGetOfMissingKeyIsNotFound(t *testing.T) {
	b := openTest(t, testConfig(t))
	rc, err := b.Get(t.Context(), "attachments/none")
	if err == nil {
		rc.Close()
		t.Fatal("Get of a missing key succeeded")
	}
	if chat.ErrorCode(err) != chat.CodeNotFound {
		t.Errorf("Get of a missing key: %v, want not_found", err)
	}
}

// send makes one request with the standard client, which sets
// Content-Length from the body.
func send(t *testing.T, method, rawURL string, header http.Header, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hdr := header.Clone()
	hdr.Del("Content-Length") // the client frames the body
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestUploadURLSignsSizeAndType checks that the size and type conditions
// are in the signature and that the store itself enforces them: a wrong
// size or type is a 403 from MinIO, not something only this package
// checks.
func TestUploadURLSignsSizeAndType(t *testing.T) {
	b := openTest(t, testConfig(t))
	data := []byte("twelve bytes")
	u, headers, err := b.UploadURL(t.Context(), "up/1", "text/plain", int64(len(data)), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if headers["Content-Type"] != "text/plain" || headers["Content-Length"] != "12" || headers["If-None-Match"] != "*" {
		t.Errorf("headers %v, want Content-Type text/plain, Content-Length 12 and If-None-Match *", headers)
	}
	q, _ := url.Parse(u)
	if got := q.Query().Get("X-Amz-SignedHeaders"); got != "content-length;content-type;host;if-none-match" {
		t.Errorf("X-Amz-SignedHeaders %q, want content-length;content-type;host;if-none-match", got)
	}
	if got := q.Query().Get("X-Amz-Expires"); got != "900" {
		t.Errorf("X-Amz-Expires %q for a 1 h ttl, want 900 (the cap)", got)
	}
	// Each upload sends the headers the URL was signed with (If-None-Match
	// included: the URL writes at most once), all but the one under test.
	h := http.Header{"Content-Type": {"text/plain"}, "If-None-Match": {"*"}}
	for _, tc := range []struct {
		name string
		h    http.Header
		body []byte
	}{
		{"a longer body", h, append(bytes.Clone(data), '!')},
		{"a shorter body", h, data[:5]},
		{"another type", http.Header{"Content-Type": {"text/html"}, "If-None-Match": {"*"}}, data},
	} {
		resp := send(t, http.MethodPut, u, tc.h, tc.body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("upload of %s: %s, want 403 from the store", tc.name, resp.Status)
		}
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(body, []byte("<Code>SignatureDoesNotMatch</Code>")) {
			t.Errorf("upload of %s: %q, want the store's SignatureDoesNotMatch", tc.name, body)
		}
	}
	if resp := send(t, http.MethodPut, u, h, data); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload as declared: %s, want 200", resp.Status)
	}
}

// TestDownloadHeaders checks the exact headers a download is served with.
func TestDownloadHeaders(t *testing.T) {
	b := openTest(t, testConfig(t))
	for i, tc := range []struct {
		contentType, name, disposition string
	}{
		{"application/pdf", "report.pdf", `attachment; filename="report.pdf"`},
		{"text/html", "page.html", `attachment; filename="page.html"`},
		{"image/svg+xml", "logo.svg", `attachment; filename="logo.svg"`},
		{"application/pdf", "résumé.pdf", `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
		{"image/png", "cat.png", `inline; filename="cat.png"`},
		{"image/jpeg", "../cat.jpg", `inline; filename="cat.jpg"`},
	} {
		key := fmt.Sprintf("dl/%d", i)
		if err := b.Put(t.Context(), key, "application/octet-stream", strings.NewReader("bytes"), 5); err != nil {
			t.Fatal(err)
		}
		u, err := b.DownloadURL(t.Context(), key, tc.name, tc.contentType, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if q, _ := url.Parse(u); q.Query().Get("X-Amz-Expires") != "300" {
			t.Errorf("X-Amz-Expires %q for a 1 h ttl, want 300 (the cap)", q.Query().Get("X-Amz-Expires"))
		}
		resp := send(t, http.MethodGet, u, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("download of %s: %s", tc.contentType, resp.Status)
		}
		if got := resp.Header.Get("Content-Type"); got != tc.contentType {
			t.Errorf("Content-Type %q, want %q (the declared one, not the stored one)", got, tc.contentType)
		}
		if got := resp.Header.Get("Content-Disposition"); got != tc.disposition {
			t.Errorf("%s named %q: Content-Disposition %q, want %q", tc.contentType, tc.name, got, tc.disposition)
		} else if _, _, err := mime.ParseMediaType(got); err != nil {
			t.Errorf("Content-Disposition %q does not parse: %v", got, err)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options %q, want nosniff", got)
		}
	}
}

// TestPublicEndpointSignsForClients signs URLs for another address of the
// same store, a proxy that passes the Host header through as clients may
// reach the store, and uses them there.
func TestPublicEndpointSignsForClients(t *testing.T) {
	cfg := testConfig(t)
	target, err := url.Parse(cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()
	cfg.PublicEndpoint = proxy.URL
	b := openTest(t, cfg)
	data := []byte("via localhost")
	up, headers, err := b.UploadURL(t.Context(), "pub/1", "text/plain", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(up, cfg.PublicEndpoint+"/") {
		t.Fatalf("upload URL %q is not on the public endpoint %s", up, cfg.PublicEndpoint)
	}
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	if resp := send(t, http.MethodPut, up, h, data); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload through the public endpoint: %s", resp.Status)
	}
	down, err := b.DownloadURL(t.Context(), "pub/1", "a.txt", "text/plain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp := send(t, http.MethodGet, down, nil, nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Errorf("download through the public endpoint: %s %q", resp.Status, got)
	}
	// The signature covers the host: the same URL on the server's own
	// endpoint is refused.
	other := strings.Replace(down, cfg.PublicEndpoint, cfg.Endpoint, 1)
	if resp := send(t, http.MethodGet, other, nil, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("download URL sent to another host: %s, want 403", resp.Status)
	}
}

// TestPutOfManyPartsIsExact puts more than one multipart part (minio-go
// switches to multipart above 16 MiB): a reader with one byte too many
// stores nothing, one of the right size is stored whole.
func TestPutOfManyPartsIsExact(t *testing.T) {
	b := openTest(t, testConfig(t))
	const size = 16<<20 + 1
	data := make([]byte, size+1)
	for i := range data {
		data[i] = byte(i * 7)
	}
	ctx := t.Context()
	err := b.Put(ctx, "big/long", "application/octet-stream", io.MultiReader(bytes.NewReader(data)), size)
	if chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("Put of a reader one byte longer than %d: %v, want invalid_request", size, err)
	}
	if rc, err := b.Get(ctx, "big/long"); err == nil {
		rc.Close()
		t.Errorf("a refused Put stored a blob")
	} else if !chat.IsNotFound(err) {
		t.Errorf("Get after a refused Put: %v, want not_found", err)
	}
	if err := b.Put(ctx, "big/exact", "application/octet-stream", io.MultiReader(bytes.NewReader(data[:size])), size); err != nil {
		t.Fatalf("Put of %d bytes: %v", size, err)
	}
	rc, err := b.Get(ctx, "big/exact")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); !bytes.Equal(got, data[:size]) {
		t.Errorf("Get: %d bytes, want the %d stored", len(got), size)
	}
}

// failingReader fails after its bytes.
type failingReader struct{ n int }

var errBroken = errors.New("broken reader")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBroken
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestPutRefusals(t *testing.T) {
	b := openTest(t, testConfig(t))
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		put  func() error
		code string
	}{
		{"an empty blob with a non-empty reader", func() error {
			return b.Put(ctx, "p/1", "text/plain", strings.NewReader("x"), 0)
		}, chat.CodeInvalid},
		{"a key with a space", func() error { return b.Put(ctx, "a b", "text/plain", strings.NewReader("x"), 1) }, chat.CodeInvalid},
		{"a key with ..", func() error { return b.Put(ctx, "a/../b", "text/plain", strings.NewReader("x"), 1) }, chat.CodeInvalid},
		{"no content type", func() error { return b.Put(ctx, "p/2", "", strings.NewReader("x"), 1) }, chat.CodeInvalid},
		{"a negative size", func() error { return b.Put(ctx, "p/3", "text/plain", strings.NewReader(""), -1) }, chat.CodeInvalid},
		{"more than the largest size", func() error {
			return b.Put(ctx, "p/4", "text/plain", strings.NewReader(""), DefaultMaxSize+1)
		}, chat.CodeTooLarge},
	} {
		if err := tc.put(); chat.ErrorCode(err) != tc.code {
			t.Errorf("Put of %s: %v, want %s", tc.name, err, tc.code)
		}
	}
	err := b.Put(ctx, "p/5", "text/plain", &failingReader{n: 3}, 10)
	if !errors.Is(err, errBroken) {
		t.Errorf("Put from a failing reader: %v, want its error", err)
	}
	if _, _, err := b.UploadURL(ctx, "p/6", "text/plain", DefaultMaxSize+1, time.Minute); chat.ErrorCode(err) != chat.CodeTooLarge {
		t.Errorf("UploadURL over the largest size: %v, want too_large", err)
	}
	if _, err := b.DownloadURL(ctx, "p/7", "x", "text/plain", 0); chat.ErrorCode(err) != chat.CodeInvalid {
		t.Errorf("DownloadURL with a zero ttl: %v, want invalid_request", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Endpoint: "http://127.0.0.1:9000", AccessKey: "a", SecretKey: "s", Bucket: "parley"}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		ok   bool
	}{
		{"the minimum", func(*Config) {}, true},
		{"https with a trailing slash", func(c *Config) { c.Endpoint = "https://s3.example.com/" }, true},
		{"a public endpoint and a region", func(c *Config) {
			c.PublicEndpoint = "https://files.example.com"
			c.Region = "eu-west-1"
		}, true},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, false},
		{"an endpoint without a scheme", func(c *Config) { c.Endpoint = "127.0.0.1:9000" }, false},
		{"an endpoint with a path", func(c *Config) { c.Endpoint = "http://host/s3" }, false},
		{"an endpoint with a user", func(c *Config) { c.Endpoint = "http://u:p@host" }, false},
		{"an ftp endpoint", func(c *Config) { c.Endpoint = "ftp://host" }, false},
		{"a public endpoint with a query", func(c *Config) { c.PublicEndpoint = "http://host?x=1" }, false},
		{"no access key", func(c *Config) { c.AccessKey = "" }, false},
		{"no secret key", func(c *Config) { c.SecretKey = "" }, false},
		{"no bucket", func(c *Config) { c.Bucket = "" }, false},
		{"an upper-case bucket", func(c *Config) { c.Bucket = "Parley" }, false},
		{"a bucket with _", func(c *Config) { c.Bucket = "par_ley" }, false},
		{"a region with a space", func(c *Config) { c.Region = "eu west" }, false},
		{"a negative max size", func(c *Config) { c.MaxSize = -1 }, false},
	} {
		c := good
		tc.edit(&c)
		err := c.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "minio: config: ") {
			t.Errorf("%s: error %q does not name the adapter", tc.name, err)
		}
	}
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Error("Open of the zero Config succeeded")
	}
}

func TestSafeFilename(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\a.pdf`, "a.pdf"},
		{"evil\"\r\nSet-Cookie: x", "evil_Set-Cookie: x"},
		{"\u202egnp.exe", "gnp.exe"},
		{"..", "download"},
		{"", "download"},
	} {
		if got := blobname.SafeFilename(tc.in); got != tc.want {
			t.Errorf("blobname.SafeFilename(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
