// Package fsblob is Parley's embedded chat.Blobs: attachment bytes as files
// in a local folder, behind URLs that the server itself signs and serves.
//
// Upload and download URLs point at Handler, which the server mounts at
// MountPath on its own listener. A URL carries its expiry and an
// HMAC-SHA256 over the method, key, size, content type, download name and
// expiry, keyed with a secret only the server knows, so a URL grants
// exactly one operation on one key until it expires and cannot be altered.
//
// Files live under Dir/objects, opened through an os.Root, so no key (and
// no symbolic link) reaches outside Dir. An upload is written to Dir/tmp,
// synced, and renamed into place, so a blob is either whole or absent.
package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/storage/blobname"
)

// MountPath is the path prefix Handler serves; URLs are PublicURL +
// MountPath + key.
const MountPath = "/blobs/"

// Limits.
const (
	// DefaultMaxSize is the largest blob accepted when Config.MaxSize is 0.
	DefaultMaxSize = 25 << 20
	// MaxUploadTTL and MaxDownloadTTL cap the lifetime of URLs; longer
	// requests are shortened to them.
	MaxUploadTTL   = 15 * time.Minute
	MaxDownloadTTL = 5 * time.Minute
	// minSecret is the shortest signing secret accepted.
	minSecret = 16
)

// Layout of Dir.
const (
	objectsDir = "objects"
	tmpDir     = "tmp"
	secretFile = "signing-key"
)

// Config configures the blob folder.
type Config struct {
	// Dir is the folder; Open creates it when missing.
	Dir string
	// Secret keys the URL signatures. Empty means a random secret that Open
	// creates once and keeps in Dir, so URLs survive a restart.
	Secret []byte
	// PublicURL is the server's origin as clients reach it, e.g.
	// "https://chat.example.com", without a trailing slash. Empty makes
	// URLs root-relative ("/blobs/…"), which a browser resolves against the
	// page's own origin.
	PublicURL string
	// MaxSize is the largest blob, in bytes; 0 means DefaultMaxSize.
	MaxSize int64
	// Logger receives failures Handler cannot return; nil discards them.
	Logger *slog.Logger
}

// RegisterFlags registers the settings an operator may give on fs. Dir is
// left to the caller, which derives it from the data folder.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.PublicURL, "blobs.public-url", "", "origin clients reach this server at, for attachment URLs (default: root-relative URLs)")
	fs.Int64Var(&c.MaxSize, "blobs.max-size", DefaultMaxSize, "largest attachment in bytes")
	fs.Func("blobs.secret", "secret that signs attachment URLs (default: a random one kept in the blob folder)", func(s string) error {
		c.Secret = []byte(s)
		return nil
	})
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("fsblob: config: dir is required")
	case len(c.Secret) > 0 && len(c.Secret) < minSecret:
		return fmt.Errorf("fsblob: config: secret must be at least %d bytes", minSecret)
	case c.MaxSize < 0:
		return errors.New("fsblob: config: max size must not be negative")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(c.PublicURL, "/") {
			return fmt.Errorf("fsblob: config: public URL %q must be http(s)://host[:port][/path] without a trailing slash", c.PublicURL)
		}
	}
	return nil
}

// Blobs is a chat.Blobs on a local folder. Open it with Open; it is safe
// for concurrent use.
type Blobs struct {
	root      *os.Root
	secret    []byte
	publicURL string
	maxSize   int64
	logger    *slog.Logger
	now       func() time.Time
	closed    atomic.Bool
}

var _ chat.Blobs = (*Blobs)(nil)

// Open opens (or creates) the blob folder cfg.Dir. Partial uploads left by
// a previous process are removed, so one folder must be used by one
// process at a time.
func Open(ctx context.Context, cfg Config) (*Blobs, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsblob: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("fsblob: open: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: open: %w", err)
	}
	b := &Blobs{
		root:      root,
		secret:    cfg.Secret,
		publicURL: cfg.PublicURL,
		maxSize:   cfg.MaxSize,
		logger:    cfg.Logger,
		now:       time.Now,
	}
	if b.maxSize == 0 {
		b.maxSize = DefaultMaxSize
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	b.logger = b.logger.With("component", "fsblob")
	if err := b.prepare(); err != nil {
		root.Close()
		return nil, fmt.Errorf("fsblob: open %s: %w", cfg.Dir, err)
	}
	return b, nil
}

