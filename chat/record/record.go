// Package record is the encoding of the records Parley writes to its log:
// commands (topic commands) and sequenced results (topic events). The
// encoding is versioned and has types of its own, so renaming a field of
// the domain types in package chat never changes the bytes of a record;
// golden files under testdata/ fail when it changes by accident.
//
// Version 1 is JSON with the field names below (the optional "trace", a
// W3C traceparent, joined it without a new version: readers that do not
// know it skip it, and it is never required). A record without "v"
// (written before versions existed) has the same fields and reads as
// version 1. A record of a later version than this code knows is refused
// (ErrVersion), never half read.
//
// The events and the result inside a sequenced record have types of their
// own too (eventV1, resultV1, shared with the stored forms in stored.go):
// nothing in a record is encoded with the JSON tags of package chat.
package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parleychat/parley/chat"
)

// Version is the version this code writes.
const Version = 1

// ErrVersion is a record of a version this code does not know.
var ErrVersion = errors.New("record: unknown version")

// commandV1 is a chat.Command as logged.
type commandV1 struct {
	V              int       `json:"v"`
	ID             string    `json:"id"`
	Gateway        string    `json:"gateway,omitempty"`
	Op             string    `json:"op"`
	ConversationID string    `json:"conversation_id"`
	Actor          string    `json:"actor"`
	At             time.Time `json:"at"`
	Deadline       time.Time `json:"deadline,omitzero"`
	Kind           string    `json:"kind,omitempty"`
	Title          *string   `json:"title,omitempty"`
	Members        []string  `json:"members,omitempty"`
	ClientID       string    `json:"client_id,omitempty"`
	Text           string    `json:"text,omitempty"`
	Attachments    []string  `json:"attachments,omitempty"`
	ReplyTo        string    `json:"reply_to,omitempty"`
	MessageID      string    `json:"message_id,omitempty"`
	IfMatch        int       `json:"if_match,omitempty"`
	Emoji          string    `json:"emoji,omitempty"`
	Seq            int64     `json:"seq,omitempty"`
	UserID         string    `json:"user_id,omitempty"`
	AttachmentID   string    `json:"attachment_id,omitempty"`
	ThumbnailKey   string    `json:"thumbnail_key,omitempty"`
	Trace          string    `json:"trace,omitempty"`
}

// EncodeCommand returns the record value of cmd.
func EncodeCommand(cmd *chat.Command) ([]byte, error) {
	return json.Marshal(commandV1{
		V: Version, ID: cmd.ID, Gateway: cmd.Gateway, Op: cmd.Op, ConversationID: cmd.ConversationID,
		Actor: cmd.Actor, At: cmd.At, Deadline: cmd.Deadline, Kind: cmd.Kind, Title: cmd.Title,
		Members: cmd.Members, ClientID: cmd.ClientID, Text: cmd.Text, Attachments: cmd.Attachments,
		ReplyTo: cmd.ReplyTo, MessageID: cmd.MessageID, IfMatch: cmd.IfMatch, Emoji: cmd.Emoji,
		Seq: cmd.Seq, UserID: cmd.UserID, AttachmentID: cmd.AttachmentID, ThumbnailKey: cmd.ThumbnailKey,
		Trace: cmd.Trace,
	})
}

// DecodeCommand reads a record value EncodeCommand wrote (of any version
// this code knows).
func DecodeCommand(b []byte) (chat.Command, error) {
	var c commandV1
	if err := json.Unmarshal(b, &c); err != nil {
		return chat.Command{}, fmt.Errorf("record: command: %w", err)
	}
	if c.V > Version {
		return chat.Command{}, fmt.Errorf("record: command of version %d: %w", c.V, ErrVersion)
	}
	return chat.Command{
		ID: c.ID, Gateway: c.Gateway, Op: c.Op, ConversationID: c.ConversationID,
		Actor: c.Actor, At: c.At, Deadline: c.Deadline, Kind: c.Kind, Title: c.Title,
		Members: c.Members, ClientID: c.ClientID, Text: c.Text, Attachments: c.Attachments,
		ReplyTo: c.ReplyTo, MessageID: c.MessageID, IfMatch: c.IfMatch, Emoji: c.Emoji,
		Seq: c.Seq, UserID: c.UserID, AttachmentID: c.AttachmentID, ThumbnailKey: c.ThumbnailKey,
		Trace: c.Trace,
	}, nil
}

// sequencedV1 is a chat.Sequenced as logged.
type sequencedV1 struct {
	V          int       `json:"v"`
	CommandID  string    `json:"command_id"`
	Gateway    string    `json:"gateway,omitempty"`
	Events     []eventV1 `json:"events,omitempty"`
	Result     resultV1  `json:"result"`
	Recipients []string  `json:"recipients,omitempty"`
	Trace      string    `json:"trace,omitempty"`
}

