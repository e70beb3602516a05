package fanout

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/wire"
	pb "github.com/parleychat/parley/parley/v1"
)

// chatEventTypes reads every Event* string constant of the chat package's
// source, so a new event type is tested here before anyone remembers to.
func chatEventTypes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../chat/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("chat sources: %v", err)
	}
	var types []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Event") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						types = append(types, v)
					}
				}
			}
		}
	}
	if len(types) < 12 {
		t.Fatalf("found only %d event types in chat: %v", len(types), types)
	}
	return types
}

var (
	fixAt     = time.Date(2026, 12, 2, 7, 37, 43, 123456789, time.UTC)
	fixEdited = fixAt.Add(90 * time.Second)
	fixReply  = "msg_01jexample0000000000000a"
)

func fixMessage() *chat.Message {
	return &chat.Message{
		ID: "msg_01jexample0000000000000b", ConversationID: "cnv_01jexample0000000000000c", Seq: 41,
		SenderID: "alice", ClientID: "c-41", Text: "Lunch at noon? 🍜", ReplyTo: &fixReply, CreatedAt: fixAt, EditedAt: &fixEdited,
		Attachments: []chat.Attachment{{ID: "att_01jexample0000000000000d", Name: "menu.png", ContentType: "image/png", Size: 48213, Thumbnail: true}},
		Reactions:   map[string][]string{"👍": {"bob", "carol"}, "🎉": {"dave"}}, Version: 3,
	}
}

// fixtureEvents has one event of each durable type, with every field its
// type carries.
func fixtureEvents() map[string]chat.Event {
	head := func(typ string, seq int64) chat.Event {
		return chat.Event{Type: typ, ConversationID: "cnv_01jexample0000000000000c", Seq: seq,
			EventID: "evt_01jexample00000000000" + strconv.Itoa(int(10+seq)), At: fixAt.Add(time.Duration(seq) * time.Millisecond),
			Actor: "alice", Partition: 5, Position: seq << 8}
	}
	out := map[string]chat.Event{}
	add := func(ev chat.Event) { out[ev.Type] = ev }

	ev := head(chat.EventMessageCreated, 41)
	plain := &chat.Message{ID: "msg_01jexample0000000000000b", ConversationID: ev.ConversationID, Seq: 41, SenderID: "alice",
		ClientID: "c-41", Text: "Lunch at noon?", CreatedAt: fixAt, Version: 1}
	ev.Message = plain
	add(ev)
	ev = head(chat.EventMessageUpdated, 42)
	ev.Message = fixMessage()
	add(ev)
	ev = head(chat.EventMessageDeleted, 43)
	ev.MessageID = "msg_01jexample0000000000000b"
	add(ev)
	ev = head(chat.EventReactionAdded, 44)
	ev.MessageID, ev.Emoji, ev.UserID = "msg_01jexample0000000000000b", "👍", "bob"
	ev.Actor = "bob"
	add(ev)
	ev = head(chat.EventReactionRemoved, 45)
	ev.MessageID, ev.Emoji, ev.UserID = "msg_01jexample0000000000000b", "👍", "bob"
	add(ev)
	ev = head(chat.EventMemberAdded, 46)
	ev.UserID = "erin"
	add(ev)
	ev = head(chat.EventMemberRemoved, 47)
	ev.UserID = "erin"
	add(ev)
	ev = head(chat.EventConversationUpdated, 48)
	ev.Conversation = &chat.Conversation{ID: ev.ConversationID, Kind: chat.KindGroup, Title: "Ops", CreatedBy: "alice",
		CreatedAt: fixAt.Add(-time.Hour), Members: []string{"alice", "bob", "carol"}, MemberCount: 3, LastSeq: 48,
		LastMessage: fixMessage()}
	add(ev)
	ev = head(chat.EventReadUpdated, 49)
	ev.UserID, ev.ReadSeq = "bob", 41
	add(ev)
	return out
}