// prepare makes the folder layout, clears partial uploads and loads the
// secret.
func (b *Blobs) prepare() error {
	if err := b.root.RemoveAll(tmpDir); err != nil {
		return err
	}
	for _, d := range []string{objectsDir, tmpDir} {
		if err := b.root.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if len(b.secret) > 0 {
		return nil
	}
	secret, err := b.root.ReadFile(secretFile)
	if err == nil {
		if len(secret) < minSecret {
			return fmt.Errorf("%s is too short; remove it to make a new one", secretFile)
		}
		b.secret = secret
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	secret = make([]byte, 32)
	_, _ = rand.Read(secret)
	tmp := path.Join(tmpDir, secretFile)
	if err := b.root.WriteFile(tmp, secret, 0o600); err != nil {
		return err
	}
	if err := syncFile(b.root, tmp); err != nil {
		return err
	}
	if err := b.root.Rename(tmp, secretFile); err != nil {
		return err
	}
	if err := syncFile(b.root, "."); err != nil {
		return err
	}
	b.secret = secret
	return nil
}

// Close releases the folder. Operations after Close fail as unavailable.
func (b *Blobs) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.root.Close()
}

// Ping reports whether the folder is usable.
func (b *Blobs) Ping(ctx context.Context) error {
	if err := b.usable(ctx, "fsblob.ping"); err != nil {
		return err
	}
	if _, err := b.root.Stat(objectsDir); err != nil {
		return &chat.Error{Code: chat.CodeUnavailable, Op: "fsblob.ping", Message: "blob folder is not usable", Err: err}
	}
	return nil
}

func (b *Blobs) usable(ctx context.Context, op string) error {
	if b.closed.Load() {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "blob folder is closed"}
	}
	if err := ctx.Err(); err != nil {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "canceled", Err: err}
	}
	return nil
}