// resultV1 is a chat.Result as logged.
type resultV1 struct {
	Created      bool            `json:"created,omitempty"`
	Message      *messageV1      `json:"message,omitempty"`
	Conversation *conversationV1 `json:"conversation,omitempty"`
	ErrCode      string          `json:"err_code,omitempty"`
	ErrMessage   string          `json:"err_message,omitempty"`
}

func toResult(r *chat.Result) resultV1 {
	v := resultV1{Created: r.Created, Message: toMessagePtr(r.Message), ErrCode: r.ErrCode, ErrMessage: r.ErrMessage}
	if r.Conversation != nil {
		c := toConversation(r.Conversation)
		v.Conversation = &c
	}
	return v
}

func fromResult(r *resultV1) chat.Result {
	v := chat.Result{Created: r.Created, Message: fromMessagePtr(r.Message), ErrCode: r.ErrCode, ErrMessage: r.ErrMessage}
	if r.Conversation != nil {
		c := fromConversation(r.Conversation)
		v.Conversation = &c
	}
	return v
}

// EncodeSequenced returns the record value of s.
func EncodeSequenced(s *chat.Sequenced) ([]byte, error) {
	return json.Marshal(sequencedV1{
		V: Version, CommandID: s.CommandID, Gateway: s.Gateway, Events: mapSlice(s.Events, toEvent), Result: toResult(&s.Result), Recipients: s.Recipients,
		Trace: s.Trace,
	})
}

// DecodeSequenced reads a record value EncodeSequenced wrote.
func DecodeSequenced(b []byte) (chat.Sequenced, error) {
	l, err := DecodeLazySequenced(b)
	if err != nil {
		return chat.Sequenced{}, err
	}
	s := l.Sequenced
	if len(l.Recipients) > 0 {
		if err := json.Unmarshal(l.Recipients, &s.Recipients); err != nil {
			return chat.Sequenced{}, fmt.Errorf("record: sequenced: recipients: %w", err)
		}
	}
	return s, nil
}

// LazySequenced is a sequenced record whose recipients are left encoded:
// the fan-out decodes a big room's recipient list once for many events.
type LazySequenced struct {
	// Sequenced has every field but Recipients.
	Sequenced  chat.Sequenced
	Recipients json.RawMessage
}

// sequencedHeadV1 is sequencedV1 without its recipients, which a decode
// into it skips without building them.
type sequencedHeadV1 struct {
	V         int       `json:"v"`
	CommandID string    `json:"command_id"`
	Gateway   string    `json:"gateway,omitempty"`
	Events    []eventV1 `json:"events,omitempty"`
	Result    resultV1  `json:"result"`
	Trace     string    `json:"trace,omitempty"`
}

// sequenced returns the record's chat.Sequenced, recipients aside.
func (w *sequencedHeadV1) sequenced() (chat.Sequenced, error) {
	if w.V > Version {
		return chat.Sequenced{}, fmt.Errorf("record: sequenced of version %d: %w", w.V, ErrVersion)
	}
	return chat.Sequenced{CommandID: w.CommandID, Gateway: w.Gateway, Events: mapSlice(w.Events, fromEvent), Result: fromResult(&w.Result), Trace: w.Trace}, nil
}

// lazySequencedV1 is sequencedV1 with the recipients left encoded.
type lazySequencedV1 struct {
	sequencedHeadV1
	Recipients json.RawMessage `json:"recipients,omitempty"`
}

// DecodeLazySequenced reads a record value EncodeSequenced wrote, leaving
// its recipients encoded.
func DecodeLazySequenced(b []byte) (LazySequenced, error) {
	var w lazySequencedV1
	if err := json.Unmarshal(b, &w); err != nil {
		return LazySequenced{}, fmt.Errorf("record: sequenced: %w", err)
	}
	s, err := w.sequenced()
	if err != nil {
		return LazySequenced{}, err
	}
	return LazySequenced{Sequenced: s, Recipients: w.Recipients}, nil
}

// DecodeSequencedEvents reads a record value EncodeSequenced wrote, all
// but its recipients, which it skips: for the consumers that act on the
// events alone (the indexer, the media worker). In a room of a hundred
// members the recipients are most of the record, and building them was
// most of what those consumers allocated per event.
func DecodeSequencedEvents(b []byte) (chat.Sequenced, error) {
	var w sequencedHeadV1
	if err := json.Unmarshal(b, &w); err != nil {
		return chat.Sequenced{}, fmt.Errorf("record: sequenced: %w", err)
	}
	return w.sequenced()
}