func fixtureEphemerals() map[string]chat.Ephemeral {
	on := true
	return map[string]chat.Ephemeral{
		chat.EventTyping:      {Type: chat.EventTyping, ConversationID: "cnv_01jexample0000000000000c", UserID: "bob"},
		chat.EventPresence:    {Type: chat.EventPresence, UserID: "bob", Online: &on},
		chat.EventUserUpdated: {Type: chat.EventUserUpdated, User: &chat.User{ID: "bob", Name: "Bob B."}},
	}
}

// fixtureControls has one of each frame the gateway answers a client
// with, as JSON.
func fixtureControls() map[string]string {
	msg, _ := json.Marshal(fixMessage())
	return map[string]string{
		"ready":          `{"type":"ready","user_id":"alice","cursor":"AQAAAAcGgAo","session_id":"ses_1","expires_at":"2026-12-02T08:37:43.5Z"}`,
		"ack":            `{"type":"ack","ref":"r1","message":` + string(msg) + `}`,
		"pong":           `{"type":"pong","ref":"p1"}`,
		"error":          `{"type":"error","ref":"r2","error":{"code":"not_found","message":"no such conversation","request_id":"req_1"}}`,
		"token.expiring": `{"type":"token.expiring","expires_at":"2026-12-02T08:37:43.5Z"}`,
		"auth.ok":        `{"type":"auth.ok","ref":"a1","expires_at":"2026-12-02T09:37:43Z"}`,
	}
}

// testConn is a connection whose cursor is already somewhere.
func testConn() *Conn {
	c := NewConn("bob", 1024)
	c.cursor = chat.Cursor{Deployment: 7, Positions: map[int]int64{17: 1 << 20, 40: 1 << 21}}
	return c
}

// render renders items as one JSON frame and one binary frame, each from
// the same starting cursor.
func render(items []*Item) (jsonFrame, protoFrame []byte) {
	return testConn().RenderBatch(nil, items), testConn().RenderBatchProto(nil, items)
}

// TestEveryEventTypeCarriesTheSameContentInBothEncodings renders one
// event of every type the chat package declares through a connection, as
// JSON and as Protocol Buffers, and checks the two carry the same content.
// The binary side is read by Google's protojson with the schema's naming
// rules (jsonShape), not by this repository's decoder.
func TestEveryEventTypeCarriesTheSameContentInBothEncodings(t *testing.T) {
	events, ephemerals := fixtureEvents(), fixtureEphemerals()
	for _, typ := range chatEventTypes(t) {
		var it *Item
		if ev, ok := events[typ]; ok {
			if _, mapped := wire.EventType(typ); !mapped {
				t.Errorf("%s: no protobuf EventType for it (parley/v1/parley.proto, delivery/wire)", typ)
				continue
			}
			it = EventItem(ev, time.Time{})
		} else if e, ok := ephemerals[typ]; ok {
			if _, mapped := wire.EphemeralType(typ); !mapped {
				t.Errorf("%s: no protobuf EphemeralType for it (parley/v1/parley.proto, delivery/wire)", typ)
				continue
			}
			it = EphemeralItem(e)
		} else {
			t.Errorf("%s: a chat event type without a fixture here, so its binary encoding is untested", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			j, p := render([]*Item{it})
			sameContent(t, j, p)
		})
	}
}

// TestControlFramesCarryTheSameContentInBothEncodings does the same for
// what the gateway answers one client with (queued as JSON control items,
// translated for a binary connection).
func TestControlFramesCarryTheSameContentInBothEncodings(t *testing.T) {
	controls := fixtureControls()
	for _, typ := range wire.ServerTypes {
		js, ok := controls[typ]
		if !ok {
			t.Errorf("%s: no fixture", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			j, p := render([]*Item{ControlItem([]byte(js))})
			sameContent(t, j, p)
		})
	}
}

