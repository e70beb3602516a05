package fsblob

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/storage/blobname"
)

// Handler serves the signed URLs: PUT MountPath+key uploads and GET
// MountPath+key downloads. Mount it, unauthenticated (the signature is
// the authorization), on the listener PublicURL names, without stripping
// the prefix: mux.Handle(fsblob.MountPath, b.Handler()).
//
// An upload URL writes at most once: once a blob exists under its key,
// every upload to the key is refused with 409 conflict, so the bytes a
// posted attachment's members download never change.
//
// Answers: 200 on success; 409 conflict when the key already holds a blob; 403 forbidden for a missing, wrong or expired
// signature; 400 invalid_request for an invalid key or an upload whose
// Content-Length or Content-Type differs from the signed ones (or has no
// length); 413 too_large over the size limit; 404 not_found for a missing
// blob; 405 for other methods. Errors have the API's JSON error body, with
// the X-Request-Id an outer handler may have set.
func (b *Blobs) Handler() http.Handler { return http.HandlerFunc(b.serveHTTP) }

func (b *Blobs) serveHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, MountPath)
	if !ok {
		writeError(w, http.StatusNotFound, chat.CodeNotFound, "no such endpoint")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPut {
		w.Header().Set("Allow", "GET, PUT")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET to download or PUT to upload")
		return
	}
	if err := blobname.CheckKey(key); err != nil {
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, err.Error())
		return
	}
	g, err := b.verify(r.Method, key, r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusForbidden, chat.CodeForbidden, err.Error())
		return
	}
	if b.closed.Load() {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, chat.CodeUnavailable, "blob storage is shutting down")
		return
	}
	if r.Method == http.MethodPut {
		b.serveUpload(w, r, g)
	} else {
		b.serveDownload(w, r, g)
	}
}

func (b *Blobs) serveUpload(w http.ResponseWriter, r *http.Request, g grant) {
	size, err := strconv.ParseInt(g.size, 10, 64)
	if err != nil || size < 0 {
		writeError(w, http.StatusForbidden, chat.CodeForbidden, errBadSignature.Error())
		return
	}
	switch {
	case size > b.maxSize || r.ContentLength > b.maxSize:
		writeError(w, http.StatusRequestEntityTooLarge, chat.CodeTooLarge, fmt.Sprintf("blob is larger than %d bytes", b.maxSize))
		return
	case r.ContentLength < 0:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "Content-Length is required")
		return
	case r.ContentLength != size:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, fmt.Sprintf("Content-Length %d differs from the declared size %d", r.ContentLength, size))
		return
	}
	if ct := r.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != g.contentType {
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, fmt.Sprintf("Content-Type must be %q as declared", g.contentType))
		return
	}
	// An upload URL writes once: a blob already there (uploaded through
	// this URL or another one for the key, maybe posted since) is never
	// replaced. Checked here to spare reading the body; write checks again,
	// atomically, for uploads that race.
	if fi, err := b.root.Lstat(objectPath(g.key)); err == nil && fi.Mode().IsRegular() {
		writeError(w, http.StatusConflict, chat.CodeConflict, errUploaded.Error())
		return
	}
	body := http.MaxBytesReader(w, r.Body, size)
	err = b.write(r.Context(), "fsblob.upload", g.key, body, size, false)
	var se *sourceError
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	case chat.ErrorCode(err) == chat.CodeInvalid:
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, chat.ErrorMessage(err))
	case chat.ErrorCode(err) == chat.CodeConflict:
		writeError(w, http.StatusConflict, chat.CodeConflict, chat.ErrorMessage(err))
	case errors.As(err, &se):
		// The client went away or sent a broken body; it will not read
		// this, but say so for the logs of whatever sits in between.
		writeError(w, http.StatusBadRequest, chat.CodeInvalid, "the upload was interrupted")
	default:
		b.logger.Error("upload failed", "key", g.key, "request_id", w.Header().Get("X-Request-Id"), "err", err)
		writeError(w, http.StatusInternalServerError, chat.CodeInternal, "internal error")
	}
}

func (b *Blobs) serveDownload(w http.ResponseWriter, r *http.Request, g grant) {
	f, fi, err := b.open("fsblob.download", g.key)
	switch {
	case chat.IsNotFound(err):
		writeError(w, http.StatusNotFound, chat.CodeNotFound, "blob not found")
		return
	case err != nil:
		b.logger.Error("download failed", "key", g.key, "request_id", w.Header().Get("X-Request-Id"), "err", err)
		writeError(w, http.StatusInternalServerError, chat.CodeInternal, "internal error")
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", g.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", blobname.ContentDisposition(g.contentType, blobname.SafeFilename(g.name)))
	h.Set("Cache-Control", "private, max-age=300")
	// Blobs share the server's origin: should a browser ever render one as
	// a document, it gets no script and no access to the origin.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// writeError answers in the API's error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	body, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: msg, RequestID: h.Get("X-Request-Id")}})
	h.Del("Content-Disposition")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