// UploadURL returns a URL that accepts one PUT of exactly size bytes of
// contentType for key until ttl (at most MaxUploadTTL) has passed, and
// the headers to send with it. The URL writes at most once: it is refused
// (409) once key holds a blob.
func (b *Blobs) UploadURL(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (string, map[string]string, error) {
	const op = "fsblob.upload_url"
	if err := b.usable(ctx, op); err != nil {
		return "", nil, err
	}
	if err := b.checkBlob(op, key, contentType, size); err != nil {
		return "", nil, err
	}
	exp, err := b.expiry(op, ttl, MaxUploadTTL)
	if err != nil {
		return "", nil, err
	}
	g := grant{method: "PUT", key: key, size: strconv.FormatInt(size, 10), contentType: contentType, expires: exp}
	return b.url(g), map[string]string{"Content-Type": contentType}, nil
}

// DownloadURL returns a URL that serves key as contentType, named name,
// until ttl (at most MaxDownloadTTL) has passed. It does not check that
// the blob exists; the URL answers 404 while it does not.
func (b *Blobs) DownloadURL(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error) {
	const op = "fsblob.download_url"
	if err := b.usable(ctx, op); err != nil {
		return "", err
	}
	if err := blobname.CheckKey(key); err != nil {
		return "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if err := blobname.CheckContentType(contentType); err != nil {
		return "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	exp, err := b.expiry(op, ttl, MaxDownloadTTL)
	if err != nil {
		return "", err
	}
	g := grant{method: "GET", key: key, contentType: contentType, name: blobname.SafeFilename(name), expires: exp}
	return b.url(g), nil
}

// expiry is now + ttl, capped, in Unix seconds.
func (b *Blobs) expiry(op string, ttl, limit time.Duration) (string, error) {
	if ttl <= 0 {
		return "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "ttl must be positive"}
	}
	ttl = min(ttl, limit)
	return strconv.FormatInt(b.now().Add(ttl).Unix(), 10), nil
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
// nothing is stored.
func (b *Blobs) Put(ctx context.Context, key, contentType string, r io.Reader, size int64) error {
	const op = "fsblob.put"
	if err := b.usable(ctx, op); err != nil {
		return err
	}
	if err := b.checkBlob(op, key, contentType, size); err != nil {
		return err
	}
	return b.write(ctx, op, key, r, size, true)
}

// Get opens the blob under key; missing blobs are not_found.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	const op = "fsblob.get"
	if err := b.usable(ctx, op); err != nil {
		return nil, err
	}
	f, _, err := b.open(op, key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// open opens the regular file of key.
func (b *Blobs) open(op, key string) (*os.File, os.FileInfo, error) {
	if err := blobname.CheckKey(key); err != nil {
		return nil, nil, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	f, err := b.root.Open(objectPath(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, &chat.Error{Code: chat.CodeNotFound, Op: op, Message: "blob not found", Err: err}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &chat.Error{Code: chat.CodeNotFound, Op: op, Message: "blob not found"}
	}
	return f, fi, nil
}

// errShort and errLong are a body of another size than declared.
var (
	errShort = errors.New("body is shorter than the declared size")
	errLong  = errors.New("body is longer than the declared size")
)

// sourceError marks a failure to read the bytes to store, as opposed to a
// failure to write them.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// source reads the bytes to store, stops when ctx ends, and tags its
// errors as sourceError.
type source struct {
	ctx context.Context
	r   io.Reader
}

func (s source) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, &sourceError{err}
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// errUploaded refuses a second write through an upload URL.
var errUploaded = errors.New("the blob was already uploaded; an upload URL writes once")

// write stores exactly size bytes of r under key: into a temporary file,
// synced, then moved into place. On any failure nothing is stored. With
// replace false an existing blob is kept and the write is a conflict:
// the file is hard-linked into place, which fails when the name exists,
// so of two concurrent writes exactly one lands.
func (b *Blobs) write(ctx context.Context, op, key string, r io.Reader, size int64, replace bool) (err error) {
	tmp := path.Join(tmpDir, randomName())
	f, err := b.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			_ = b.root.Remove(tmp)
		}
	}()
	src := source{ctx: ctx, r: r}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err == nil && n < size {
		err = errShort
	}
	if err == nil {
		var probe [1]byte
		if k, _ := io.ReadFull(src, probe[:]); k > 0 {
			err = errLong
		}
	}
	var se *sourceError
	switch {
	case errors.Is(err, errShort) || errors.Is(err, errLong):
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	case errors.As(err, &se):
		return fmt.Errorf("fsblob: put %s: read: %w", key, se) // still a sourceError: the client's fault, not ours
	case err != nil:
		return fmt.Errorf("fsblob: put %s: write: %w", key, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsblob: put %s: sync: %w", key, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("fsblob: put %s: close: %w", key, err)
	}
	dst := objectPath(key)
	if err = b.root.MkdirAll(path.Dir(dst), 0o750); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return &chat.Error{Code: chat.CodeConflict, Op: op, Message: "a prefix of the key is a blob", Err: err}
		}
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	if !replace {
		if err = b.root.Link(tmp, dst); err != nil {
			if fi, serr := b.root.Lstat(dst); serr == nil && fi.Mode().IsRegular() {
				return &chat.Error{Code: chat.CodeConflict, Op: op, Message: errUploaded.Error(), Err: err}
			}
			if errors.Is(err, fs.ErrExist) {
				return &chat.Error{Code: chat.CodeConflict, Op: op, Message: "the key is a prefix of other keys", Err: err}
			}
			return fmt.Errorf("fsblob: put %s: %w", key, err)
		}
		_ = b.root.Remove(tmp)
	} else if err = b.root.Rename(tmp, dst); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) {
			return &chat.Error{Code: chat.CodeConflict, Op: op, Message: "the key is a prefix of other keys", Err: err}
		}
		return fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	if err = syncFile(b.root, path.Dir(dst)); err != nil {
		return fmt.Errorf("fsblob: put %s: sync folder: %w", key, err)
	}
	return nil
}

// syncFile fsyncs the file or folder name of root.
func syncFile(root *os.Root, name string) error {
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func randomName() string {
	var p [12]byte
	_, _ = rand.Read(p[:])
	return hex.EncodeToString(p[:]) + ".part"
}

func objectPath(key string) string { return objectsDir + "/" + key }
