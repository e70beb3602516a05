// Package wire encodes Parley's realtime protocol in Protocol Buffers, the
// WebSocket subprotocol "parley.v1+proto" (schema: parley/v1/parley.proto).
// It carries the same frames and events as the JSON subprotocol
// "parley.v1"; this package maps the domain's values (chat.Event,
// chat.Ephemeral, chat.Message …) to the schema's messages and back.
//
// The server side follows the JSON fan-out: a durable event is encoded
// once for every connection without its cursor (EncodeEvent), and each
// connection appends the event to its frame with its own cursor
// (AppendEvent). Appending works on bytes alone because the encoding of a
// ServerFrame is the concatenation of its messages, and the cursor is the
// Event's last field.
//
// Two choices keep the binary encoding at about half of JSON's bytes (see
// docs/mobile.md, "Choosing JSON or Protobuf"): a cursor travels as its
// bytes, not as their base64url text, and a Message inside an Event leaves
// out the fields the Event already carries (EventProto, EventOf).
package wire

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/chat"
	pb "github.com/parleychat/parley/parley/v1"
)

// Subprotocol is the WebSocket subprotocol of the binary encoding.
const Subprotocol = "parley.v1+proto"

// Field numbers the byte-level appends rely on; TestFieldNumbers holds
// them to the generated code.
const (
	fieldFrameMessages  protowire.Number = 1  // ServerFrame.messages
	fieldMessageEvent   protowire.Number = 2  // ServerMessage.event
	fieldMessageEph     protowire.Number = 3  // ServerMessage.ephemeral
	fieldEventCursor    protowire.Number = 15 // Event.cursor
	eventCursorTagBytes                  = 1  // field 15, wire type 2: one byte
)

var marshal = proto.MarshalOptions{Deterministic: true}

// eventTypes maps a durable event's JSON type to its enum. Every
// chat.Event* constant of a durable type must be here (wire_test.go reads
// them from the chat package's source).
var eventTypes = map[string]pb.EventType{
	chat.EventMessageCreated:      pb.EventType_EVENT_TYPE_MESSAGE_CREATED,
	chat.EventMessageUpdated:      pb.EventType_EVENT_TYPE_MESSAGE_UPDATED,
	chat.EventMessageDeleted:      pb.EventType_EVENT_TYPE_MESSAGE_DELETED,
	chat.EventReactionAdded:       pb.EventType_EVENT_TYPE_REACTION_ADDED,
	chat.EventReactionRemoved:     pb.EventType_EVENT_TYPE_REACTION_REMOVED,
	chat.EventMemberAdded:         pb.EventType_EVENT_TYPE_MEMBER_ADDED,
	chat.EventMemberRemoved:       pb.EventType_EVENT_TYPE_MEMBER_REMOVED,
	chat.EventConversationUpdated: pb.EventType_EVENT_TYPE_CONVERSATION_UPDATED,
	chat.EventReadUpdated:         pb.EventType_EVENT_TYPE_READ_UPDATED,
}

// ephemeralTypes maps an ephemeral event's JSON type to its enum.
var ephemeralTypes = map[string]pb.EphemeralType{
	chat.EventTyping:      pb.EphemeralType_EPHEMERAL_TYPE_TYPING,
	chat.EventPresence:    pb.EphemeralType_EPHEMERAL_TYPE_PRESENCE,
	chat.EventUserUpdated: pb.EphemeralType_EPHEMERAL_TYPE_USER_UPDATED,
}

var (
	eventNames     = invert(eventTypes)
	ephemeralNames = invert(ephemeralTypes)
)

func invert[K comparable, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// ErrUnknownType is returned for an event type the schema has no value for.
var ErrUnknownType = errors.New("wire: event type has no protobuf mapping")

// EventType returns the enum of a durable event type and whether it has one.
func EventType(t string) (pb.EventType, bool) { v, ok := eventTypes[t]; return v, ok }

// EphemeralType returns the enum of an ephemeral event type and whether it
// has one.
func EphemeralType(t string) (pb.EphemeralType, bool) { v, ok := ephemeralTypes[t]; return v, ok }

// EncodeEvent encodes ev as an Event without its cursor, once for every
// connection (AppendEvent adds each one's cursor). Partition and position
// are internal and not encoded.
func EncodeEvent(ev chat.Event) ([]byte, error) {
	t, ok := eventTypes[ev.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, ev.Type)
	}
	buf := scratch.Get().(*[]byte)
	b := appendEvent((*buf)[:0], &ev, int32(t))
	out := bytes.Clone(b) // exactly its size: it stays queued on connections
	if cap(b) <= maxScratch {
		*buf = b
		scratch.Put(buf)
	}
	return out, nil
}

// scratch holds the buffers events are encoded in before they are copied
// out at their exact size.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxScratch is the biggest buffer kept in scratch.
const maxScratch = 64 << 10

