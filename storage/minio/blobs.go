// Package minio is Parley's distributed chat.Blobs: attachment bytes as
// objects in one bucket of MinIO, or of any S3-compatible store, through
// github.com/minio/minio-go/v7. The package is named after what it wraps;
// it imports minio-go as miniogo.
//
// Clients upload and download directly to and from the store with
// presigned (AWS Signature V4, query-string) URLs, so attachment bytes
// never pass through a Parley node:
//
//   - an upload URL is a presigned PUT whose signature covers the
//     Content-Type and Content-Length headers, so the store itself refuses
//     (403 or 411) a body of another length, a chunked body, and another or a
//     missing content type;
//   - a download URL is a presigned GET with response-content-type and
//     response-content-disposition overrides, so the store answers the
//     declared type, inline for PNG, JPEG, GIF and WebP and as an
//     attachment with a made-safe file name for everything else.
//
// MinIO adds "X-Content-Type-Options: nosniff" to every answer on its
// own; S3 has no request parameter for it, so on Amazon S3 (or another
// store that does not add it) the header must come from a CDN or proxy in
// front of the bucket.
//
// Signing needs no network: Open fixes the region (Config.Region), so
// UploadURL and DownloadURL never ask the store for a bucket's location.
// URLs are signed for Config.PublicEndpoint when set, the address clients
// reach the store at, which may differ from the one the server uses; a
// proxy in between must pass the Host header through unchanged, as it is
// signed.
package minio

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/storage/blobname"
)

// Limits and defaults.
const (
	// DefaultMaxSize is the largest blob accepted when Config.MaxSize is 0.
	DefaultMaxSize = 25 << 20
	// MaxUploadTTL and MaxDownloadTTL cap the lifetime of URLs; longer
	// requests are shortened to them.
	MaxUploadTTL   = 15 * time.Minute
	MaxDownloadTTL = 5 * time.Minute
	// DefaultRegion is the region URLs are signed for when Config.Region
	// is empty; MinIO accepts it unless configured otherwise.
	DefaultRegion = "us-east-1"
	// maxRetries bounds the attempts of one request (the first included),
	// so an unreachable store fails in about a second, not ten.
	maxRetries = 3
)

// Config configures the bucket. The zero Endpoint selects the embedded
// twin (storage/fsblob); the caller decides.
type Config struct {
	// Endpoint is the URL the server reaches the store at,
	// "http(s)://host[:port]", e.g. "http://127.0.0.1:9000".
	Endpoint string
	// PublicEndpoint is the URL clients reach the store at, for signed
	// URLs; empty means Endpoint. Same form as Endpoint.
	PublicEndpoint string
	// AccessKey and SecretKey are the credentials; both are required, as
	// URLs are signed with them.
	AccessKey string
	SecretKey string
	// Bucket holds the blobs; Open creates it when missing.
	Bucket string
	// Region signs requests and places a new bucket; DefaultRegion when
	// empty.
	Region string
	// MaxSize is the largest blob, in bytes; 0 means DefaultMaxSize.
	MaxSize int64
}

// RegisterFlags registers the settings on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Endpoint, "s3.endpoint", "", "S3/MinIO endpoint URL, http(s)://host[:port] (default: the embedded blob folder)")
	fs.StringVar(&c.PublicEndpoint, "s3.public-endpoint", "", "S3/MinIO endpoint URL as clients reach it, for attachment URLs (default: -s3.endpoint)")
	fs.StringVar(&c.AccessKey, "s3.access-key", "", "S3 access key")
	fs.StringVar(&c.SecretKey, "s3.secret-key", "", "S3 secret key")
	fs.StringVar(&c.Bucket, "s3.bucket", "parley", "S3 bucket, created when missing")
	fs.StringVar(&c.Region, "s3.region", DefaultRegion, "S3 region")
	fs.Int64Var(&c.MaxSize, "s3.max-size", DefaultMaxSize, "largest attachment in bytes")
}

