package chattest

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/parleychat/parley/chat"
)

// TestBlobs is the contract suite of chat.Blobs. Every Blobs adapter runs
// it; each subtest gets a fresh Blobs from open, which reports its own
// failures with t.Fatal and arranges (t.Cleanup) for the Blobs, and
// whatever serves its URLs, to be closed. The suite never calls Close.
//
// The suite uses the signed URLs the way a client does, over real HTTP
// with net/http: it PUTs the bytes to the upload URL with the returned
// headers (a Content-Length header among them is not sent as a header: the
// HTTP client frames the body, as a browser does), and GETs the download
// URL without following redirects. URLs must therefore be absolute, and
// the path of a URL must end with the key, as with S3 path-style and
// virtual-host URLs.
//
// "Refused" means a 4xx answer. Besides what chat.Blobs's doc states, the
// suite pins these behaviours:
//   - an upload whose body is shorter or longer than the declared size, or
//     sent without a length (chunked), or whose Content-Type differs from
//     the declared one in any way (also only by a parameter, or missing),
//     is refused and stores nothing;
//   - changing one character of the URL's path or of any query parameter
//     makes an upload or download URL refused; an upload URL does not
//     download and a download URL does not upload;
//   - a download answers the declared content type and
//     "X-Content-Type-Options: nosniff"; PNG, JPEG, GIF and WebP images are
//     inline (no Content-Disposition, or "inline"), every other type,
//     SVG included, is "attachment" with a filename parameter: the given
//     name when it is a plain file name, else a made-safe name with no
//     path separator, quote or control character;
//   - an upload URL writes at most once: replaying it, with the returned
//     headers or only Content-Type, or a new upload URL for a key that
//     holds a blob (uploaded or Put), is refused and the stored bytes stay;
//     of two concurrent uploads to one key, at most one succeeds;
//   - Put stores exactly size bytes: a reader that ends early or has more
//     is an error and stores nothing; Put replaces an existing blob;
//   - Get of a missing key, and a download of a missing blob, are not
//     found (chat.IsNotFound, and a 4xx).
//
// Keys are made with chat.NewID under the prefix "blobs-test/", so an
// adapter backed by a shared bucket may run the suite repeatedly.
func TestBlobs(t *testing.T, open func(t *testing.T) chat.Blobs) {
	t.Helper()
	for _, tc := range blobsCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t))
		})
	}
}

type blobsCase struct {
	name string
	run  func(t *testing.T, b chat.Blobs)
}

var blobsCases = []blobsCase{
	{"PingAnswers", blobsTestPing},
	{"UploadOfDeclaredSizeAndTypeIsStoredAndDownloads", blobsTestUpload},
	{"UploadURLWritesOnce", blobsTestUploadOnce},
	{"ConcurrentUploadsToOneKeyStoreOne", blobsTestUploadRace},
	{"UploadOfAnotherSizeIsRefused", blobsTestUploadSize},
	{"UploadOfAnotherContentTypeIsRefused", blobsTestUploadType},
	{"ExpiredURLsAreRefused", blobsTestExpired},
	{"TamperedUploadURLIsRefused", blobsTestTamperedUpload},
	{"TamperedDownloadURLIsRefused", blobsTestTamperedDownload},
	{"UploadAndDownloadURLsAreNotInterchangeable", blobsTestMethods},
	{"ImagesInlineOtherTypesAsAttachment", blobsTestDisposition},
	{"AttachmentFilenameIsMadeSafe", blobsTestFilename},
	{"PutGetRoundTrip", blobsTestPutGet},
	{"PutOfAnotherSizeStoresNothing", blobsTestPutSize},
	{"MissingBlobIsNotFound", blobsTestMissing},
}

// blobsClient never follows redirects: a signed URL must answer itself.
var blobsClient = &http.Client{
	Timeout: 60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// blobsKey returns a new key nobody has used.
func blobsKey() string { return "blobs-test/" + chat.NewID("blob") }

// blobsData returns n deterministic bytes that differ with seed.
func blobsData(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31+i>>8) ^ seed
	}
	return p
}

type blobsReply struct {
	status int
	header http.Header
	body   []byte
}

func (r blobsReply) String() string {
	body := r.body
	if len(body) > 200 {
		body = body[:200]
	}
	return fmt.Sprintf("%d %q", r.status, body)
}