// AppendEvent appends to a frame the message of an event encoded by
// EncodeEvent, with cursor as its last field. cursor is the connection's
// cursor in bytes (chat.Cursor.AppendBinary).
func AppendEvent(frame, event, cursor []byte) []byte {
	evLen := len(event) + eventCursorTagBytes + protowire.SizeBytes(len(cursor))
	msgLen := 1 + protowire.SizeBytes(evLen)
	frame = protowire.AppendTag(frame, fieldFrameMessages, protowire.BytesType)
	frame = protowire.AppendVarint(frame, uint64(msgLen))
	frame = protowire.AppendTag(frame, fieldMessageEvent, protowire.BytesType)
	frame = protowire.AppendVarint(frame, uint64(evLen))
	frame = append(frame, event...)
	frame = protowire.AppendTag(frame, fieldEventCursor, protowire.BytesType)
	return protowire.AppendBytes(frame, cursor)
}

// AppendMessage appends to a frame one ServerMessage, encoded complete
// (EncodeEphemeral, EncodeMessage, FromJSON).
func AppendMessage(frame, msg []byte) []byte {
	frame = protowire.AppendTag(frame, fieldFrameMessages, protowire.BytesType)
	return protowire.AppendBytes(frame, msg)
}

// EncodeEphemeral encodes e as a complete ServerMessage.
func EncodeEphemeral(e chat.Ephemeral) ([]byte, error) {
	m, err := EphemeralProto(e)
	if err != nil {
		return nil, err
	}
	return EncodeMessage(&pb.ServerMessage{Kind: &pb.ServerMessage_Ephemeral{Ephemeral: m}})
}

// EncodeMessage encodes one ServerMessage.
func EncodeMessage(m *pb.ServerMessage) ([]byte, error) { return marshal.Marshal(m) }

// EncodeFrame encodes messages as one ServerFrame.
func EncodeFrame(msgs ...*pb.ServerMessage) ([]byte, error) {
	return marshal.Marshal(&pb.ServerFrame{Messages: msgs})
}

// DecodeFrame decodes one binary server frame.
func DecodeFrame(b []byte) (*pb.ServerFrame, error) {
	var f pb.ServerFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("wire: decode server frame: %w", err)
	}
	return &f, nil
}

// Nanos is t in nanoseconds since the Unix epoch, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time is the UTC time of ns nanoseconds since the Unix epoch, the zero
// time for 0.
func Time(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// CursorText is the string form of a cursor the binary encoding carries
// as bytes: their base64url without padding, as every other transport
// sends and takes it (chat.Cursor.Encode).
func CursorText(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// CursorBytes is the bytes of a cursor's string form, for the binary
// encoding; it fails when s is not base64url without padding.
func CursorBytes(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("wire: cursor %q is not base64url: %w", s, err)
	}
	return b, nil
}

// EventProto is ev as an Event with cursor (in bytes). Its message leaves
// out what the Event carries (inherit).
func EventProto(ev chat.Event, cursor []byte) (*pb.Event, error) {
	t, ok := eventTypes[ev.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, ev.Type)
	}
	m := &pb.Event{
		Type: t, ConversationId: ev.ConversationID, Seq: ev.Seq, EventId: ev.EventID,
		AtNs: Nanos(ev.At), Actor: ev.Actor, MessageId: ev.MessageID, Emoji: ev.Emoji,
		UserId: ev.UserID, ReadSeq: ev.ReadSeq, Cursor: cursor,
	}
	if ev.Message != nil {
		m.Message = MessageProto(ev.Message)
		m.Message.ConversationId = ""
		if inherits(&ev, ev.Message) {
			m.Message.Seq, m.Message.SenderId, m.Message.CreatedAtNs = 0, "", 0
		}
	}
	if ev.Conversation != nil {
		m.Conversation = ConversationProto(*ev.Conversation)
	}
	return m, nil
}

// inherits reports whether an Event leaves out its message's seq,
// sender_id and created_at_ns, because they equal its own seq, actor and
// at_ns (every message.created). conversation_id is always left out.
// (The three are left out together, so that a client never sees a message
// with some of them and not others.)
func inherits(ev *chat.Event, m *chat.Message) bool {
	return m.Seq == ev.Seq && m.SenderID == ev.Actor && Nanos(m.CreatedAt) == Nanos(ev.At)
}

// EventOf is the event m carries, its message completed from the Event,
// and its cursor in the string form (CursorText).
func EventOf(m *pb.Event) (chat.Event, string) {
	ev := chat.Event{
		Type: eventNames[m.GetType()], ConversationID: m.GetConversationId(), Seq: m.GetSeq(),
		EventID: m.GetEventId(), At: Time(m.GetAtNs()), Actor: m.GetActor(), MessageID: m.GetMessageId(),
		Emoji: m.GetEmoji(), UserID: m.GetUserId(), ReadSeq: m.GetReadSeq(),
	}
	if m.Message != nil {
		ev.Message = MessageOf(m.Message)
		if ev.Message.ConversationID == "" {
			ev.Message.ConversationID = ev.ConversationID
		}
		if ev.Message.Seq == 0 {
			ev.Message.Seq = ev.Seq
		}
		if ev.Message.SenderID == "" {
			ev.Message.SenderID = ev.Actor
		}
		if ev.Message.CreatedAt.IsZero() {
			ev.Message.CreatedAt = ev.At
		}
	}
	if m.Conversation != nil {
		c := ConversationOf(m.Conversation)
		ev.Conversation = &c
	}
	return ev, CursorText(m.GetCursor())
}

