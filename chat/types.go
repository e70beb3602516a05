// Package chat holds Parley's domain: conversations, members, messages,
// durable and ephemeral events, the commands that produce them, the resume
// cursor, and the four ports (Log, Store, Index, Blobs) that adapters
// implement. It imports only the standard library.
package chat

import (
	"time"
)

// Conversation kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Conversation is a group or direct conversation. LastSeq is the newest
// durable event's seq; ReadSeq and Unread are filled per caller by the API.
type Conversation struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Title     string    `json:"title"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Members   []string  `json:"members"`
	LastSeq   int64     `json:"last_seq"`
	ReadSeq   int64     `json:"read_seq"`
	Unread    int64     `json:"unread"`

	// LastPosition is the partition position of the newest event; commands
	// at or below it are already applied (replays are skipped).
	LastPosition int64 `json:"-"`
	// LastActivity is the time of the newest event, for "newest first".
	LastActivity time.Time `json:"-"`
}

// HasMember reports whether uid is a current member.
func (c *Conversation) HasMember(uid string) bool {
	for _, m := range c.Members {
		if m == uid {
			return true
		}
	}
	return false
}

// Membership is one user's relation to one conversation. Left memberships
// are kept (with the position of the user's member.removed event) so that a
// resume can replay up to the removal.
type Membership struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Active         bool   `json:"active"`
	// JoinedPosition is the position of the user's latest member.added.
	JoinedPosition int64 `json:"joined_position"`
	// LeftPosition is the position of the user's member.removed, 0 while active.
	LeftPosition int64 `json:"left_position"`
	ReadSeq      int64 `json:"read_seq"`
}

// Attachment is the public description of an uploaded file. Thumbnail is
// true once GET /v1/attachments/{id}/thumbnail serves one.
type Attachment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Thumbnail   bool   `json:"thumbnail,omitempty"`
}

// AttachmentRecord is an attachment's stored state. It belongs to its
// uploader until posted, then to the conversation it was posted in.
type AttachmentRecord struct {
	Attachment
	UploaderID     string    `json:"uploader_id"`
	CreatedAt      time.Time `json:"created_at"`
	ConversationID string    `json:"conversation_id,omitempty"`
	MessageID      string    `json:"message_id,omitempty"`
	// ThumbnailKey names the thumbnail blob once the media role made it.
	ThumbnailKey string `json:"thumbnail_key,omitempty"`
}

// BlobKey is where an attachment's bytes live.
func (a *AttachmentRecord) BlobKey() string { return "att/" + a.ID }

// Message is the materialized state of a message.
type Message struct {
	ID             string              `json:"id"`
	ConversationID string              `json:"conversation_id"`
	Seq            int64               `json:"seq"`
	SenderID       string              `json:"sender_id"`
	ClientID       string              `json:"client_id"`
	Text           string              `json:"text"`
	Attachments    []Attachment        `json:"attachments"`
	ReplyTo        *string             `json:"reply_to"`
	CreatedAt      time.Time           `json:"created_at"`
	EditedAt       *time.Time          `json:"edited_at"`
	Deleted        bool                `json:"deleted"`
	Reactions      map[string][]string `json:"reactions"`
	Version        int                 `json:"version"`
}

// Normalize makes empty collections encode as [] and {} rather than null.
func (m *Message) Normalize() {
	if m.Attachments == nil {
		m.Attachments = []Attachment{}
	}
	if m.Reactions == nil {
		m.Reactions = map[string][]string{}
	}
}

// Durable event types.
const (
	EventMessageCreated      = "message.created"
	EventMessageUpdated      = "message.updated"
	EventMessageDeleted      = "message.deleted"
	EventReactionAdded       = "reaction.added"
	EventReactionRemoved     = "reaction.removed"
	EventMemberAdded         = "member.added"
	EventMemberRemoved       = "member.removed"
	EventConversationUpdated = "conversation.updated"
	EventReadUpdated         = "read.updated"
)

// Ephemeral event types: never stored, never replayed.
const (
	EventTyping   = "typing"
	EventPresence = "presence"
)

// Event is a durable event of one conversation. Seq is gap-free per
// conversation. Partition and Position place it in the user's stream: the
// position grows strictly within a partition, and every event of a
// conversation lives in the conversation's partition.
type Event struct {
	Type           string        `json:"type"`
	ConversationID string        `json:"conversation_id"`
	Seq            int64         `json:"seq"`
	EventID        string        `json:"event_id"`
	At             time.Time     `json:"at"`
	Actor          string        `json:"actor"`
	Message        *Message      `json:"message,omitempty"`
	MessageID      string        `json:"message_id,omitempty"`
	Emoji          string        `json:"emoji,omitempty"`
	UserID         string        `json:"user_id,omitempty"`
	Conversation   *Conversation `json:"conversation,omitempty"`
	// ReadSeq is the reader's new read position on read.updated (the
	// event's own seq is its place in the conversation log).
	ReadSeq int64 `json:"read_seq,omitempty"`

	// Partition and Position are internal: adapters persist them, and the
	// gateway zeroes them (so omitempty drops them) before encoding for
	// clients.
	Partition int   `json:"partition,omitempty"`
	Position  int64 `json:"position,omitempty"`
}

// Ephemeral is a typing or presence event.
type Ephemeral struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id,omitempty"`
	UserID         string `json:"user_id"`
	Online         *bool  `json:"online,omitempty"`
}

// User is an authenticated principal.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}