func (r blobsReply) ok() bool      { return r.status >= 200 && r.status < 300 }
func (r blobsReply) refused() bool { return r.status >= 400 && r.status < 500 }

// blobsHeader turns the headers UploadURL returned into request headers.
func blobsHeader(headers map[string]string) http.Header {
	h := http.Header{}
	for k, v := range headers {
		if http.CanonicalHeaderKey(k) == "Content-Length" {
			continue // the client frames the body, as a browser does
		}
		h.Set(k, v)
	}
	return h
}

// blobsSend makes one request. chunked sends body without a length.
func blobsSend(t *testing.T, method, rawURL string, header http.Header, body []byte, chunked bool) blobsReply {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		t.Fatalf("URL %q is not an absolute URL (%v)", rawURL, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	if chunked {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = nil
		req.ContentLength = -1
	}
	for k, vs := range header {
		if k == "Host" {
			req.Host = vs[0]
			continue
		}
		req.Header[k] = vs
	}
	resp, err := blobsClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, rawURL, err)
	}
	return blobsReply{status: resp.StatusCode, header: resp.Header, body: got}
}

func blobsPut(t *testing.T, b chat.Blobs, key, contentType string, data []byte) {
	t.Helper()
	if err := b.Put(t.Context(), key, contentType, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func blobsUploadURL(t *testing.T, b chat.Blobs, key, contentType string, size int64, ttl time.Duration) (string, http.Header) {
	t.Helper()
	u, headers, err := b.UploadURL(t.Context(), key, contentType, size, ttl)
	if err != nil {
		t.Fatalf("UploadURL %s: %v", key, err)
	}
	return u, blobsHeader(headers)
}

func blobsDownloadURL(t *testing.T, b chat.Blobs, key, name, contentType string, ttl time.Duration) string {
	t.Helper()
	u, err := b.DownloadURL(t.Context(), key, name, contentType, ttl)
	if err != nil {
		t.Fatalf("DownloadURL %s: %v", key, err)
	}
	return u
}

// blobsUpload uploads data through an upload URL, as a client would.
func blobsUpload(t *testing.T, b chat.Blobs, key, contentType string, data []byte) {
	t.Helper()
	u, h := blobsUploadURL(t, b, key, contentType, int64(len(data)), time.Minute)
	if rep := blobsSend(t, http.MethodPut, u, h, data, false); !rep.ok() {
		t.Fatalf("upload of %d bytes of %s: %v, want 2xx", len(data), contentType, rep)
	}
}

// blobsExpectContent checks that Get returns exactly want.
func blobsExpectContent(t *testing.T, b chat.Blobs, key string, want []byte) {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get %s: read: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %s: %d bytes, want the %d stored", key, len(got), len(want))
	}
}

// blobsExpectAbsent checks that nothing is stored under key.
func blobsExpectAbsent(t *testing.T, b chat.Blobs, key, why string) {
	t.Helper()
	rc, err := b.Get(t.Context(), key)
	if err == nil {
		n, _ := io.Copy(io.Discard, rc)
		rc.Close()
		t.Errorf("%s: %d bytes are stored under %s, want nothing", why, n, key)
		return
	}
	if !chat.IsNotFound(err) {
		t.Errorf("%s: Get %s: %v, want not_found", why, key, err)
	}
}

// blobsSameType reports whether two content types are the same media
// type with the same parameters.
func blobsSameType(got, want string) bool {
	gm, gp, err := mime.ParseMediaType(got)
	if err != nil {
		return false
	}
	wm, wp, err := mime.ParseMediaType(want)
	return err == nil && gm == wm && maps.Equal(gp, wp)
}

// blobsExpectServed checks a download answer: the bytes, the declared
// content type and nosniff.
func blobsExpectServed(t *testing.T, what string, rep blobsReply, contentType string, want []byte) {
	t.Helper()
	if rep.status != http.StatusOK {
		t.Fatalf("%s: %v, want 200", what, rep)
	}
	if !bytes.Equal(rep.body, want) {
		t.Errorf("%s: served %d bytes, want the %d stored", what, len(rep.body), len(want))
	}
	if got := rep.header.Get("Content-Type"); !blobsSameType(got, contentType) {
		t.Errorf("%s: Content-Type %q, want %q", what, got, contentType)
	}
	if got := rep.header.Get("X-Content-Type-Options"); !strings.EqualFold(got, "nosniff") {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, got)
	}
}