// EphemeralProto is e as an Ephemeral.
func EphemeralProto(e chat.Ephemeral) (*pb.Ephemeral, error) {
	t, ok := ephemeralTypes[e.Type]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	m := &pb.Ephemeral{Type: t, ConversationId: e.ConversationID, UserId: e.UserID, Online: e.Online}
	if e.User != nil {
		m.User = &pb.User{Id: e.User.ID, Name: e.User.Name}
	}
	return m, nil
}

// EphemeralOf is the ephemeral event m carries.
func EphemeralOf(m *pb.Ephemeral) chat.Ephemeral {
	e := chat.Ephemeral{Type: ephemeralNames[m.GetType()], ConversationID: m.GetConversationId(), UserID: m.GetUserId(), Online: m.Online}
	if m.User != nil {
		e.User = &chat.User{ID: m.User.GetId(), Name: m.User.GetName()}
	}
	return e
}

// MessageProto is msg as a Message.
func MessageProto(msg *chat.Message) *pb.Message {
	m := &pb.Message{
		Id: msg.ID, ConversationId: msg.ConversationID, Seq: msg.Seq, SenderId: msg.SenderID,
		ClientId: msg.ClientID, Text: msg.Text, ReplyTo: msg.ReplyTo, CreatedAtNs: Nanos(msg.CreatedAt),
		Deleted: msg.Deleted, Version: int64(msg.Version),
	}
	if msg.EditedAt != nil {
		m.EditedAtNs = Nanos(*msg.EditedAt)
	}
	if len(msg.Attachments) > 0 {
		m.Attachments = make([]*pb.Attachment, len(msg.Attachments))
		for i, a := range msg.Attachments {
			m.Attachments[i] = &pb.Attachment{Id: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, Thumbnail: a.Thumbnail}
		}
	}
	if len(msg.Reactions) > 0 {
		m.Reactions = make(map[string]*pb.UserIds, len(msg.Reactions))
		for emoji, users := range msg.Reactions {
			m.Reactions[emoji] = &pb.UserIds{UserIds: users}
		}
	}
	return m
}

// MessageOf is the message m carries, normalized (empty collections, not
// nil) as the JSON encoding sends it.
func MessageOf(m *pb.Message) *chat.Message {
	msg := &chat.Message{
		ID: m.GetId(), ConversationID: m.GetConversationId(), Seq: m.GetSeq(), SenderID: m.GetSenderId(),
		ClientID: m.GetClientId(), Text: m.GetText(), ReplyTo: m.ReplyTo, CreatedAt: Time(m.GetCreatedAtNs()),
		Deleted: m.GetDeleted(), Version: int(m.GetVersion()),
	}
	if m.GetEditedAtNs() != 0 {
		t := Time(m.GetEditedAtNs())
		msg.EditedAt = &t
	}
	for _, a := range m.GetAttachments() {
		msg.Attachments = append(msg.Attachments, chat.Attachment{ID: a.GetId(), Name: a.GetName(), ContentType: a.GetContentType(), Size: a.GetSize(), Thumbnail: a.GetThumbnail()})
	}
	if len(m.GetReactions()) > 0 {
		msg.Reactions = make(map[string][]string, len(m.GetReactions()))
		for emoji, users := range m.GetReactions() {
			msg.Reactions[emoji] = users.GetUserIds()
		}
	}
	msg.Normalize()
	return msg
}

// ConversationProto is c as a Conversation (events carry conversations as
// chat.Conversation.Public made them).
func ConversationProto(c chat.Conversation) *pb.Conversation {
	m := &pb.Conversation{
		Id: c.ID, Kind: c.Kind, Title: c.Title, CreatedBy: c.CreatedBy, CreatedAtNs: Nanos(c.CreatedAt),
		Members: c.Members, MemberCount: int64(c.MemberCount), LastSeq: c.LastSeq, ReadSeq: c.ReadSeq,
		Unread: c.Unread, Muted: c.Muted,
	}
	if c.LastMessage != nil {
		m.LastMessage = MessageProto(c.LastMessage)
	}
	return m
}

// ConversationOf is the conversation m carries.
func ConversationOf(m *pb.Conversation) chat.Conversation {
	c := chat.Conversation{
		ID: m.GetId(), Kind: m.GetKind(), Title: m.GetTitle(), CreatedBy: m.GetCreatedBy(), CreatedAt: Time(m.GetCreatedAtNs()),
		Members: m.GetMembers(), MemberCount: int(m.GetMemberCount()), LastSeq: m.GetLastSeq(), ReadSeq: m.GetReadSeq(),
		Unread: m.GetUnread(), Muted: m.GetMuted(),
	}
	if m.LastMessage != nil {
		c.LastMessage = MessageOf(m.LastMessage)
	}
	return c
}