func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.PublicEndpoint == "" {
		c.PublicEndpoint = c.Endpoint
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("endpoint is required"))
	} else if _, _, err := parseEndpoint(c.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("endpoint: %w", err))
	}
	if c.PublicEndpoint != c.Endpoint {
		if _, _, err := parseEndpoint(c.PublicEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("public endpoint: %w", err))
		}
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("access key and secret key are required"))
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		errs = append(errs, fmt.Errorf("bucket %q: %w", c.Bucket, err))
	}
	if strings.IndexFunc(c.Region, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		errs = append(errs, fmt.Errorf("region %q must be letters, digits, - and _", c.Region))
	}
	if c.MaxSize < 0 {
		errs = append(errs, errors.New("max size must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("minio: config: %w", err)
	}
	return nil
}

// parseEndpoint splits "http(s)://host[:port]" into host and whether it is
// TLS. A path, query, fragment or user is refused: minio-go addresses
// buckets at the root.
func parseEndpoint(raw string) (host string, secure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return "", false, fmt.Errorf("%q must be http(s)://host[:port]", raw)
	}
	return u.Host, u.Scheme == "https", nil
}

// Blobs is a chat.Blobs on an S3 bucket. Open it with Open; it is safe for
// concurrent use.
type Blobs struct {
	client    *miniogo.Client // talks to the store
	presigner *miniogo.Client // signs URLs for PublicEndpoint; never dials
	transport *http.Transport
	bucket    string
	region    string
	maxSize   int64
	closed    atomic.Bool
}

var _ chat.Blobs = (*Blobs)(nil)

// Open connects to the store and creates cfg.Bucket when it is missing.
// An unreachable store is unavailable.
func Open(ctx context.Context, cfg Config) (*Blobs, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	client, err := newClient(cfg, cfg.Endpoint, transport)
	if err != nil {
		return nil, fmt.Errorf("minio: open: %w", err)
	}
	presigner := client
	if cfg.PublicEndpoint != cfg.Endpoint {
		if presigner, err = newClient(cfg, cfg.PublicEndpoint, transport); err != nil {
			return nil, fmt.Errorf("minio: open: %w", err)
		}
	}
	b := &Blobs{
		client:    client,
		presigner: presigner,
		transport: transport,
		bucket:    cfg.Bucket,
		region:    cfg.Region,
		maxSize:   cfg.MaxSize,
	}
	if err := b.ensureBucket(ctx); err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	return b, nil
}

func newClient(cfg Config, endpoint string, transport http.RoundTripper) (*miniogo.Client, error) {
	host, secure, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return miniogo.New(host, &miniogo.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     secure,
		Region:     cfg.Region,
		Transport:  transport,
		MaxRetries: maxRetries,
	})
}

// ensureBucket creates the bucket unless it exists. Another node may
// create it at the same moment, which is fine.
func (b *Blobs) ensureBucket(ctx context.Context) error {
	const op = "minio.open"
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return classify(op, "check bucket "+b.bucket, err)
	}
	if ok {
		return nil
	}
	err = b.client.MakeBucket(ctx, b.bucket, miniogo.MakeBucketOptions{Region: b.region})
	if code := s3Code(err); code == "BucketAlreadyOwnedByYou" {
		err = nil
	}
	if err != nil {
		return classify(op, "create bucket "+b.bucket, err)
	}
	return nil
}

// Close releases idle connections. Operations after Close fail as
// unavailable.
func (b *Blobs) Close() error {
	if !b.closed.Swap(true) {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// Ping reports whether the store answers and the bucket exists.
func (b *Blobs) Ping(ctx context.Context) error {
	const op = "minio.ping"
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	ok, err := b.client.BucketExists(ctx, b.bucket)
	if err != nil {
		return classify(op, "check bucket "+b.bucket, err)
	}
	if !ok {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "bucket " + b.bucket + " is missing"}
	}
	return nil
}

func (b *Blobs) usable(ctx context.Context, op string) error {
	if b.closed.Load() {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "blob store is closed"}
	}
	if err := ctx.Err(); err != nil {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "canceled", Err: err}
	}
	return nil
}

