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

// MaxListedMembers is the largest member_count whose conversation object
// lists its members; bigger conversations are paged through
// GET /v1/conversations/{cid}/members (Store.Members).
const MaxListedMembers = 256

// Conversation is a group or direct conversation. LastSeq is the newest
// durable event's seq; ReadSeq, Unread and Muted are filled per caller by
// the API. LastMessage is the newest message (its tombstone once deleted),
// kept up to date by the sequencer so that a listing reads no message.
type Conversation struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Title       string    `json:"title"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	Members     []string  `json:"members,omitempty"`
	MemberCount int       `json:"member_count"`
	LastSeq     int64     `json:"last_seq"`
	ReadSeq     int64     `json:"read_seq"`
	Unread      int64     `json:"unread"`
	Muted       bool      `json:"muted"`
	LastMessage *Message  `json:"last_message"`
	// Tally holds the counts behind unread, for stored state only: it has
	// no JSON name (the stored form, package record, keeps it), and Public
	// drops it, so clients never see it.
	Tally *Tally `json:"-"`

	// LastPosition is the partition position of the newest event; commands
	// at or below it are already applied (replays are skipped).
	LastPosition int64 `json:"-"`
	// LastActivity is the time of the newest event, for "newest first".
	LastActivity time.Time `json:"-"`
}

// Public is the conversation as clients see it, in REST answers and in
// events alike: members listed only while there are at most
// MaxListedMembers (an empty list rather than none when there are no
// members), and no internal counts.
func (c Conversation) Public() Conversation {
	c.Tally = nil
	if c.MemberCount == 0 {
		c.MemberCount = len(c.Members) // stored before member_count existed
	}
	if c.MemberCount > MaxListedMembers {
		c.Members = nil
	} else if c.Members == nil {
		c.Members = []string{}
	}
	if c.LastMessage != nil {
		m := *c.LastMessage
		m.Normalize()
		c.LastMessage = &m
	}
	return c
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

// MaxTalliedDeletions bounds Tally.Deletions.
const MaxTalliedDeletions = 128

// Tally counts a conversation's messages so that each member's unread
// count follows from its Membership without reading messages: unread is
// the messages created after the member's read position minus those of
// them deleted. The sequencer keeps it as it applies commands.
type Tally struct {
	// Messages is how many messages were ever created (deleted ones too).
	Messages int64 `json:"messages"`
	// Deleted is how many messages were ever deleted.
	Deleted int64 `json:"deleted"`
	// Deletions are the newest deletions (at most MaxTalliedDeletions),
	// oldest first.
	Deletions []Deletion `json:"deletions,omitempty"`
}

// Deletion is one message deletion: At is the seq of its message.deleted
// event, Seq the message's own seq.
type Deletion struct {
	At  int64 `json:"at"`
	Seq int64 `json:"seq"`
}

// UnreadOf returns how many messages after m's read position are not
// deleted, and whether the tally can tell: it cannot for a conversation
// without one (stored before tallies existed) or when deletions that
// happened since the member's read were dropped from the tally.
func (c *Conversation) UnreadOf(m *Membership) (int64, bool) {
	t := c.Tally
	if t == nil {
		return 0, false
	}
	if dropped := t.Deleted > int64(len(t.Deletions)); dropped && (len(t.Deletions) == 0 || t.Deletions[0].At > m.ReadAt) {
		return 0, false
	}
	n := t.Messages - m.ReadCount - m.ReadDeleted
	for _, d := range t.Deletions {
		if d.At > m.ReadAt && d.Seq > m.ReadSeq {
			n--
		}
	}
	return max(n, 0), true
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
	// ReadCount is how many messages were created at or before ReadSeq,
	// ReadDeleted how many after it were deleted by the time ReadAt (the
	// conversation's LastSeq when the read position was set). With the
	// conversation's Tally they give the unread count (Conversation.UnreadOf).
	ReadCount   int64 `json:"read_count,omitempty"`
	ReadDeleted int64 `json:"read_deleted,omitempty"`
	ReadAt      int64 `json:"read_at,omitempty"`
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
	// EventUserUpdated carries a user's new profile to the people who
	// share a conversation with it.
	EventUserUpdated = "user.updated"
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

	// Partition and Position are internal: the stored and logged forms
	// (package record) keep them, and the API's JSON has no name for them,
	// so no client ever sees them.
	Partition int   `json:"-"`
	Position  int64 `json:"-"`
}

// Ephemeral is a typing, presence or user.updated event.
type Ephemeral struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id,omitempty"`
	UserID         string `json:"user_id,omitempty"` // typing and presence: whose
	Online         *bool  `json:"online,omitempty"`
	// User is the new profile on user.updated.
	User *User `json:"user,omitempty"`
}

// User is an authenticated principal, and a user's public profile
// ({"id","name"}, API "People").
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}