// blobsTamperChar returns s with the character at i replaced by another
// one of the same kind, so the result is still well-formed.
func blobsTamperChar(s string, i int) string {
	c := s[i]
	switch {
	case c >= '0' && c <= '9':
		c = '0' + (c-'0'+1)%10
	case c >= 'a' && c <= 'z':
		c = 'a' + (c-'a'+1)%26
	case c >= 'A' && c <= 'Z':
		c = 'A' + (c-'A'+1)%26
	case c == 'x':
		c = 'y'
	default:
		c = 'x'
	}
	return s[:i] + string(c) + s[i+1:]
}

type blobsTampered struct {
	what string
	url  string
	// key is the key the tampered URL names, if it names another one.
	key string
}

// blobsTamper returns variants of rawURL that each differ from it in one
// character: the last of the path (which ends with key), and the first of
// each query parameter's value.
func blobsTamper(t *testing.T, rawURL, key string) []blobsTampered {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("URL %q: %v", rawURL, err)
	}
	if !strings.HasSuffix(u.Path, key) {
		t.Fatalf("URL %q: the path does not end with the key %q", rawURL, key)
	}
	var out []blobsTampered

	p := *u
	p.Path = blobsTamperChar(u.Path, len(u.Path)-1)
	p.RawPath = ""
	out = append(out, blobsTampered{what: "the key's last character", url: p.String(), key: blobsTamperChar(key, len(key)-1)})

	q := u.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		for i, v := range q[name] {
			if v == "" {
				continue
			}
			q2 := maps.Clone(q)
			q2[name] = slices.Clone(q[name])
			q2[name][i] = blobsTamperChar(v, 0)
			v2 := *u
			v2.RawQuery = q2.Encode()
			out = append(out, blobsTampered{what: fmt.Sprintf("query parameter %s", name), url: v2.String()})
		}
	}
	return out
}