// UploadURL returns a presigned PUT that accepts exactly size bytes of
// contentType for key until ttl (at most MaxUploadTTL) has passed, and
// the headers to send with it: Content-Type, If-None-Match: *, and
// Content-Length, which an HTTP client sets itself from the body. The
// conditional header is signed too, so the URL writes at most once: the
// store refuses it (412) once key holds an object, and never replaces
// the bytes of an attachment already uploaded (and maybe posted).
func (b *Blobs) UploadURL(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (string, map[string]string, error) {
	const op = "minio.upload_url"
	if err := b.usable(ctx, op); err != nil {
		return "", nil, err
	}
	if err := b.checkBlob(op, key, contentType, size); err != nil {
		return "", nil, err
	}
	expires, err := expiry(op, ttl, MaxUploadTTL)
	if err != nil {
		return "", nil, err
	}
	length := strconv.FormatInt(size, 10)
	signed := http.Header{"Content-Type": {contentType}, "Content-Length": {length}, "If-None-Match": {"*"}}
	u, err := b.presigner.PresignHeader(ctx, http.MethodPut, b.bucket, key, expires, nil, signed)
	if err != nil {
		return "", nil, fmt.Errorf("minio: sign upload of %s: %w", key, err)
	}
	return u.String(), map[string]string{"Content-Type": contentType, "Content-Length": length, "If-None-Match": "*"}, nil
}

// DownloadURL returns a presigned GET that serves key as contentType,
// named name, until ttl (at most MaxDownloadTTL) has passed. It does not
// check that the blob exists; the URL answers 404 while it does not.
func (b *Blobs) DownloadURL(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error) {
	const op = "minio.download_url"
	if err := b.usable(ctx, op); err != nil {
		return "", err
	}
	if err := blobname.CheckKey(key); err != nil {
		return "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if err := blobname.CheckContentType(contentType); err != nil {
		return "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	expires, err := expiry(op, ttl, MaxDownloadTTL)
	if err != nil {
		return "", err
	}
	params := url.Values{
		"response-content-type":        {contentType},
		"response-content-disposition": {blobname.ContentDisposition(contentType, blobname.SafeFilename(name))},
	}
	u, err := b.presigner.PresignedGetObject(ctx, b.bucket, key, expires, params)
	if err != nil {
		return "", fmt.Errorf("minio: sign download of %s: %w", key, err)
	}
	return u.String(), nil
}

// expiry caps ttl and makes it whole seconds, as signatures count them; a
// ttl below one second is one second.
func expiry(op string, ttl, limit time.Duration) (time.Duration, error) {
	if ttl <= 0 {
		return 0, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "ttl must be positive"}
	}
	return max(min(ttl, limit).Truncate(time.Second), time.Second), nil
}

func (b *Blobs) checkBlob(op, key, contentType string, size int64) error {
	if err := blobname.CheckKey(key); err != nil {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if err := blobname.CheckContentType(contentType); err != nil {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if size < 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "size must not be negative"}
	}
	if size > b.maxSize {
		return &chat.Error{Code: chat.CodeTooLarge, Op: op, Message: fmt.Sprintf("blob is larger than %d bytes", b.maxSize)}
	}
	return nil
}

// Put stores exactly size bytes from r under key, replacing any blob
// there. A reader that ends early or holds more is refused (invalid) and
// nothing is stored: the last byte is withheld from the store until r is
// known to end there, so the store sees a short body and drops it.
func (b *Blobs) Put(ctx context.Context, key, contentType string, r io.Reader, size int64) error {
	const op = "minio.put"
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	if err := b.checkBlob(op, key, contentType, size); err != nil {
		return err
	}
	src := &exactReader{ctx: ctx, r: r, left: size}
	if size == 0 {
		// An empty body is sent without reading r, so check r first.
		_, _ = src.Read(nil)
		if err := src.failure(); err != nil {
			return src.classify(op, key, err)
		}
	}
	_, err := b.client.PutObject(ctx, b.bucket, key, src, size, miniogo.PutObjectOptions{ContentType: contentType})
	if err != nil {
		if serr := src.failure(); serr != nil {
			return src.classify(op, key, serr)
		}
		return classify(op, "put "+key, err)
	}
	return nil
}

// Get opens the blob under key; missing blobs are not_found. The reader
// reads with ctx, so it must be consumed before ctx ends.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	const op = "minio.get"
	if err := b.usable(ctx, op); err != nil {
		return nil, err
	}
	if err := blobname.CheckKey(key); err != nil {
		return nil, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	obj, err := b.client.GetObject(ctx, b.bucket, key, miniogo.GetObjectOptions{})
	if err != nil {
		return nil, classify(op, "get "+key, err)
	}
	// GetObject is lazy: Stat sends the request, so a missing blob is
	// reported here and not on the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, classify(op, "get "+key, err)
	}
	return obj, nil
}

