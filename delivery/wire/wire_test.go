package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parleychat/parley/chat"
	pb "github.com/parleychat/parley/parley/v1"
)

// TestFieldNumbers holds the numbers AppendEvent and AppendMessage write
// by hand to the schema's.
func TestFieldNumbers(t *testing.T) {
	field := func(m proto.Message, name protoreflect.Name) protowire.Number {
		fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
		if fd == nil {
			t.Fatalf("%s has no field %s", m.ProtoReflect().Descriptor().FullName(), name)
		}
		return fd.Number()
	}
	for _, c := range []struct {
		got, want protowire.Number
	}{
		{field(&pb.ServerFrame{}, "messages"), fieldFrameMessages},
		{field(&pb.ServerMessage{}, "event"), fieldMessageEvent},
		{field(&pb.ServerMessage{}, "ephemeral"), fieldMessageEph},
		{field(&pb.Event{}, "cursor"), fieldEventCursor},
	} {
		if c.got != c.want {
			t.Errorf("field number %d in the schema, %d in the code", c.got, c.want)
		}
	}
	if n := len(protowire.AppendTag(nil, fieldEventCursor, protowire.BytesType)); n != eventCursorTagBytes {
		t.Errorf("the cursor's tag takes %d bytes, the code says %d", n, eventCursorTagBytes)
	}
	// The cursor must be the Event's last field, so that appending it keeps
	// the encoding canonical.
	fields := (&pb.Event{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if fields.Get(i).Number() > fieldEventCursor {
			t.Errorf("Event.%s (%d) comes after the cursor", fields.Get(i).Name(), fields.Get(i).Number())
		}
	}
}

func sampleEvent() chat.Event {
	at := time.Date(2026, 12, 2, 7, 37, 43, 123456789, time.UTC)
	edited := at.Add(time.Minute)
	reply := "msg_01jexample00000000000000"
	return chat.Event{
		Type: chat.EventMessageUpdated, ConversationID: "cnv_01jexample00000000000000", Seq: 42,
		EventID: "evt_01jexample00000000000000", At: at, Actor: "alice",
		Message: &chat.Message{
			ID: "msg_01jexample00000000000001", ConversationID: "cnv_01jexample00000000000000", Seq: 41,
			SenderID: "alice", ClientID: "c-1", Text: "hello 👋", ReplyTo: &reply, CreatedAt: at, EditedAt: &edited,
			Attachments: []chat.Attachment{{ID: "att_1", Name: "cat.png", ContentType: "image/png", Size: 1234, Thumbnail: true}},
			Reactions:   map[string][]string{"👍": {"bob", "carol"}}, Version: 2,
		},
	}
}

// TestAppendEventEqualsTheSchemaEncoding: the bytes a connection assembles
// (shared event + its cursor) decode to the event with that cursor, and
// equal what proto.Marshal makes of the whole frame.
func TestAppendEventEqualsTheSchemaEncoding(t *testing.T) {
	ev := sampleEvent()
	shared, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	cursor := chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 20}}.AppendBinary(nil)
	later := chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 21}}.AppendBinary(nil)
	frame := AppendEvent(nil, shared, cursor)
	frame = AppendEvent(frame, shared, later)

	m1, _ := EventProto(ev, cursor)
	m2, _ := EventProto(ev, later)
	want, err := EncodeFrame(
		&pb.ServerMessage{Kind: &pb.ServerMessage_Event{Event: m1}},
		&pb.ServerMessage{Kind: &pb.ServerMessage_Event{Event: m2}})
	if err != nil {
		t.Fatal(err)
	}
	if string(frame) != string(want) {
		t.Fatalf("assembled frame differs from the schema's encoding:\n got %x\nwant %x", frame, want)
	}
	f, err := DecodeFrame(frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Messages) != 2 {
		t.Fatalf("%d messages, want 2", len(f.Messages))
	}
	got, gotCursor := EventOf(f.Messages[1].GetEvent())
	ev.Message.Normalize()
	wantCursor := chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 21}}.Encode()
	if !reflect.DeepEqual(got, ev) || gotCursor != wantCursor {
		t.Fatalf("round trip:\n got %+v %q\nwant %+v %q", got, gotCursor, ev, wantCursor)
	}
}

// TestUnknownTypesAreRefused: a type without a mapping is an error, never
// an event of type 0.
func TestUnknownTypesAreRefused(t *testing.T) {
	if _, err := EncodeEvent(chat.Event{Type: "message.exploded"}); err == nil {
		t.Error("an unmapped event type encoded")
	}
	if _, err := EncodeEphemeral(chat.Ephemeral{Type: "waving"}); err == nil {
		t.Error("an unmapped ephemeral type encoded")
	}
	if _, err := FromJSON([]byte(`{"type":"surprise"}`)); err == nil {
		t.Error("an unmapped server frame type encoded")
	}
}

