package realtime

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/parleychat/parley/delivery/httpx"
)

// TestPollBodyIsWhatEncodingJSONWrites: the hand-built answer is valid
// JSON and means what encoding/json makes of it, with no events and with
// several. (Not the same bytes: encoding/json would escape <, > and & in
// the events, which the other transports send as rendered.)
func TestPollBodyIsWhatEncodingJSONWrites(t *testing.T) {
	for _, events := range [][]httpx.RawJSON{
		{},
		{httpx.RawJSON(`{"type":"message.created","seq":1}`)},
		{httpx.RawJSON(`{"type":"typing","user_id":"bob"}`), httpx.RawJSON(`{"text":"h\u00e9 <b> \"quoted\""}`), httpx.RawJSON(`{}`)},
	} {
		next := "p0:12,p3:4"
		want, err := json.Marshal(map[string]any{"events": events, "cursor": next})
		if err != nil {
			t.Fatal(err)
		}
		got := pollBody(next, events)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("pollBody = %s: %v", got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("pollBody = %s\nencoding/json: %s", got, want)
		}
	}
}
