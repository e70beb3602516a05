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

// TestLazyDecodeReadsEveryField: the fan-out's lazy reading of a sequenced
// record gives what the full one gives, once its recipients are decoded.
func TestLazyDecodeReadsEveryField(t *testing.T) {
	seqd := filled[chat.Sequenced]()
	b, err := EncodeSequenced(&seqd)
	if err != nil {
		t.Fatal(err)
	}
	full, err := DecodeSequenced(b)
	if err != nil {
		t.Fatal(err)
	}
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

// TestGoldenStoredConversation: a conversation state as the stores keep
// it encodes to the bytes in testdata/, and unwraps with LastPosition and
// LastActivity, which the API's JSON leaves out.
func TestGoldenStoredConversation(t *testing.T) {
	c := filled[chat.Conversation]()
	b, err := json.Marshal(StoredConversation{Conversation: c, LastPosition: c.LastPosition, LastActivity: c.LastActivity})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "conversation_v1.json", b)
	var sc StoredConversation
	if err := json.Unmarshal(b, &sc); err != nil {
		t.Fatal(err)
	}
	back := sc.Unwrap()
	if back.LastPosition != c.LastPosition || !back.LastActivity.Equal(c.LastActivity) || back.ID != c.ID {
		t.Errorf("unwrapped %+v, want %+v", back, c)
	}
}

// TestGoldenStoredRows pins the bytes of the rows both stores keep as the
// domain's JSON (messages, events, memberships, attachments, devices):
// they have no types of their own yet, so an API rename that would change
// what is on disk fails here instead of passing silently.
func TestGoldenStoredRows(t *testing.T) {
	for name, v := range map[string]any{
		"message_row.json":    filled[chat.Message](),
		"event_row.json":      filled[chat.Event](),
		"membership_row.json": filled[chat.Membership](),
		"attachment_row.json": filled[chat.AttachmentRecord](),
		"device_row.json":     filled[chat.Device](),
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, b)
	}
}
