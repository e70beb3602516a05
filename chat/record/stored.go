package record

// The stored forms: what both Stores keep in their rows (a Pebble value, a
// Cassandra column). Each has a type of its own below, so the JSON tags of
// package chat (the public API) never reach the disk. Version 1 is
// byte-identical to the rows written before these types existed (which
// were the API's JSON), so old rows read as version 1 with no migration;
// testdata/*_row.json and zero_rows.json pin the bytes. A row carries no
// "v" at version 1; a later version will write one, and a row of a
// version this code does not know is refused (ErrVersion).

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/parleychat/parley/chat"
)

type attachmentV1 struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Thumbnail   bool   `json:"thumbnail,omitempty"`
}

type messageV1 struct {
	ID             string              `json:"id"`
	ConversationID string              `json:"conversation_id"`
	Seq            int64               `json:"seq"`
	SenderID       string              `json:"sender_id"`
	ClientID       string              `json:"client_id"`
	Text           string              `json:"text"`
	Attachments    []attachmentV1      `json:"attachments"`
	ReplyTo        *string             `json:"reply_to"`
	CreatedAt      time.Time           `json:"created_at"`
	EditedAt       *time.Time          `json:"edited_at"`
	Deleted        bool                `json:"deleted"`
	Reactions      map[string][]string `json:"reactions"`
	Version        int                 `json:"version"`
}

type deletionV1 struct {
	At  int64 `json:"at"`
	Seq int64 `json:"seq"`
}

type tallyV1 struct {
	Messages  int64        `json:"messages"`
	Deleted   int64        `json:"deleted"`
	Deletions []deletionV1 `json:"deletions,omitempty"`
}

// conversationV1 is a conversation as events and changes carry it:
// without LastPosition and LastActivity.
type conversationV1 struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Title       string     `json:"title"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
	Members     []string   `json:"members,omitempty"`
	MemberCount int        `json:"member_count"`
	LastSeq     int64      `json:"last_seq"`
	ReadSeq     int64      `json:"read_seq"`
	Unread      int64      `json:"unread"`
	Muted       bool       `json:"muted"`
	LastMessage *messageV1 `json:"last_message"`
	Tally       *tallyV1   `json:"tally,omitempty"`
}

// conversationRowV1 is a conversation's stored state: with LastPosition
// (the sequencer skips replayed commands by it) and LastActivity.
type conversationRowV1 struct {
	V int `json:"v,omitempty"`
	conversationV1
	LastPosition int64     `json:"last_position"`
	LastActivity time.Time `json:"last_activity"`
}

type eventV1 struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id"`
	Seq            int64           `json:"seq"`
	EventID        string          `json:"event_id"`
	At             time.Time       `json:"at"`
	Actor          string          `json:"actor"`
	Message        *messageV1      `json:"message,omitempty"`
	MessageID      string          `json:"message_id,omitempty"`
	Emoji          string          `json:"emoji,omitempty"`
	UserID         string          `json:"user_id,omitempty"`
	Conversation   *conversationV1 `json:"conversation,omitempty"`
	ReadSeq        int64           `json:"read_seq,omitempty"`
	Partition      int             `json:"partition,omitempty"`
	Position       int64           `json:"position,omitempty"`
}

type membershipV1 struct {
	ConversationID string `json:"conversation_id"`
	UserID         string `json:"user_id"`
	Active         bool   `json:"active"`
	JoinedPosition int64  `json:"joined_position"`
	LeftPosition   int64  `json:"left_position"`
	ReadSeq        int64  `json:"read_seq"`
	ReadCount      int64  `json:"read_count,omitempty"`
	ReadDeleted    int64  `json:"read_deleted,omitempty"`
	ReadAt         int64  `json:"read_at,omitempty"`
}

type attachmentRecordV1 struct {
	attachmentV1
	UploaderID     string    `json:"uploader_id"`
	CreatedAt      time.Time `json:"created_at"`
	ConversationID string    `json:"conversation_id,omitempty"`
	MessageID      string    `json:"message_id,omitempty"`
	ThumbnailKey   string    `json:"thumbnail_key,omitempty"`
}