// TestClientFramesDecodeAlikeInBothEncodings: every client frame type,
// sent as JSON and as its binary twin, reads the same at the gateway.
func TestClientFramesDecodeAlikeInBothEncodings(t *testing.T) {
	reply := "msg_9"
	frames := map[string]struct {
		json  string
		proto *pb.ClientFrame
	}{
		"hello": {`{"type":"hello","cursor":"AQAAAAc"}`,
			&pb.ClientFrame{Kind: &pb.ClientFrame_Hello{Hello: &pb.Hello{Cursor: []byte{1, 0, 0, 0, 7}}}}},
		"send": {`{"type":"send","ref":"r1","conversation_id":"cnv_1","client_id":"c-1","text":"hi","attachments":["att_1"],"reply_to":"msg_9"}`,
			&pb.ClientFrame{Ref: "r1", Kind: &pb.ClientFrame_Send{Send: &pb.Send{ConversationId: "cnv_1", ClientId: "c-1", Text: "hi", Attachments: []string{"att_1"}, ReplyTo: &reply}}}},
		"typing": {`{"type":"typing","conversation_id":"cnv_1"}`,
			&pb.ClientFrame{Kind: &pb.ClientFrame_Typing{Typing: &pb.Typing{ConversationId: "cnv_1"}}}},
		"read": {`{"type":"read","ref":"r2","conversation_id":"cnv_1","seq":0}`,
			&pb.ClientFrame{Ref: "r2", Kind: &pb.ClientFrame_Read{Read: &pb.Read{ConversationId: "cnv_1"}}}},
		"ping": {`{"type":"ping","ref":"p"}`,
			&pb.ClientFrame{Ref: "p", Kind: &pb.ClientFrame_Ping{Ping: &pb.Ping{}}}},
		"auth": {`{"type":"auth","ref":"a","token":"eyJ.x.y"}`,
			&pb.ClientFrame{Ref: "a", Kind: &pb.ClientFrame_Auth{Auth: &pb.Auth{Token: "eyJ.x.y"}}}},
		"presence.watch": {`{"type":"presence.watch","user_ids":["bob","carol"]}`,
			&pb.ClientFrame{Kind: &pb.ClientFrame_PresenceWatch{PresenceWatch: &pb.PresenceWatch{UserIds: []string{"bob", "carol"}}}}},
	}
	for _, typ := range ClientTypes {
		c, ok := frames[typ]
		if !ok {
			t.Errorf("client frame %q has no case here", typ)
			continue
		}
		var fromJSON ClientFrame
		if err := json.Unmarshal([]byte(c.json), &fromJSON); err != nil {
			t.Fatal(err)
		}
		b, err := proto.Marshal(c.proto)
		if err != nil {
			t.Fatal(err)
		}
		fromProto, err := DecodeClientFrame(b)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !reflect.DeepEqual(fromJSON, fromProto) {
			t.Errorf("%s:\n JSON  %+v\n proto %+v", typ, fromJSON, fromProto)
		}
	}
	if len(frames) != len(ClientTypes) {
		t.Errorf("%d cases for %d client frame types", len(frames), len(ClientTypes))
	}
	// Every oneof case of ClientFrame is a client type.
	oneof := (&pb.ClientFrame{}).ProtoReflect().Descriptor().Oneofs().ByName("kind").Fields()
	if oneof.Len() != len(ClientTypes) {
		t.Errorf("ClientFrame has %d kinds, ClientTypes %d", oneof.Len(), len(ClientTypes))
	}
}

// TestBadClientFrames: bytes that are not a ClientFrame are an error; a
// frame of no known kind decodes with no type (answered as unknown).
func TestBadClientFrames(t *testing.T) {
	if _, err := DecodeClientFrame([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("garbage decoded")
	}
	if _, err := DecodeClientFrame([]byte(`{"type":"ping"}`)); err == nil {
		t.Error("a JSON text decoded as a binary frame")
	}
	f, err := DecodeClientFrame(protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), []byte("x")))
	if err != nil || f.Type != "" {
		t.Errorf("a frame of an unknown kind: %+v, %v", f, err)
	}
}

func TestRefString(t *testing.T) {
	for raw, want := range map[string]string{``: "", `null`: "", `"r1"`: "r1", `"a\"b"`: `a"b`, `7`: "7", `"\u00e9"`: "é"} {
		if got := RefString(json.RawMessage(raw)); got != want {
			t.Errorf("RefString(%s) = %q, want %q", raw, got, want)
		}
	}
}

