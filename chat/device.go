package chat

import "time"

// Device kinds and webhook platforms.
const (
	DeviceWebPush = "webpush"
	DeviceWebhook = "webhook"

	PlatformFCM   = "fcm"
	PlatformAPNs  = "apns"
	PlatformOther = "other"
)

// MaxDevicesPerUser bounds what one user can register, so a client that
// registers a new id on every start cannot grow its row set without end.
const MaxDevicesPerUser = 50

// WebPushKeys are a Web Push subscription's keys (RFC 8291), base64url
// without padding as browsers give them: P256DH is the user agent's
// uncompressed P-256 public key (65 bytes), Auth its 16-byte secret.
type WebPushKeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// Device is one of a user's push targets. A device id is the user's own
// choice and is unique per user only: two users may both have "phone".
// Endpoint, Keys and Token are credentials for reaching the device; the
// Store keeps them, and the public view (Public) never returns Keys or
// Token.
type Device struct {
	ID     string `json:"id"`
	UserID string `json:"user_id,omitempty"`
	Kind   string `json:"kind"`
	// Web Push.
	Endpoint string       `json:"endpoint,omitempty"`
	Keys     *WebPushKeys `json:"keys,omitempty"`
	// Webhook.
	Platform  string    `json:"platform,omitempty"`
	Token     string    `json:"token,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Public is the device as its owner sees it in answers: without the
// secrets (Keys, Token) and without the user id (always the caller).
func (d Device) Public() Device {
	d.Keys, d.Token, d.UserID = nil, "", ""
	return d
}

// ValidDeviceID reports whether s is a valid device id: 1–64 chars of
// [A-Za-z0-9._-].
func ValidDeviceID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ConversationSettings are one member's own settings of one conversation.
//
// They are stored apart from the membership row, not in it: the sequencer
// rewrites membership rows from the state it holds (on sends, reads, joins),
// so a setting kept in the row would be lost to, or resurrected by, the
// next rewrite unless it went through the command log too. A setting orders
// with nothing and emits no event, so it gets a row of its own that only
// the owner's PUT writes, at no cost to the send path.
type ConversationSettings struct {
	Muted bool `json:"muted"`
}
