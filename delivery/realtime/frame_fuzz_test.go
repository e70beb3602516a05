package realtime

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// FuzzDecodeClientFrame: any frame a client sends either fails the
// connection (a text frame that is not UTF-8, exactly) or decodes to a
// frame whose answers — a pong or an error echoing its ref — are valid
// JSON in valid UTF-8.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","ref":"r1"}`,
		"{\"type\":\"ping\",\"ref\":\"\xff\xfe\"}",
		`{"type":"ping","ref":"\ud800"}`,
		`{"type":"ping","ref":{"a":[1,2,{"b":null}]}}`,
		`{"type":"send","ref":1,"conversation_id":"cnv_1","client_id":"c","text":"hi","attachments":["att_1"],"reply_to":null}`,
		`{"type":"read","conversation_id":"c","seq":-1}`,
		`{"type":"hello","cursor":"AQAAAAc"}`,
		`[1,2]`, `null`, `{"type":`, "",
	} {
		f.Add(byte(websocket.MessageText), []byte(s))
	}
	f.Add(byte(websocket.MessageBinary), []byte{0x81, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		mt := websocket.MessageType(typ%2 + 1)
		fr, fail := decodeClientFrame(mt, data)
		if fail != (mt == websocket.MessageText && !utf8.Valid(data)) {
			t.Fatalf("%v %q: fail %v", mt, data, fail)
		}
		if fail {
			return
		}
		for _, answer := range []any{
			map[string]any{"type": "pong", "ref": fr.Ref},
			struct {
				Type string          `json:"type"`
				Ref  json.RawMessage `json:"ref,omitempty"`
			}{"error", fr.Ref},
		} {
			b, err := json.Marshal(answer)
			if err != nil {
				t.Fatalf("the answer to %q does not encode: %v", data, err)
			}
			if !utf8.Valid(b) || !json.Valid(b) {
				t.Fatalf("the answer to %q is %q", data, b)
			}
		}
	})
}