// s3Code is the S3 error code of err, "" when the store did not answer.
func s3Code(err error) string {
	var resp miniogo.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

// classify translates a minio-go error: a missing key is not_found; no
// answer (network, timeout, cancellation), a server error, a missing
// bucket or refused credentials are unavailable, as the store cannot be
// used; anything else is a plain (internal) error.
func classify(op, what string, err error) error {
	var resp miniogo.ErrorResponse
	if !errors.As(err, &resp) {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "blob store is unreachable", Err: fmt.Errorf("minio: %s: %w", what, err)}
	}
	switch {
	case resp.Code == "NoSuchKey":
		return &chat.Error{Code: chat.CodeNotFound, Op: op, Message: "blob not found", Err: err}
	case resp.StatusCode >= 500, resp.Code == "NoSuchBucket", resp.Code == "AccessDenied",
		resp.Code == "InvalidAccessKeyId", resp.Code == "SignatureDoesNotMatch", resp.Code == "SlowDown":
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "blob store refused the request", Err: fmt.Errorf("minio: %s: %w", what, err)}
	}
	return fmt.Errorf("minio: %s: %w", what, err)
}

// errShort and errLong are a body of another size than declared.
var (
	errShort = errors.New("body is shorter than the declared size")
	errLong  = errors.New("body is longer than the declared size")
)

// exactReader yields exactly left bytes of r, or fails. It reads ahead one
// byte before yielding the last ones, so a reader holding more fails
// before the store has received a whole body. Its failure is kept, as
// minio-go and net/http wrap or replace it; the HTTP transport may still
// be reading when Put looks at it, hence the lock around err alone.
type exactReader struct {
	ctx  context.Context
	r    io.Reader
	left int64

	mu  sync.Mutex
	err error // io.EOF once the whole body was yielded
}

func (s *exactReader) Read(p []byte) (int, error) {
	if err := s.stopped(); err != nil {
		return 0, err
	}
	if err := s.ctx.Err(); err != nil {
		return 0, s.stop(err)
	}
	if int64(len(p)) < s.left {
		n, err := s.r.Read(p)
		s.left -= int64(n)
		switch {
		case err == io.EOF:
			return n, s.stop(errShort)
		case err != nil:
			return n, s.stop(err)
		}
		return n, nil
	}
	p = p[:s.left]
	n, err := io.ReadFull(s.r, p)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return 0, s.stop(errShort)
	case err != nil:
		return 0, s.stop(err)
	}
	var probe [1]byte
	switch k, err := io.ReadFull(s.r, probe[:]); {
	case k > 0:
		return 0, s.stop(errLong)
	case err != io.EOF:
		return 0, s.stop(err)
	}
	s.left = 0
	s.stop(io.EOF)
	return n, nil
}

func (s *exactReader) stop(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	return err
}

func (s *exactReader) stopped() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// failure is why the reader stopped early: nil when it yielded the whole
// body or was not read to the end.
func (s *exactReader) failure() error {
	if err := s.stopped(); err != io.EOF {
		return err
	}
	return nil
}

func (s *exactReader) classify(op, key string, err error) error {
	switch {
	case errors.Is(err, errShort) || errors.Is(err, errLong):
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "canceled", Err: err}
	}
	return fmt.Errorf("minio: put %s: read: %w", key, err)
}
