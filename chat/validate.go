package chat

import (
	"strings"
	"unicode/utf8"
)

// Limits of the public API.
const (
	MaxTextChars     = 4000
	MaxTitleChars    = 200
	MaxClientIDLen   = 128
	MaxEmojiBytes    = 32
	MaxCreateMembers = MaxEventsPerCommand - 1
	MaxAttachments   = 10
)

// ValidUserID reports whether s is a valid user id: 1–64 chars of
// [A-Za-z0-9._@-].
func ValidUserID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidID reports whether s looks like an id we could have issued: 1–128
// chars of [A-Za-z0-9_-]. It keeps junk out of keys and logs.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// CleanText trims s and checks its length; allowEmpty permits "" (a message
// with attachments).
func CleanText(s string, allowEmpty bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", Errorf(CodeInvalid, "text is not valid UTF-8")
	}
	t := strings.TrimSpace(s)
	n := utf8.RuneCountInString(t)
	if n == 0 && !allowEmpty {
		return "", Errorf(CodeInvalid, "text must not be empty")
	}
	if n > MaxTextChars {
		return "", Errorf(CodeInvalid, "text is longer than %d characters", MaxTextChars)
	}
	return t, nil
}

// CleanTitle trims and checks a conversation title (may be empty).
func CleanTitle(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", Errorf(CodeInvalid, "title is not valid UTF-8")
	}
	t := strings.TrimSpace(s)
	if utf8.RuneCountInString(t) > MaxTitleChars {
		return "", Errorf(CodeInvalid, "title is longer than %d characters", MaxTitleChars)
	}
	return t, nil
}

// ValidClientID reports whether s is an acceptable client_id.
func ValidClientID(s string) bool {
	return len(s) <= MaxClientIDLen && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00\n\r")
}

// ValidEmoji reports whether s is an acceptable reaction key.
func ValidEmoji(s string) bool {
	return len(s) > 0 && len(s) <= MaxEmojiBytes && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00/ \t\n\r")
}