// TestABatchCarriesTheSameContentInBothEncodings: one frame of many
// items — controls first as queued, events with a cursor that moves per
// event, a replayed duplicate dropped, a mark — reads the same both ways.
func TestABatchCarriesTheSameContentInBothEncodings(t *testing.T) {
	var items []*Item
	items = append(items, ControlItem([]byte(fixtureControls()["pong"])))
	for _, typ := range []string{chat.EventMessageCreated, chat.EventReactionAdded, chat.EventConversationUpdated, chat.EventReadUpdated} {
		items = append(items, EventItem(fixtureEvents()[typ], time.Time{}))
	}
	items = append(items, EphemeralItem(fixtureEphemerals()[chat.EventTyping]))
	items = append(items, EventItem(fixtureEvents()[chat.EventMessageCreated], time.Time{})) // already delivered: dropped
	items = append(items, &Item{Kind: KindMark, Partition: 9, Position: 77}, heartbeat)
	removed := fixtureEvents()[chat.EventMemberRemoved]
	removed.Partition, removed.Position = 9, 78
	items = append(items, EventItem(removed, time.Time{}))
	j, p := render(items)
	if n := bytes.Count(j, []byte("\n")) + 1; n != 7 {
		t.Fatalf("JSON frame has %d objects, want 7:\n%s", n, j)
	}
	sameContent(t, j, p)
	// The last event's cursor includes every event before it.
	f, err := wire.DecodeFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := chat.DecodeCursor(wire.CursorText(f.Messages[len(f.Messages)-1].GetEvent().GetCursor()), 7, 64)
	if err != nil || cur.Positions[9] != 78 || cur.Positions[5] != 49<<8 {
		t.Fatalf("last cursor %+v, %v", cur, err)
	}
}

// TestProtoEncodedOncePerItem: every connection gets the same bytes, made
// once, and an item made without its source value (JSON only) encodes to
// the same bytes as one made with it.
func TestProtoEncodedOncePerItem(t *testing.T) {
	ev := fixtureEvents()[chat.EventMessageUpdated]
	it := EventItem(ev, time.Time{})
	a, b := it.Proto(), it.Proto()
	if len(a) == 0 || &a[0] != &b[0] {
		t.Fatal("the binary encoding was made twice (or not at all)")
	}
	bare := &Item{Data: it.JSON(), Kind: KindEvent, Partition: it.Partition, Position: it.Position}
	if !bytes.Equal(bare.Proto(), a) {
		t.Fatal("an event item without its source encodes differently")
	}
	eph := EphemeralItem(fixtureEphemerals()[chat.EventPresence])
	bareEph := &Item{Data: eph.JSON(), Kind: KindEphemeral}
	if !bytes.Equal(bareEph.Proto(), eph.Proto()) {
		t.Fatal("an ephemeral item without its source encodes differently")
	}
}

// sameContent compares a JSON frame and a binary frame object by object.
func sameContent(t *testing.T, jsonFrame, protoFrame []byte) {
	t.Helper()
	var fromJSON []any
	for _, line := range bytes.Split(jsonFrame, []byte("\n")) {
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		var v map[string]any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("JSON object %q: %v", line, err)
		}
		fromJSON = append(fromJSON, normalize(v))
	}
	f, err := wire.DecodeFrame(protoFrame)
	if err != nil {
		t.Fatal(err)
	}
	var fromProto []any
	for _, m := range f.Messages {
		fromProto = append(fromProto, normalize(jsonShape(t, m)))
	}
	if !reflect.DeepEqual(fromJSON, fromProto) {
		jb, _ := json.MarshalIndent(fromJSON, "", " ")
		pb, _ := json.MarshalIndent(fromProto, "", " ")
		t.Fatalf("the encodings differ\nJSON:  %s\nproto: %s", jb, pb)
	}
	if len(protoFrame) > len(jsonFrame) {
		t.Errorf("binary frame (%d bytes) bigger than JSON (%d)", len(protoFrame), len(jsonFrame))
	}
}

