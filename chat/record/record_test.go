package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

var update = flag.Bool("update", false, "rewrite the golden files (only for a deliberate new version)")

// fill sets every field of v (a pointer) to a value of its own, so that a
// field the encoding drops, or renames, shows in the golden bytes.
func fill(v reflect.Value, path string, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 3 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), path, depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC).Add(time.Duration(len(path)) * time.Second)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), path+"."+v.Type().Field(i).Name, depth)
			}
		}
	case reflect.String:
		v.SetString("s" + path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(len(path)))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(len(path)))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(len(path)) / 4)
	case reflect.Slice:
		if depth > 3 {
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), path+"[0]", depth+1)
		v.Set(s)
	case reflect.Map:
		if depth > 3 {
			return
		}
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, path+".key", depth+1)
		fill(e, path+".value", depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

func filled[T any]() T {
	var x T
	fill(reflect.ValueOf(&x).Elem(), "", 0)
	return x
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytes.TrimSuffix(want, []byte("\n")), got) {
		t.Errorf("%s changed: a logged record's bytes must not change by accident (renamed field in package chat?).\n got  %s\n want %s", name, got, want)
	}
}

// TestGoldenRecords: every field of a command and of a sequenced result
// (its events and result included) encodes to the bytes in testdata/, and
// those bytes decode to what encodes to them again.
func TestGoldenRecords(t *testing.T) {
	cmd := filled[chat.Command]()
	b, err := EncodeCommand(&cmd)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "command_v1.json", b)
	back, err := DecodeCommand(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cmd) {
		t.Errorf("command round trip:\n got  %+v\n want %+v", back, cmd)
	}

	seqd := filled[chat.Sequenced]()
	b, err = EncodeSequenced(&seqd)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sequenced_v1.json", b)
	got, err := DecodeSequenced(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeSequenced(&got)
	if !bytes.Equal(again, b) {
		t.Errorf("sequenced round trip:\n got  %s\n want %s", again, b)
	}
}

// TestRecordsBeforeVersionsAndAfterThisOne: a record written before
// versions existed (no "v") reads as version 1; one of a later version is
// refused whole.
func TestRecordsBeforeVersionsAndAfterThisOne(t *testing.T) {
	cmd, err := DecodeCommand([]byte(`{"id":"cmd_1","op":"send","conversation_id":"cnv_1","actor":"alice","at":"2025-03-14T15:09:26Z","text":"hi"}`))
	if err != nil || cmd.ID != "cmd_1" || cmd.Text != "hi" || cmd.ConversationID != "cnv_1" {
		t.Errorf("unversioned command: %+v, %v", cmd, err)
	}
	s, err := DecodeSequenced([]byte(`{"command_id":"cmd_1","result":{"created":true},"recipients":["alice","bob"]}`))
	if err != nil || s.CommandID != "cmd_1" || !s.Result.Created || fmt.Sprint(s.Recipients) != "[alice bob]" {
		t.Errorf("unversioned sequenced: %+v, %v", s, err)
	}
	if _, err := DecodeCommand([]byte(`{"v":2,"id":"cmd_1"}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2 command: %v, want ErrVersion", err)
	}
	if _, err := DecodeSequenced([]byte(`{"v":2,"command_id":"cmd_1"}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2 sequenced: %v, want ErrVersion", err)
	}
}

// filledSequenced is the record of a chat.Sequenced with every field set,
// and what DecodeSequenced reads of it: what the partial readings of a
// record are held to.
func filledSequenced(t *testing.T) ([]byte, chat.Sequenced) {
	t.Helper()
	seqd := filled[chat.Sequenced]()
	b, err := EncodeSequenced(&seqd)
	if err != nil {
		t.Fatal(err)
	}
	full, err := DecodeSequenced(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, full
}

// TestLazyDecodeReadsEveryField: the fan-out's lazy reading of a sequenced
// record gives what the full one gives, once its recipients are decoded.
func TestLazyDecodeReadsEveryField(t *testing.T) {
	b, full := filledSequenced(t)
	lazy, err := DecodeLazySequenced(b)
	if err != nil {
		t.Fatal(err)
	}
	s := lazy.Sequenced
	if err := json.Unmarshal(lazy.Recipients, &s.Recipients); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, full) {
		t.Errorf("lazy %+v\nfull %+v", s, full)
	}
}

// TestEventsDecodeReadsEveryFieldButRecipients: the indexer's and the
// media worker's reading of a sequenced record gives what the full one
// gives, recipients aside, and refuses a later version as it does.
func TestEventsDecodeReadsEveryFieldButRecipients(t *testing.T) {
	b, full := filledSequenced(t)
	events, err := DecodeSequencedEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	if events.Recipients != nil {
		t.Errorf("recipients %v, want none", events.Recipients)
	}
	full.Recipients = nil
	if !reflect.DeepEqual(events, full) {
		t.Errorf("events %+v\nfull %+v", events, full)
	}
	if _, err := DecodeSequencedEvents([]byte(`{"v":2,"command_id":"cmd_1"}`)); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2 sequenced: %v, want ErrVersion", err)
	}
	if _, err := DecodeSequencedEvents([]byte(`{"v":1,"events":{}}`)); err == nil {
		t.Error("a record whose events are not a list decoded")
	}
}