type webPushKeysV1 struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

type deviceV1 struct {
	ID        string         `json:"id"`
	UserID    string         `json:"user_id,omitempty"`
	Kind      string         `json:"kind"`
	Endpoint  string         `json:"endpoint,omitempty"`
	Keys      *webPushKeysV1 `json:"keys,omitempty"`
	Platform  string         `json:"platform,omitempty"`
	Token     string         `json:"token,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

type settingsV1 struct {
	Muted bool `json:"muted"`
}

// dedupV1 and changeV1 keep the Go field names as keys: that is how
// Cassandra's claimed batches were written before they had types of their
// own (chat.Change has no JSON tags).
type dedupV1 struct {
	ConversationID string `json:"ConversationID"`
	SenderID       string `json:"SenderID"`
	ClientID       string `json:"ClientID"`
	MessageID      string `json:"MessageID"`
}

type changeV1 struct {
	V            int                  `json:"v,omitempty"`
	Conversation conversationV1       `json:"Conversation"`
	PrevSeq      int64                `json:"PrevSeq"`
	Events       []eventV1            `json:"Events"`
	Messages     []messageV1          `json:"Messages"`
	Memberships  []membershipV1       `json:"Memberships"`
	Dedups       []dedupV1            `json:"Dedups"`
	Attachments  []attachmentRecordV1 `json:"Attachments"`
	Gateway      string               `json:"Gateway"`
	Deadline     time.Time            `json:"Deadline"`
}

// Row versions: each top-level row has its own "v" (absent at version 1).
type (
	messageRowV1 struct {
		V int `json:"v,omitempty"`
		messageV1
	}
	eventRowV1 struct {
		V int `json:"v,omitempty"`
		eventV1
	}
	membershipRowV1 struct {
		V int `json:"v,omitempty"`
		membershipV1
	}
	attachmentRowV1 struct {
		V int `json:"v,omitempty"`
		attachmentRecordV1
	}
	deviceRowV1 struct {
		V int `json:"v,omitempty"`
		deviceV1
	}
	settingsRowV1 struct {
		V int `json:"v,omitempty"`
		settingsV1
	}
)

// mapSlice converts a slice element by element, keeping nil nil (a nil
// slice and an empty one encode differently: null and []).
func mapSlice[S, T any](in []S, f func(*S) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i := range in {
		out[i] = f(&in[i])
	}
	return out
}

func toAttachment(a *chat.Attachment) attachmentV1 {
	return attachmentV1{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, Thumbnail: a.Thumbnail}
}

func fromAttachment(a *attachmentV1) chat.Attachment {
	return chat.Attachment{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, Thumbnail: a.Thumbnail}
}

func toMessage(m *chat.Message) messageV1 {
	return messageV1{
		ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, ClientID: m.ClientID,
		Text: m.Text, Attachments: mapSlice(m.Attachments, toAttachment), ReplyTo: m.ReplyTo,
		CreatedAt: m.CreatedAt, EditedAt: m.EditedAt, Deleted: m.Deleted, Reactions: m.Reactions, Version: m.Version,
	}
}

func fromMessage(m *messageV1) chat.Message {
	return chat.Message{
		ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, ClientID: m.ClientID,
		Text: m.Text, Attachments: mapSlice(m.Attachments, fromAttachment), ReplyTo: m.ReplyTo,
		CreatedAt: m.CreatedAt, EditedAt: m.EditedAt, Deleted: m.Deleted, Reactions: m.Reactions, Version: m.Version,
	}
}

func toMessagePtr(m *chat.Message) *messageV1 {
	if m == nil {
		return nil
	}
	v := toMessage(m)
	return &v
}

func fromMessagePtr(m *messageV1) *chat.Message {
	if m == nil {
		return nil
	}
	v := fromMessage(m)
	return &v
}

func toConversation(c *chat.Conversation) conversationV1 {
	v := conversationV1{
		ID: c.ID, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
		Members: c.Members, MemberCount: c.MemberCount, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq,
		Unread: c.Unread, Muted: c.Muted, LastMessage: toMessagePtr(c.LastMessage),
	}
	if t := c.Tally; t != nil {
		v.Tally = &tallyV1{Messages: t.Messages, Deleted: t.Deleted,
			Deletions: mapSlice(t.Deletions, func(d *chat.Deletion) deletionV1 { return deletionV1{At: d.At, Seq: d.Seq} })}
	}
	return v
}

func fromConversation(c *conversationV1) chat.Conversation {
	v := chat.Conversation{
		ID: c.ID, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
		Members: c.Members, MemberCount: c.MemberCount, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq,
		Unread: c.Unread, Muted: c.Muted, LastMessage: fromMessagePtr(c.LastMessage),
	}
	if t := c.Tally; t != nil {
		v.Tally = &chat.Tally{Messages: t.Messages, Deleted: t.Deleted,
			Deletions: mapSlice(t.Deletions, func(d *deletionV1) chat.Deletion { return chat.Deletion{At: d.At, Seq: d.Seq} })}
	}
	return v
}

func toEvent(e *chat.Event) eventV1 {
	v := eventV1{
		Type: e.Type, ConversationID: e.ConversationID, Seq: e.Seq, EventID: e.EventID, At: e.At, Actor: e.Actor,
		Message: toMessagePtr(e.Message), MessageID: e.MessageID, Emoji: e.Emoji, UserID: e.UserID,
		ReadSeq: e.ReadSeq, Partition: e.Partition, Position: e.Position,
	}
	if e.Conversation != nil {
		c := toConversation(e.Conversation)
		v.Conversation = &c
	}
	return v
}

func fromEvent(e *eventV1) chat.Event {
	v := chat.Event{
		Type: e.Type, ConversationID: e.ConversationID, Seq: e.Seq, EventID: e.EventID, At: e.At, Actor: e.Actor,
		Message: fromMessagePtr(e.Message), MessageID: e.MessageID, Emoji: e.Emoji, UserID: e.UserID,
		ReadSeq: e.ReadSeq, Partition: e.Partition, Position: e.Position,
	}
	if e.Conversation != nil {
		c := fromConversation(e.Conversation)
		v.Conversation = &c
	}
	return v
}

func toMembership(m *chat.Membership) membershipV1 {
	return membershipV1{
		ConversationID: m.ConversationID, UserID: m.UserID, Active: m.Active, JoinedPosition: m.JoinedPosition,
		LeftPosition: m.LeftPosition, ReadSeq: m.ReadSeq, ReadCount: m.ReadCount, ReadDeleted: m.ReadDeleted, ReadAt: m.ReadAt,
	}
}

func fromMembership(m *membershipV1) chat.Membership {
	return chat.Membership{
		ConversationID: m.ConversationID, UserID: m.UserID, Active: m.Active, JoinedPosition: m.JoinedPosition,
		LeftPosition: m.LeftPosition, ReadSeq: m.ReadSeq, ReadCount: m.ReadCount, ReadDeleted: m.ReadDeleted, ReadAt: m.ReadAt,
	}
}

func toAttachmentRecord(a *chat.AttachmentRecord) attachmentRecordV1 {
	return attachmentRecordV1{
		attachmentV1: toAttachment(&a.Attachment), UploaderID: a.UploaderID, CreatedAt: a.CreatedAt,
		ConversationID: a.ConversationID, MessageID: a.MessageID, ThumbnailKey: a.ThumbnailKey,
	}
}

func fromAttachmentRecord(a *attachmentRecordV1) chat.AttachmentRecord {
	return chat.AttachmentRecord{
		Attachment: fromAttachment(&a.attachmentV1), UploaderID: a.UploaderID, CreatedAt: a.CreatedAt,
		ConversationID: a.ConversationID, MessageID: a.MessageID, ThumbnailKey: a.ThumbnailKey,
	}
}

func toDevice(d *chat.Device) deviceV1 {
	v := deviceV1{ID: d.ID, UserID: d.UserID, Kind: d.Kind, Endpoint: d.Endpoint, Platform: d.Platform,
		Token: d.Token, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Keys != nil {
		v.Keys = &webPushKeysV1{P256DH: d.Keys.P256DH, Auth: d.Keys.Auth}
	}
	return v
}

func fromDevice(d *deviceV1) chat.Device {
	v := chat.Device{ID: d.ID, UserID: d.UserID, Kind: d.Kind, Endpoint: d.Endpoint, Platform: d.Platform,
		Token: d.Token, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.Keys != nil {
		v.Keys = &chat.WebPushKeys{P256DH: d.Keys.P256DH, Auth: d.Keys.Auth}
	}
	return v
}

func toChange(c *chat.Change) changeV1 {
	return changeV1{
		Conversation: toConversation(&c.Conversation), PrevSeq: c.PrevSeq,
		Events: mapSlice(c.Events, toEvent), Messages: mapSlice(c.Messages, toMessage),
		Memberships: mapSlice(c.Memberships, toMembership),
		Dedups: mapSlice(c.Dedups, func(d *chat.Dedup) dedupV1 {
			return dedupV1{ConversationID: d.ConversationID, SenderID: d.SenderID, ClientID: d.ClientID, MessageID: d.MessageID}
		}),
		Attachments: mapSlice(c.Attachments, toAttachmentRecord), Gateway: c.Gateway, Deadline: c.Deadline,
	}
}

func fromChange(c *changeV1) chat.Change {
	return chat.Change{
		Conversation: fromConversation(&c.Conversation), PrevSeq: c.PrevSeq,
		Events: mapSlice(c.Events, fromEvent), Messages: mapSlice(c.Messages, fromMessage),
		Memberships: mapSlice(c.Memberships, fromMembership),
		Dedups: mapSlice(c.Dedups, func(d *dedupV1) chat.Dedup {
			return chat.Dedup{ConversationID: d.ConversationID, SenderID: d.SenderID, ClientID: d.ClientID, MessageID: d.MessageID}
		}),
		Attachments: mapSlice(c.Attachments, fromAttachmentRecord), Gateway: c.Gateway, Deadline: c.Deadline,
	}
}

// EncodeRow returns the stored form of v, one of the kinds of row the
// Stores keep: chat.Conversation (its whole state, LastPosition and
// LastActivity included), chat.Message, chat.Event, chat.Membership,
// chat.AttachmentRecord, chat.Device or chat.ConversationSettings, or a
// pointer to one. Any other type is an error: nothing reaches a Store in
// the API's JSON.
func EncodeRow(v any) ([]byte, error) {
	var w any
	switch x := v.(type) {
	case *chat.Conversation:
		w = conversationRowV1{conversationV1: toConversation(x), LastPosition: x.LastPosition, LastActivity: x.LastActivity}
	case chat.Conversation:
		return EncodeRow(&x)
	case *chat.Message:
		w = messageRowV1{messageV1: toMessage(x)}
	case chat.Message:
		w = messageRowV1{messageV1: toMessage(&x)}
	case *chat.Event:
		w = eventRowV1{eventV1: toEvent(x)}
	case chat.Event:
		w = eventRowV1{eventV1: toEvent(&x)}
	case *chat.Membership:
		w = membershipRowV1{membershipV1: toMembership(x)}
	case chat.Membership:
		w = membershipRowV1{membershipV1: toMembership(&x)}
	case *chat.AttachmentRecord:
		w = attachmentRowV1{attachmentRecordV1: toAttachmentRecord(x)}
	case chat.AttachmentRecord:
		w = attachmentRowV1{attachmentRecordV1: toAttachmentRecord(&x)}
	case *chat.Device:
		w = deviceRowV1{deviceV1: toDevice(x)}
	case chat.Device:
		w = deviceRowV1{deviceV1: toDevice(&x)}
	case *chat.ConversationSettings:
		w = settingsRowV1{settingsV1: settingsV1{Muted: x.Muted}}
	case chat.ConversationSettings:
		w = settingsRowV1{settingsV1: settingsV1{Muted: x.Muted}}
	default:
		return nil, fmt.Errorf("record: no stored form for %T", v)
	}
	return json.Marshal(w)
}

// DecodeRow reads a row EncodeRow wrote (of any version this code knows,
// or written before versions existed) into v, a pointer to one of the
// types EncodeRow takes. On an error v is left as it was: a row of a newer
// version is never half read.
func DecodeRow(b []byte, v any) error {
	pv := reflect.ValueOf(v)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("record: no stored form for %T", v)
	}
	fresh := reflect.New(pv.Type().Elem())
	if err := decodeRow(b, fresh.Interface()); err != nil {
		return err
	}
	pv.Elem().Set(fresh.Elem())
	return nil
}

// decodeRow is DecodeRow into v, which it may fill before it finds that
// the row's version is too new.
func decodeRow(b []byte, v any) error {
	var version int
	switch x := v.(type) {
	case *chat.Conversation:
		var w conversationRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: conversation: %w", err)
		}
		*x = fromConversation(&w.conversationV1)
		x.LastPosition, x.LastActivity, version = w.LastPosition, w.LastActivity, w.V
	case *chat.Message:
		var w messageRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: message: %w", err)
		}
		*x, version = fromMessage(&w.messageV1), w.V
	case *chat.Event:
		var w eventRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: event: %w", err)
		}
		*x, version = fromEvent(&w.eventV1), w.V
	case *chat.Membership:
		var w membershipRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: membership: %w", err)
		}
		*x, version = fromMembership(&w.membershipV1), w.V
	case *chat.AttachmentRecord:
		var w attachmentRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: attachment: %w", err)
		}
		*x, version = fromAttachmentRecord(&w.attachmentRecordV1), w.V
	case *chat.Device:
		var w deviceRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: device: %w", err)
		}
		*x, version = fromDevice(&w.deviceV1), w.V
	case *chat.ConversationSettings:
		var w settingsRowV1
		if err := json.Unmarshal(b, &w); err != nil {
			return fmt.Errorf("record: settings: %w", err)
		}
		*x, version = chat.ConversationSettings{Muted: w.Muted}, w.V
	default:
		return fmt.Errorf("record: no stored form for %T", v)
	}
	if version > Version {
		return fmt.Errorf("record: %T row of version %d: %w", v, version, ErrVersion)
	}
	return nil
}

// Change is a chat.Change in its stored form when encoded as JSON (a
// Cassandra claimed batch records the changes it is about to write): its
// own versioned encoding, never chat's.
type Change struct {
	chat.Change
}

// MarshalJSON encodes c's stored form.
func (c Change) MarshalJSON() ([]byte, error) {
	return json.Marshal(toChange(&c.Change))
}

// UnmarshalJSON reads what MarshalJSON wrote (or a change recorded before
// the stored form had a type of its own, which is the same bytes).
func (c *Change) UnmarshalJSON(b []byte) error {
	var w changeV1
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("record: change: %w", err)
	}
	if w.V > Version {
		return fmt.Errorf("record: change of version %d: %w", w.V, ErrVersion)
	}
	c.Change = fromChange(&w)
	return nil
}

// ConversationLastSeq reads only the LastSeq of a conversation row
// EncodeRow wrote (0 for an empty row: no conversation yet), for a writer
// that needs no more of it.
func ConversationLastSeq(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var w struct {
		V       int   `json:"v,omitempty"`
		LastSeq int64 `json:"last_seq"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return 0, fmt.Errorf("record: conversation: %w", err)
	}
	if w.V > Version {
		return 0, fmt.Errorf("record: conversation row of version %d: %w", w.V, ErrVersion)
	}
	return w.LastSeq, nil
}