// jsonShape reads one ServerMessage with protojson and reshapes it by the
// rules parley.proto states: the oneof case or the type enum is "type"
// (lower case, "_" → "."), *_ns fields are RFC 3339 times without the
// suffix, reactions are emoji → user ids, an Error's fields sit under
// "error", a cursor's bytes are the string of their base64url without
// padding, and an Event's message takes from the Event the fields it
// leaves out.
func jsonShape(t *testing.T, m *pb.ServerMessage) map[string]any {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var outer map[string]any
	if err := d.Decode(&outer); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 1 {
		t.Fatalf("a ServerMessage with %d kinds: %s", len(outer), b)
	}
	typeName := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", ".") }
	for kind, v := range outer {
		obj, _ := v.(map[string]any)
		if obj == nil {
			obj = map[string]any{}
		}
		obj = reshape(obj).(map[string]any)
		if c, ok := obj["cursor"].(string); ok { // protojson writes bytes in standard base64
			raw, err := base64.StdEncoding.DecodeString(c)
			if err != nil {
				t.Fatalf("cursor %q: %v", c, err)
			}
			obj["cursor"] = base64.RawURLEncoding.EncodeToString(raw)
		}
		switch kind {
		case "event":
			obj["type"] = typeName(strings.TrimPrefix(obj["type"].(string), "EVENT_TYPE_"))
			if msg, ok := obj["message"].(map[string]any); ok {
				for field, from := range map[string]string{"conversation_id": "conversation_id", "seq": "seq", "sender_id": "actor", "created_at": "at"} {
					if _, set := msg[field]; !set && obj[from] != nil {
						msg[field] = obj[from]
					}
				}
			}
		case "ephemeral":
			obj["type"] = typeName(strings.TrimPrefix(obj["type"].(string), "EPHEMERAL_TYPE_"))
		case "error":
			inner := map[string]any{}
			for _, k := range []string{"code", "message", "request_id"} {
				if v, ok := obj[k]; ok {
					inner[k] = v
					delete(obj, k)
				}
			}
			obj["error"] = inner
			obj["type"] = "error"
		default:
			obj["type"] = typeName(kind)
		}
		return obj
	}
	return nil
}

// reshape applies the time and reaction rules to v, recursively.
func reshape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if name, ok := strings.CutSuffix(k, "_ns"); ok {
				n, _ := strconv.ParseInt(string(val.(string)), 10, 64)
				out[name] = time.Unix(0, n).UTC().Format(time.RFC3339Nano)
				continue
			}
			if k == "reactions" {
				r := map[string]any{}
				for emoji, users := range val.(map[string]any) {
					r[emoji] = users.(map[string]any)["user_ids"]
				}
				out[k] = r
				continue
			}
			out[k] = reshape(val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = reshape(x[i])
		}
		return out
	}
	return v
}

// normalize drops what carries no content in either encoding (null, "",
// 0, false, [], {}: the JSON's omitted and empty fields, proto3's
// defaults) and makes numbers strings (protojson writes int64 as strings).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			if n := normalize(val); n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i := range x {
			out[i] = normalize(x[i])
		}
		return out
	case json.Number:
		if x == "0" {
			return nil
		}
		return string(x)
	case string:
		if x == "" || x == "0" {
			return nil
		}
		return x
	case bool:
		if !x {
			return nil
		}
		return x
	}
	return v
}

// TestProtoSharedByConcurrentWriters: writers of many connections render
// one shared item at once (as the hub's items are); its binary encoding
// is made once and every frame gets the same bytes (run with -race).
func TestProtoSharedByConcurrentWriters(t *testing.T) {
	it := EventItem(fixtureEvents()[chat.EventMessageUpdated], time.Time{})
	frames := make([][]byte, 16)
	var wg sync.WaitGroup
	for i := range frames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frames[i] = testConn().RenderBatchProto(nil, []*Item{it})
		}()
	}
	wg.Wait()
	for _, f := range frames[1:] {
		if !bytes.Equal(f, frames[0]) {
			t.Fatal("connections rendered different bytes for one item")
		}
	}
}