// BenchmarkDecodeSequenced decodes a message's record in a room of 100
// members: whole, as push does, and without its recipients, as the
// indexer and the media worker do.
func BenchmarkDecodeSequenced(b *testing.B) {
	s := chat.Sequenced{CommandID: "cmd_0123456789", Gateway: "gw_1", Result: chat.Result{Created: true}}
	msg := &chat.Message{ID: "msg_0123456789", ConversationID: "cnv_0123456789", SenderID: "usr_sender", Seq: 42, Text: strings.Repeat("x", 100), CreatedAt: time.Unix(1700000000, 0).UTC()}
	s.Events = []chat.Event{{Type: chat.EventMessageCreated, ConversationID: msg.ConversationID, Seq: 42, Message: msg}}
	s.Result.Message = msg
	for i := range 100 {
		s.Recipients = append(s.Recipients, fmt.Sprintf("usr_%026d", i))
	}
	rec, err := EncodeSequenced(&s)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (chat.Sequenced, error)
	}{{"whole", DecodeSequenced}, {"events", DecodeSequencedEvents}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestGoldenStoredRows pins the bytes of every kind of row both stores
// keep (version 1 is byte-identical to the rows written as the API's JSON
// before the stored forms had types of their own, so those rows read with
// no migration), and each row decodes to what encodes to it again.
func TestGoldenStoredRows(t *testing.T) {
	conv := filled[chat.Conversation]()
	for _, c := range []struct {
		name string
		v    any
		back func([]byte) (any, error)
	}{
		{"conversation_v1.json", &conv, decodeAs[chat.Conversation]},
		{"message_row.json", filled[chat.Message](), decodeAs[chat.Message]},
		{"event_row.json", filled[chat.Event](), decodeAs[chat.Event]},
		{"membership_row.json", filled[chat.Membership](), decodeAs[chat.Membership]},
		{"attachment_row.json", filled[chat.AttachmentRecord](), decodeAs[chat.AttachmentRecord]},
		{"device_row.json", filled[chat.Device](), decodeAs[chat.Device]},
		{"settings_row.json", filled[chat.ConversationSettings](), decodeAs[chat.ConversationSettings]},
		{"change_row.json", Change{filled[chat.Change]()}, func(b []byte) (any, error) {
			var c Change
			err := json.Unmarshal(b, &c)
			return c, err
		}},
	} {
		var b []byte
		var err error
		if ch, ok := c.v.(Change); ok {
			b, err = json.Marshal(ch)
		} else {
			b, err = EncodeRow(c.v)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		golden(t, c.name, b)
		back, err := c.back(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		// Nested conversations (in events and changes) leave LastPosition
		// and LastActivity out, as before: compare bytes, not values.
		var again []byte
		if ch, ok := back.(Change); ok {
			again, err = json.Marshal(ch)
		} else {
			again, err = EncodeRow(back)
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s round trip (%v):\n got  %s\n want %s", c.name, err, again, b)
		}
	}
}

func decodeAs[T any](b []byte) (any, error) {
	var v T
	err := DecodeRow(b, &v)
	return v, err
}

// TestGoldenZeroRows: empty values keep their exact bytes too (a nil list
// is null, an empty one [], absent optional fields stay absent), as the
// API's JSON wrote them.
func TestGoldenZeroRows(t *testing.T) {
	rows := []any{chat.Message{}, chat.Event{}, chat.Conversation{}, chat.Membership{}, chat.AttachmentRecord{},
		chat.Device{}, chat.ConversationSettings{}, Change{},
		chat.Event{Message: &chat.Message{}, Conversation: &chat.Conversation{}},
		chat.Conversation{Tally: &chat.Tally{}, LastMessage: &chat.Message{Attachments: []chat.Attachment{}, Reactions: map[string][]string{}}},
		Change{chat.Change{Events: []chat.Event{}, Messages: []chat.Message{}, Memberships: []chat.Membership{}, Dedups: []chat.Dedup{}, Attachments: []chat.AttachmentRecord{}}},
	}
	var all []json.RawMessage
	for _, r := range rows {
		var b []byte
		var err error
		if ch, ok := r.(Change); ok {
			b, err = json.Marshal(ch)
		} else {
			b, err = EncodeRow(r)
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	b, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "zero_rows.json", b)
}

// TestRowVersions: a row of a later version is refused whole, and a type
// without a stored form cannot be stored.
func TestRowVersions(t *testing.T) {
	var m chat.Message
	if err := DecodeRow([]byte(`{"v":2,"id":"msg_1"}`), &m); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2 message: %v, want ErrVersion", err)
	}
	if m.ID != "" {
		t.Errorf("a version 2 row was half read into the message: %+v", m)
	}
	if err := DecodeRow([]byte(`{"v":1,"id":"msg_1","seq":3}`), &m); err != nil || m.ID != "msg_1" || m.Seq != 3 {
		t.Errorf("version 1 message: %+v, %v", m, err)
	}
	var c Change
	if err := json.Unmarshal([]byte(`{"v":2}`), &c); !errors.Is(err, ErrVersion) {
		t.Errorf("version 2 change: %v, want ErrVersion", err)
	}
	if _, err := EncodeRow(chat.User{ID: "alice"}); err == nil {
		t.Error("EncodeRow(chat.User) succeeded; it has no stored form")
	}
	if err := DecodeRow([]byte(`{}`), &chat.User{}); err == nil {
		t.Error("DecodeRow into chat.User succeeded; it has no stored form")
	}
}

// TestStoredFormsOwnNoChatType: no type of the log's or the stores'
// encoding contains a type of package chat, so the API's JSON tags (and Go
// field names) never decide a byte on disk or in the log. Renaming an API
// field then cannot change a record: the golden files above stay as they
// are, and this test fails if someone embeds a chat type again.
func TestStoredFormsOwnNoChatType(t *testing.T) {
	chatPkg := reflect.TypeOf(chat.Event{}).PkgPath()
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(ty reflect.Type, path string) {
		if seen[ty] {
			return
		}
		seen[ty] = true
		if ty.PkgPath() == chatPkg {
			t.Errorf("%s is %s, a type of package chat: encode it through a type of this package", path, ty)
			return
		}
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(ty.Elem(), path+"[]")
		case reflect.Map:
			walk(ty.Key(), path+".key")
			walk(ty.Elem(), path+".value")
		case reflect.Struct:
			for i := 0; i < ty.NumField(); i++ {
				walk(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		}
	}
	for _, v := range []any{commandV1{}, sequencedV1{}, lazySequencedV1{}, conversationRowV1{}, messageRowV1{},
		eventRowV1{}, membershipRowV1{}, attachmentRowV1{}, deviceRowV1{}, settingsRowV1{}, changeV1{}} {
		walk(reflect.TypeOf(v), reflect.TypeOf(v).Name())
	}
}
