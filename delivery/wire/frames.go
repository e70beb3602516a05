package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/chat"
	pb "github.com/parleychat/parley/parley/v1"
)

// jsonServerObject is every field a server object of the JSON subprotocol
// may carry outside events: ready, ack, pong, error, token.expiring,
// auth.ok.
type jsonServerObject struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref"`
	UserID    string          `json:"user_id"`
	Cursor    string          `json:"cursor"`
	SessionID string          `json:"session_id"`
	ExpiresAt *time.Time      `json:"expires_at"`
	Message   *chat.Message   `json:"message"`
	Error     *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

// FromJSON encodes one server object of the JSON subprotocol (ready, an
// event, ack, pong, error, token.expiring, auth.ok) as the ServerMessage
// that carries the same content. The gateway renders the few frames it
// answers one client with (acks, pongs, errors, token refresh) once in
// JSON and, for a binary connection, through FromJSON; events never take
// this way (EncodeEvent, EncodeEphemeral).
func FromJSON(b []byte) ([]byte, error) {
	m, err := MessageFromJSON(b)
	if err != nil {
		return nil, err
	}
	return EncodeMessage(m)
}

// MessageFromJSON is FromJSON before encoding.
func MessageFromJSON(b []byte) (*pb.ServerMessage, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("wire: server object: %w", err)
	}
	if _, ok := eventTypes[head.Type]; ok {
		var ev struct {
			chat.Event
			Cursor string `json:"cursor"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			return nil, fmt.Errorf("wire: event: %w", err)
		}
		cursor, err := CursorBytes(ev.Cursor)
		if err != nil {
			return nil, err
		}
		m, err := EventProto(ev.Event, cursor)
		if err != nil {
			return nil, err
		}
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Event{Event: m}}, nil
	}
	if _, ok := ephemeralTypes[head.Type]; ok {
		var e chat.Ephemeral
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("wire: ephemeral event: %w", err)
		}
		m, err := EphemeralProto(e)
		if err != nil {
			return nil, err
		}
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Ephemeral{Ephemeral: m}}, nil
	}
	var o jsonServerObject
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("wire: %s frame: %w", head.Type, err)
	}
	ref := RefString(o.Ref)
	var expires int64
	if o.ExpiresAt != nil {
		expires = Nanos(*o.ExpiresAt)
	}
	switch o.Type {
	case "ready":
		cursor, err := CursorBytes(o.Cursor)
		if err != nil {
			return nil, err
		}
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Ready{Ready: &pb.Ready{UserId: o.UserID, Cursor: cursor, SessionId: o.SessionID, ExpiresAtNs: expires}}}, nil
	case "ack":
		a := &pb.Ack{Ref: ref}
		if o.Message != nil {
			a.Message = MessageProto(o.Message)
		}
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Ack{Ack: a}}, nil
	case "pong":
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Pong{Pong: &pb.Pong{Ref: ref}}}, nil
	case "error":
		e := &pb.Error{Ref: ref}
		if o.Error != nil {
			e.Code, e.Message, e.RequestId = o.Error.Code, o.Error.Message, o.Error.RequestID
		}
		return &pb.ServerMessage{Kind: &pb.ServerMessage_Error{Error: e}}, nil
	case "token.expiring":
		return &pb.ServerMessage{Kind: &pb.ServerMessage_TokenExpiring{TokenExpiring: &pb.TokenExpiring{ExpiresAtNs: expires}}}, nil
	case "auth.ok":
		return &pb.ServerMessage{Kind: &pb.ServerMessage_AuthOk{AuthOk: &pb.AuthOk{Ref: ref, ExpiresAtNs: expires}}}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownType, o.Type)
}

// ServerTypes are the JSON types of the server objects that are neither
// events nor ephemeral events; FromJSON maps each of them.
var ServerTypes = []string{"ready", "ack", "pong", "error", "token.expiring", "auth.ok"}

// RefString is a JSON "ref" as the binary encoding carries it: a JSON
// string unquoted, null or nothing as "", any other JSON value as its text.
func RefString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	if raw[0] == '"' {
		if s, err := strconv.Unquote(string(raw)); err == nil {
			return s
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// ClientFrame is a client frame as the gateway reads it, from either
// encoding: its fields and JSON names are those of the JSON subprotocol
// (a JSON frame decodes into it with encoding/json).
type ClientFrame struct {
	Type           string          `json:"type"`
	Ref            json.RawMessage `json:"ref,omitempty"`
	Cursor         string          `json:"cursor,omitempty"`
	ConversationID string          `json:"conversation_id"`
	ClientID       string          `json:"client_id"`
	Text           string          `json:"text"`
	Attachments    []string        `json:"attachments"`
	ReplyTo        *string         `json:"reply_to"`
	Seq            *int64          `json:"seq"`
	UserIDs        []string        `json:"user_ids"`
	Token          string          `json:"token"`
}

// DecodeClientFrame decodes one binary client frame. A frame that names
// no kind the server knows decodes with an empty Type (the gateway answers
// "unknown frame type", as for an unknown JSON type); bytes that are not a
// ClientFrame are an error.
func DecodeClientFrame(b []byte) (ClientFrame, error) {
	var m pb.ClientFrame
	if err := proto.Unmarshal(b, &m); err != nil {
		return ClientFrame{}, fmt.Errorf("wire: decode client frame: %w", err)
	}
	var f ClientFrame
	if m.Ref != "" {
		f.Ref, _ = json.Marshal(m.Ref)
	}
	switch k := m.Kind.(type) {
	case *pb.ClientFrame_Hello:
		f.Type, f.Cursor = "hello", k.Hello.GetCursorText()
		if c := k.Hello.GetCursor(); len(c) > 0 {
			f.Cursor = CursorText(c)
		}
	case *pb.ClientFrame_Send:
		s := k.Send
		f.Type, f.ConversationID, f.ClientID, f.Text = "send", s.GetConversationId(), s.GetClientId(), s.GetText()
		f.Attachments, f.ReplyTo = s.GetAttachments(), s.ReplyTo
	case *pb.ClientFrame_Typing:
		f.Type, f.ConversationID = "typing", k.Typing.GetConversationId()
	case *pb.ClientFrame_Read:
		seq := k.Read.GetSeq()
		f.Type, f.ConversationID, f.Seq = "read", k.Read.GetConversationId(), &seq
	case *pb.ClientFrame_Ping:
		f.Type = "ping"
	case *pb.ClientFrame_Auth:
		f.Type, f.Token = "auth", k.Auth.GetToken()
	case *pb.ClientFrame_PresenceWatch:
		f.Type, f.UserIDs = "presence.watch", k.PresenceWatch.GetUserIds()
	}
	return f, nil
}

// ClientTypes are the JSON types of the client frames; DecodeClientFrame
// maps a binary frame to each of them.
var ClientTypes = []string{"hello", "send", "typing", "read", "ping", "auth", "presence.watch"}

// EventFromJSON encodes a durable event of the JSON subprotocol (with or
// without its cursor) as EncodeEvent does: without its cursor.
func EventFromJSON(b []byte) ([]byte, error) {
	var ev chat.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return nil, fmt.Errorf("wire: event: %w", err)
	}
	return EncodeEvent(ev)
}

// FrameFromJSON is a whole binary frame holding the one server object b
// of the JSON subprotocol (FromJSON).
func FrameFromJSON(b []byte) ([]byte, error) {
	m, err := FromJSON(b)
	if err != nil {
		return nil, err
	}
	return AppendMessage(nil, m), nil
}
