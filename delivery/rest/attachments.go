package rest

import (
	"context"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

const (
	uploadTTL   = 15 * time.Minute
	downloadTTL = 5 * time.Minute
)

// attachmentTypes are the content types an attachment may declare.
var attachmentTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"application/pdf": true, "text/plain": true, "text/csv": true, "text/markdown": true,
	"application/json": true, "application/zip": true, "application/gzip": true,
	"application/octet-stream": true, "audio/mpeg": true, "audio/ogg": true, "audio/wav": true,
	"video/mp4": true, "video/webm": true, "video/quicktime": true,
	"application/msword": true, "application/vnd.ms-excel": true, "application/vnd.ms-powerpoint": true,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   true,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         true,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": true,
	"application/vnd.oasis.opendocument.text":                                   true,
}

func (a *API) createAttachment(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	if a.blobs == nil {
		a.writeCode(w, r, chat.CodeUnavailable, "attachments are not configured")
		return
	}
	var req struct {
		Name        string `json:"name"`
		ContentType string `json:"content_type"`
		Size        *int64 `json:"size"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "\x00/\\\r\n") {
		a.writeCode(w, r, chat.CodeInvalid, "name must be 1-255 bytes without slashes or control characters")
		return
	}
	ct, _, err := mime.ParseMediaType(req.ContentType)
	if err != nil || !attachmentTypes[ct] {
		a.writeCode(w, r, chat.CodeInvalid, "content_type is not an accepted attachment type")
		return
	}
	if req.Size == nil || *req.Size < 1 {
		a.writeCode(w, r, chat.CodeInvalid, "size must be a positive number of bytes")
		return
	}
	if *req.Size > a.cfg.MaxAttachment {
		a.writeCode(w, r, chat.CodeTooLarge, "attachment is larger than the limit")
		return
	}
	rec := chat.AttachmentRecord{
		Attachment: chat.Attachment{ID: chat.NewID("att"), Name: name, ContentType: ct, Size: *req.Size},
		UploaderID: u.ID,
		CreatedAt:  time.Now().UTC(),
	}
	if err := a.store.PutAttachment(r.Context(), rec); err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	url, headers, err := a.blobs.UploadURL(r.Context(), rec.BlobKey(), ct, rec.Size, uploadTTL)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	if headers == nil {
		headers = map[string]string{}
	}
	w.Header().Set("Location", "/v1/attachments/"+rec.ID)
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{
		"id": rec.ID, "upload_url": url, "method": "PUT", "headers": headers,
		"expires_at": time.Now().Add(uploadTTL).UTC(),
		"attachment": rec.Attachment,
	})
}

// visibleAttachment loads an attachment the caller may see: its uploader,
// or a member of the conversation it was posted in, while its message
// stands. Everyone else gets 404.
func (a *API) visibleAttachment(ctx context.Context, id, uid string) (chat.AttachmentRecord, error) {
	notFound := chat.Errorf(chat.CodeNotFound, "attachment not found")
	if !chat.ValidID(id) {
		return chat.AttachmentRecord{}, notFound
	}
	rec, err := a.store.Attachment(ctx, id)
	if err != nil {
		if chat.IsNotFound(err) {
			return rec, notFound
		}
		return rec, unavailable(err)
	}
	if rec.ConversationID == "" {
		if rec.UploaderID != uid {
			return rec, notFound
		}
		return rec, nil
	}
	if _, err := a.member(ctx, rec.ConversationID, uid); err != nil {
		return rec, notFound
	}
	m, err := a.store.Message(ctx, rec.ConversationID, rec.MessageID)
	if err != nil || m.Deleted {
		return rec, notFound
	}
	return rec, nil
}

func (a *API) getAttachment(w http.ResponseWriter, r *http.Request) {
	a.redirectToBlob(w, r, false)
}

func (a *API) getThumbnail(w http.ResponseWriter, r *http.Request) {
	a.redirectToBlob(w, r, true)
}

func (a *API) redirectToBlob(w http.ResponseWriter, r *http.Request, thumb bool) {
	u := httpx.User(r)
	if a.blobs == nil {
		a.writeCode(w, r, chat.CodeUnavailable, "attachments are not configured")
		return
	}
	rec, err := a.visibleAttachment(r.Context(), r.PathValue("id"), u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	key, name, ct := rec.BlobKey(), rec.Name, rec.ContentType
	if thumb {
		if rec.ThumbnailKey == "" {
			a.writeCode(w, r, chat.CodeNotFound, "no thumbnail (yet)")
			return
		}
		key, ct = rec.ThumbnailKey, "image/png"
		name = strings.TrimSuffix(name, "."+extOf(name)) + "-thumbnail.png"
	}
	url, err := a.blobs.DownloadURL(r.Context(), key, name, ct, downloadTTL)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.Redirect(w, r, url, http.StatusFound)
}

func extOf(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// checkUploads verifies that the caller's attachments were uploaded before
// a send refers to them.
func (a *API) checkUploads(ctx context.Context, uid string, ids []string) error {
	for _, id := range ids {
		if !chat.ValidID(id) {
			return chat.Errorf(chat.CodeInvalid, "unknown attachment %q", id)
		}
		rec, err := a.store.Attachment(ctx, id)
		if err != nil || rec.UploaderID != uid || a.blobs == nil {
			return chat.Errorf(chat.CodeInvalid, "unknown attachment %q", id)
		}
		rc, err := a.blobs.Get(ctx, rec.BlobKey())
		if err != nil {
			return chat.Errorf(chat.CodeInvalid, "attachment %q has not been uploaded", id)
		}
		rc.Close()
	}
	return nil
}