func blobsTestPing(t *testing.T, b chat.Blobs) {
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func blobsTestUpload(t *testing.T, b chat.Blobs) {
	for _, tc := range []struct {
		contentType string
		data        []byte
	}{
		{"text/plain", []byte("hello world")},
		{"image/png", blobsData(4096, 1)},
		{"application/octet-stream", blobsData(3<<20+17, 2)},
	} {
		key := blobsKey()
		blobsUpload(t, b, key, tc.contentType, tc.data)
		blobsExpectContent(t, b, key, tc.data)
		u := blobsDownloadURL(t, b, key, "file.bin", tc.contentType, time.Minute)
		rep := blobsSend(t, http.MethodGet, u, nil, nil, false)
		blobsExpectServed(t, "download of "+tc.contentType, rep, tc.contentType, tc.data)
	}
}

func blobsTestUploadOnce(t *testing.T, b chat.Blobs) {
	data := blobsData(1024, 7)
	evil := blobsData(1024, 8) // same size, same type
	key := blobsKey()
	u, h := blobsUploadURL(t, b, key, "image/png", int64(len(data)), time.Minute)
	if rep := blobsSend(t, http.MethodPut, u, h, data, false); !rep.ok() {
		t.Fatalf("first upload: %v, want 2xx", rep)
	}
	if rep := blobsSend(t, http.MethodPut, u, h, evil, false); !rep.refused() {
		t.Errorf("replay of the upload URL with other bytes of the same size and type: %v, want 4xx", rep)
	}
	bare := http.Header{"Content-Type": {"image/png"}}
	if rep := blobsSend(t, http.MethodPut, u, bare, evil, false); !rep.refused() {
		t.Errorf("replay of the upload URL with Content-Type only: %v, want 4xx", rep)
	}
	u2, h2 := blobsUploadURL(t, b, key, "image/png", int64(len(evil)), time.Minute)
	if rep := blobsSend(t, http.MethodPut, u2, h2, evil, false); !rep.refused() {
		t.Errorf("a new upload URL for a key already uploaded: %v, want 4xx", rep)
	}
	blobsExpectContent(t, b, key, data)
	down := blobsDownloadURL(t, b, key, "a.png", "image/png", time.Minute)
	blobsExpectServed(t, "download after the refused replays", blobsSend(t, http.MethodGet, down, nil, nil, false), "image/png", data)

	// A blob stored server-side (a thumbnail) is not replaced by an upload.
	putKey := blobsKey()
	blobsPut(t, b, putKey, "image/png", data)
	u3, h3 := blobsUploadURL(t, b, putKey, "image/png", int64(len(evil)), time.Minute)
	if rep := blobsSend(t, http.MethodPut, u3, h3, evil, false); !rep.refused() {
		t.Errorf("upload to a key stored with Put: %v, want 4xx", rep)
	}
	blobsExpectContent(t, b, putKey, data)
}

func blobsTestUploadRace(t *testing.T, b chat.Blobs) {
	const n = 4
	key := blobsKey()
	u, h := blobsUploadURL(t, b, key, "application/octet-stream", 64<<10, time.Minute)
	bodies := make([][]byte, n)
	reps := make([]blobsReply, n)
	done := make(chan int)
	for i := range n {
		bodies[i] = blobsData(64<<10, byte(10+i))
		go func() {
			defer func() { done <- i }()
			reps[i] = blobsSend(t, http.MethodPut, u, h, bodies[i], false)
		}()
	}
	for range n {
		<-done
	}
	winner := -1
	for i, rep := range reps {
		switch {
		case rep.ok() && winner >= 0:
			t.Errorf("uploads %d and %d to one key both succeeded", winner, i)
		case rep.ok():
			winner = i
		case !rep.refused():
			t.Errorf("upload %d: %v, want 2xx or 4xx", i, rep)
		}
	}
	if winner < 0 {
		t.Fatalf("none of %d concurrent uploads succeeded: %v", n, reps)
	}
	blobsExpectContent(t, b, key, bodies[winner])
}

func blobsTestUploadSize(t *testing.T, b chat.Blobs) {
	const size = 64
	data := blobsData(size, 3)
	for _, tc := range []struct {
		name    string
		body    []byte
		chunked bool
	}{
		{"one byte shorter", data[:size-1], false},
		{"half", data[:size/2], false},
		{"empty", []byte{}, false},
		{"one byte longer", append(slices.Clone(data), 'x'), false},
		{"twice as long", append(slices.Clone(data), data...), false},
		{"the declared size without a length (chunked)", data, true},
	} {
		key := blobsKey()
		u, h := blobsUploadURL(t, b, key, "application/octet-stream", size, time.Minute)
		rep := blobsSend(t, http.MethodPut, u, h, tc.body, tc.chunked)
		if !rep.refused() {
			t.Errorf("upload of %s (%d bytes, declared %d): %v, want 4xx", tc.name, len(tc.body), size, rep)
		}
		blobsExpectAbsent(t, b, key, "refused upload of "+tc.name)
	}
}

func blobsTestUploadType(t *testing.T, b chat.Blobs) {
	data := []byte("plain text, declared as such")
	for _, tc := range []struct {
		name string
		set  func(h http.Header)
	}{
		{"another type", func(h http.Header) { h.Set("Content-Type", "text/html") }},
		{"an image type", func(h http.Header) { h.Set("Content-Type", "image/png") }},
		{"an added parameter", func(h http.Header) { h.Set("Content-Type", "text/plain; charset=utf-8") }},
		{"no type", func(h http.Header) { h.Del("Content-Type") }},
	} {
		key := blobsKey()
		u, h := blobsUploadURL(t, b, key, "text/plain", int64(len(data)), time.Minute)
		tc.set(h)
		rep := blobsSend(t, http.MethodPut, u, h, data, false)
		if !rep.refused() {
			t.Errorf("upload of text/plain with %s (%q): %v, want 4xx", tc.name, h.Get("Content-Type"), rep)
		}
		blobsExpectAbsent(t, b, key, "refused upload with "+tc.name)
	}
}

func blobsTestExpired(t *testing.T, b chat.Blobs) {
	data := []byte("soon gone")
	upKey := blobsKey()
	up, h := blobsUploadURL(t, b, upKey, "text/plain", int64(len(data)), time.Second)
	downKey := blobsKey()
	blobsPut(t, b, downKey, "text/plain", data)
	down := blobsDownloadURL(t, b, downKey, "gone.txt", "text/plain", time.Second)

	time.Sleep(2 * time.Second)

	if rep := blobsSend(t, http.MethodPut, up, h, data, false); !rep.refused() {
		t.Errorf("upload 2 s after a 1 s upload URL was made: %v, want 4xx", rep)
	}
	blobsExpectAbsent(t, b, upKey, "upload with an expired URL")
	rep := blobsSend(t, http.MethodGet, down, nil, nil, false)
	if !rep.refused() {
		t.Errorf("download 2 s after a 1 s download URL was made: %v, want 4xx", rep)
	}
	if bytes.Contains(rep.body, data) {
		t.Errorf("an expired download URL served the blob")
	}
}

func blobsTestTamperedUpload(t *testing.T, b chat.Blobs) {
	data := []byte("only with the URL as signed")
	key := blobsKey()
	u, h := blobsUploadURL(t, b, key, "text/plain", int64(len(data)), time.Minute)
	for _, v := range blobsTamper(t, u, key) {
		if rep := blobsSend(t, http.MethodPut, v.url, h, data, false); !rep.refused() {
			t.Errorf("upload with %s changed: %v, want 4xx", v.what, rep)
		}
		if v.key != "" {
			blobsExpectAbsent(t, b, v.key, "upload with "+v.what+" changed")
		}
		blobsExpectAbsent(t, b, key, "upload with "+v.what+" changed")
	}
	if rep := blobsSend(t, http.MethodPut, u, h, data, false); !rep.ok() {
		t.Fatalf("upload with the URL as signed: %v, want 2xx", rep)
	}
	blobsExpectContent(t, b, key, data)
}

func blobsTestTamperedDownload(t *testing.T, b chat.Blobs) {
	data := []byte("only for the URL as signed")
	key := blobsKey()
	blobsPut(t, b, key, "text/plain", data)
	// The neighbour a changed key names exists too, so a refusal cannot be
	// a mere "not found".
	other := blobsTamperChar(key, len(key)-1)
	blobsPut(t, b, other, "text/plain", data)
	u := blobsDownloadURL(t, b, key, "signed.txt", "text/plain", time.Minute)
	for _, v := range blobsTamper(t, u, key) {
		rep := blobsSend(t, http.MethodGet, v.url, nil, nil, false)
		if !rep.refused() {
			t.Errorf("download with %s changed: %v, want 4xx", v.what, rep)
		}
		if bytes.Contains(rep.body, data) {
			t.Errorf("download with %s changed served the blob", v.what)
		}
	}
	blobsExpectServed(t, "download with the URL as signed", blobsSend(t, http.MethodGet, u, nil, nil, false), "text/plain", data)
}

func blobsTestMethods(t *testing.T, b chat.Blobs) {
	data := []byte("one way only")
	key := blobsKey()
	up, h := blobsUploadURL(t, b, key, "text/plain", int64(len(data)), time.Minute)
	if rep := blobsSend(t, http.MethodPut, up, h, data, false); !rep.ok() {
		t.Fatalf("upload: %v, want 2xx", rep)
	}
	if rep := blobsSend(t, http.MethodGet, up, nil, nil, false); !rep.refused() || bytes.Contains(rep.body, data) {
		t.Errorf("GET of an upload URL: %v, want 4xx", rep)
	}
	down := blobsDownloadURL(t, b, key, "a.txt", "text/plain", time.Minute)
	other := []byte("overwrite it")
	dh := http.Header{"Content-Type": {"text/plain"}}
	if rep := blobsSend(t, http.MethodPut, down, dh, other, false); !rep.refused() {
		t.Errorf("PUT to a download URL: %v, want 4xx", rep)
	}
	blobsExpectContent(t, b, key, data)
}

func blobsTestDisposition(t *testing.T, b chat.Blobs) {
	for _, tc := range []struct {
		contentType string
		inline      bool
	}{
		{"image/png", true},
		{"image/jpeg", true},
		{"image/gif", true},
		{"image/webp", true},
		{"image/svg+xml", false},
		{"text/html", false},
		{"text/plain", false},
		{"application/pdf", false},
		{"application/octet-stream", false},
	} {
		data := blobsData(100, 4)
		key := blobsKey()
		blobsPut(t, b, key, tc.contentType, data)
		const name = "report-2025.bin"
		rep := blobsSend(t, http.MethodGet, blobsDownloadURL(t, b, key, name, tc.contentType, time.Minute), nil, nil, false)
		blobsExpectServed(t, "download of "+tc.contentType, rep, tc.contentType, data)
		cd := rep.header.Get("Content-Disposition")
		if tc.inline {
			if cd != "" {
				if d, _, err := mime.ParseMediaType(cd); err != nil || d != "inline" {
					t.Errorf("%s: Content-Disposition %q, want none or inline", tc.contentType, cd)
				}
			}
			continue
		}
		d, params, err := mime.ParseMediaType(cd)
		if err != nil || d != "attachment" || params["filename"] != name {
			t.Errorf("%s: Content-Disposition %q, want attachment with filename %q", tc.contentType, cd, name)
		}
	}
}

func blobsTestFilename(t *testing.T, b chat.Blobs) {
	data := []byte("%PDF-1.7 not really")
	key := blobsKey()
	blobsPut(t, b, key, "application/pdf", data)
	for _, name := range []string{
		"../../etc/passwd",
		`C:\Users\me\report.pdf`,
		"evil\"\r\nSet-Cookie: stolen=1; x=\".pdf",
		"tab\tand\x00nul.pdf",
		"résumé 2025.pdf",
		"\u202egnp.exe",
		"",
	} {
		rep := blobsSend(t, http.MethodGet, blobsDownloadURL(t, b, key, name, "application/pdf", time.Minute), nil, nil, false)
		blobsExpectServed(t, fmt.Sprintf("download named %q", name), rep, "application/pdf", data)
		if rep.header.Get("Set-Cookie") != "" {
			t.Errorf("name %q: a header was injected: Set-Cookie %q", name, rep.header.Get("Set-Cookie"))
		}
		cd := rep.header.Get("Content-Disposition")
		d, params, err := mime.ParseMediaType(cd)
		if err != nil || d != "attachment" {
			t.Errorf("name %q: Content-Disposition %q (%v), want attachment", name, cd, err)
			continue
		}
		fn := params["filename"]
		bad := fn == "" || fn == "." || fn == ".." || strings.ContainsAny(fn, "/\\\"") ||
			strings.IndexFunc(fn, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0
		if bad {
			t.Errorf("name %q: filename %q is not a safe file name", name, fn)
		}
	}
}

func blobsTestPutGet(t *testing.T, b chat.Blobs) {
	for _, data := range [][]byte{
		[]byte("x"),
		{},
		blobsData(1<<20+3, 5),
	} {
		key := blobsKey()
		blobsPut(t, b, key, "application/octet-stream", data)
		blobsExpectContent(t, b, key, data)
	}
	key := blobsKey()
	blobsPut(t, b, key, "text/plain", []byte("first"))
	blobsPut(t, b, key, "text/plain", []byte("second, longer"))
	blobsExpectContent(t, b, key, []byte("second, longer"))
}

func blobsTestPutSize(t *testing.T, b chat.Blobs) {
	data := blobsData(100, 6)
	for _, tc := range []struct {
		name string
		r    []byte
	}{
		{"shorter", data[:99]},
		{"longer", append(slices.Clone(data), 1)},
	} {
		key := blobsKey()
		if err := b.Put(t.Context(), key, "application/octet-stream", bytes.NewReader(tc.r), 100); err == nil {
			t.Errorf("Put of %d bytes declared as 100 succeeded, want an error", len(tc.r))
		}
		blobsExpectAbsent(t, b, key, "Put of a "+tc.name+" reader")
	}
}

func blobsTestMissing(t *testing.T, b chat.Blobs) {
	key := blobsKey()
	rc, err := b.Get(t.Context(), key)
	if err == nil {
		rc.Close()
		t.Fatalf("Get of a missing key succeeded")
	}
	if !chat.IsNotFound(err) {
		t.Fatalf("Get of a missing key: %v, want not_found", err)
	}
	rep := blobsSend(t, http.MethodGet, blobsDownloadURL(t, b, key, "none.txt", "text/plain", time.Minute), nil, nil, false)
	if !rep.refused() {
		t.Errorf("download of a missing blob: %v, want 4xx", rep)
	}
}
