// Package blobname holds the rules every Blobs adapter applies to keys,
// content types and download names, so that the embedded folder
// (storage/fsblob) and S3 (storage/minio) accept the same keys and serve
// the same headers: a key that works in one mode works in the other.
package blobname

import (
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/chat"
)

// Key limits: keys are server-made ids, so these are generous.
const (
	maxKeyLen     = 512
	maxSegmentLen = 200
	maxTypeLen    = 255
	maxNameBytes  = 180
)

// CheckKey accepts keys of [A-Za-z0-9_./-] whose "/"-separated elements
// are non-empty and do not start with a dot, so a key is always a plain
// relative path below the objects folder: no "..", no "." element, no
// leading slash, no hidden file.
func CheckKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return errors.New("key must be 1 to 512 characters")
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '/', c == '-':
		default:
			return errors.New("key has a character outside [A-Za-z0-9_./-]")
		}
	}
	if strings.Contains(key, "..") {
		return errors.New("key must not contain ..")
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return errors.New("key must not start or end with / or contain //")
		case seg[0] == '.':
			return errors.New("key elements must not start with a dot")
		case len(seg) > maxSegmentLen:
			return errors.New("key element is too long")
		}
	}
	return nil
}

// CheckContentType accepts a media type, with optional parameters, made of
// printable ASCII, so it is safe to echo as a header.
func CheckContentType(ct string) error {
	if ct == "" || len(ct) > maxTypeLen {
		return errors.New("content type must be 1 to 255 characters")
	}
	for i := 0; i < len(ct); i++ {
		if ct[i] < 0x20 || ct[i] > 0x7e {
			return errors.New("content type must be printable ASCII")
		}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return errors.New("content type is not a media type")
	}
	return nil
}

// IsInline reports whether browsers show contentType in place (the image
// types of chat.IsImageType); everything else downloads.
func IsInline(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && chat.IsImageType(mt)
}

// SafeFilename makes a client's file name safe to offer as a download
// name: only its last path element, without control or invisible format
// characters (such as right-to-left overrides), quotes or backslashes,
// without leading or trailing dots and spaces, at most maxNameBytes long
// (keeping a short extension), and never empty.
func SafeFilename(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var sb strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			sb.WriteByte('_') // invalid UTF-8
		case r == '\t', unicode.In(r, unicode.Zl, unicode.Zp):
			sb.WriteByte(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		case r == '"', r == '\\':
			sb.WriteByte('_')
		case unicode.IsSpace(r):
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	name = strings.Trim(sb.String(), " .")
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		base := name[:len(name)-len(ext)]
		cut := maxNameBytes - len(ext)
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		name = strings.Trim(base[:cut], " .") + ext
	}
	if name == "" || strings.Trim(name, ".") == "" {
		return "download"
	}
	return name
}

// ContentDisposition is the Content-Disposition of a download: inline for
// images, attachment otherwise, with name (already safe) as an ASCII
// fallback and, when it is not ASCII, as RFC 6266 filename* too.
func ContentDisposition(contentType, name string) string {
	kind := "attachment"
	if IsInline(contentType) {
		kind = "inline"
	}
	ascii := strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f {
			return r
		}
		return '_'
	}, name)
	v := kind + `; filename="` + ascii + `"`
	if ascii != name {
		v += "; filename*=UTF-8''" + encodeExtValue(name)
	}
	return v
}

// encodeExtValue percent-encodes s as an RFC 8187 ext-value: every byte
// but attr-char.
func encodeExtValue(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// Check checks a blob about to be stored or signed for: its key, its
// content type and its size (0 to maxSize bytes). Both Blobs adapters call
// it, so they refuse the same blobs with the same codes: invalid, or
// too_large.
func Check(op, key, contentType string, size, maxSize int64) error {
	if err := CheckKey(key); err != nil {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if err := CheckContentType(contentType); err != nil {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: err.Error()}
	}
	if size < 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "size must not be negative"}
	}
	if size > maxSize {
		return &chat.Error{Code: chat.CodeTooLarge, Op: op, Message: fmt.Sprintf("blob is larger than %d bytes", maxSize)}
	}
	return nil
}
