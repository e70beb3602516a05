package chat

// imageTypes are the attachment types that are images: the media role
// makes thumbnails of them and browsers show them in place. SVG is absent
// on purpose: it can carry script.
var imageTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
}

// otherAttachmentTypes are the attachment types besides the images.
var otherAttachmentTypes = map[string]bool{
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

// IsImageType reports whether mediaType (a bare media type, without
// parameters) is an image type: thumbnailed, and shown inline.
func IsImageType(mediaType string) bool { return imageTypes[mediaType] }

// IsAttachmentType reports whether mediaType (a bare media type, without
// parameters) is a content type an attachment may declare.
func IsAttachmentType(mediaType string) bool {
	return imageTypes[mediaType] || otherAttachmentTypes[mediaType]
}