// TestHandEncodingEqualsMarshal: EncodeEvent's bytes are proto.Marshal's
// (deterministic) of the same event, for events that use every field,
// long and empty values, and lengths that need one, two and three bytes.
func TestHandEncodingEqualsMarshal(t *testing.T) {
	full := sampleEvent()
	empty := ""
	bare := chat.Event{Type: chat.EventMessageCreated, Message: &chat.Message{ReplyTo: &empty}}
	long := sampleEvent()
	long.Message.Text = strings.Repeat("x", 20000)
	long.Message.Reactions = map[string][]string{"b": {"u1"}, "a": {"u2", "u3"}, "🎉": {strings.Repeat("u", 200)}}
	negative := chat.Event{Type: chat.EventReadUpdated, Seq: -1, ReadSeq: -5, UserID: "bob"}
	conv := chat.Event{Type: chat.EventConversationUpdated, ConversationID: "cnv_1", Seq: 9, At: time.Unix(0, 1),
		Conversation: &chat.Conversation{ID: "cnv_1", Kind: chat.KindDirect, Title: strings.Repeat("t", 300), CreatedBy: "a",
			CreatedAt: time.Unix(1700000000, 5), Members: []string{"a", "b"}, MemberCount: 2, LastSeq: 9, ReadSeq: 3,
			Unread: 6, Muted: true, LastMessage: sampleEvent().Message}}
	many := sampleEvent()
	for i := range 200 {
		many.Message.Attachments = append(many.Message.Attachments, chat.Attachment{ID: fmt.Sprint("att_", i), Size: int64(i)})
	}
	events := []chat.Event{full, bare, long, negative, conv, many, {Type: chat.EventMemberAdded, UserID: "x"}}
	for typ := range eventTypes {
		events = append(events, chat.Event{Type: typ, ConversationID: "cnv_2", Seq: 1})
	}
	for i, ev := range events {
		got, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := EventProto(ev, nil)
		want, err := marshal.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("event %d (%s): hand encoding differs from proto.Marshal\n got %x\nwant %x", i, ev.Type, got, want)
		}
	}
}

// TestHelloTakesTheCursorInEitherForm: a binary hello names the cursor by
// its bytes (as Ready and Event carry it) or by its string; the gateway
// reads the same cursor from both, and the bytes win when both are set.
func TestHelloTakesTheCursorInEitherForm(t *testing.T) {
	c := chat.Cursor{Deployment: 0xdeadbeef, Positions: map[int]int64{3: 12345 << 8, 40: 7 << 8}}
	for name, h := range map[string]*pb.Hello{
		"bytes":  {Cursor: c.AppendBinary(nil)},
		"string": {CursorText: c.Encode()},
		"both":   {Cursor: c.AppendBinary(nil), CursorText: "AQAAAAc"},
	} {
		b, _ := proto.Marshal(&pb.ClientFrame{Kind: &pb.ClientFrame_Hello{Hello: h}})
		f, err := DecodeClientFrame(b)
		if err != nil || f.Type != "hello" || f.Cursor != c.Encode() {
			t.Errorf("%s: %+v, %v; want cursor %q", name, f, err, c.Encode())
		}
	}
}

// TestAnEventsMessageLeavesOutWhatTheEventSays: in an Event, the Message
// has no conversation_id, and no seq, sender_id or created_at_ns when they
// equal the Event's (a message.created); an edit's message keeps the ones
// that differ. Decoded, both are complete again.
func TestAnEventsMessageLeavesOutWhatTheEventSays(t *testing.T) {
	created := sampleEvent()
	created.Type, created.Seq, created.Message.EditedAt, created.Message.Version = chat.EventMessageCreated, 41, nil, 1
	edited := sampleEvent() // seq 42 edits the message of seq 41, made a minute before
	edited.Message.CreatedAt = edited.At.Add(-time.Minute)
	for _, c := range []struct {
		ev       chat.Event
		inherits bool
	}{{created, true}, {edited, false}} {
		b, err := EncodeEvent(c.ev)
		if err != nil {
			t.Fatal(err)
		}
		var m pb.Event
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		msg := m.GetMessage()
		if msg.GetConversationId() != "" {
			t.Errorf("%s: the message repeats the conversation id", c.ev.Type)
		}
		if left := msg.GetSeq() == 0 && msg.GetSenderId() == "" && msg.GetCreatedAtNs() == 0; left != c.inherits {
			t.Errorf("%s: seq, sender_id and created_at left out: %v, want %v (%v)", c.ev.Type, left, c.inherits, msg)
		}
		if !c.inherits && (msg.GetSeq() != 41 || msg.GetCreatedAtNs() != Nanos(c.ev.Message.CreatedAt)) {
			t.Errorf("%s: the fields that differ from the event's are lost: %v", c.ev.Type, msg)
		}
		got, _ := EventOf(&m)
		want := c.ev
		want.Message.Normalize()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded\n got %+v\nwant %+v", c.ev.Type, got.Message, want.Message)
		}
	}
}
