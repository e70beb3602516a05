package realtime

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/delivery/wire"
)

// TestNegotiateSubprotocolTakesTheClientsFirst: the first subprotocol the
// client lists that the server speaks wins, whatever the server's own
// order; none known means none (JSON, as before the binary one existed).
func TestNegotiateSubprotocolTakesTheClientsFirst(t *testing.T) {
	for _, c := range []struct {
		offered []string // one header value each
		want    string
	}{
		{[]string{"parley.v1+proto, parley.v1"}, "parley.v1+proto"},
		{[]string{"parley.v1, parley.v1+proto"}, "parley.v1"},
		{[]string{"parley.v1+proto"}, "parley.v1+proto"},
		{[]string{"mqtt", "Parley.V1+Proto"}, "Parley.V1+Proto"},
		{[]string{"parley.v2, parley.v1"}, "parley.v1"},
		{[]string{"chat, superchat"}, ""},
		{nil, ""},
	} {
		r := httptest.NewRequest("GET", "/v1/ws", nil)
		for _, h := range c.offered {
			r.Header.Add("Sec-WebSocket-Protocol", h)
		}
		if got := negotiateSubprotocol(r); got != c.want {
			t.Errorf("offered %q: got %q, want %q", c.offered, got, c.want)
		}
	}
}

// TestEveryFrameTypeHasABinaryTwin reads this package's sources (and the
// fan-out's ready frame) for the server frame types the WebSocket writes
// and the client frame types handleFrame reads, so a new frame type
// without a binary mapping fails here rather than vanishing for binary
// clients.
func TestEveryFrameTypeHasABinaryTwin(t *testing.T) {
	sources, _ := filepath.Glob("*.go")
	sources = append(sources, "../fanout/conn.go")
	server := regexp.MustCompile(`"type":\s*"([a-z.]+)"`)
	client := regexp.MustCompile(`case "([a-z.]+)"`)
	seen := map[string]bool{}
	for _, name := range sources {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range server.FindAllStringSubmatch(string(src), -1) {
			seen[m[1]] = true
			if _, err := wire.FromJSON([]byte(`{"type":"` + m[1] + `"}`)); err != nil {
				t.Errorf("%s writes server frames of type %q, which have no binary twin: %v", name, m[1], err)
			}
		}
		if name == "ws.go" {
			for _, m := range client.FindAllStringSubmatch(string(src), -1) {
				if !slices.Contains(wire.ClientTypes, m[1]) {
					t.Errorf("ws.go reads client frames of type %q, which have no binary twin", m[1])
				}
			}
		}
	}
	for _, typ := range []string{"ready", "pong", "ack"} {
		if !seen[typ] {
			t.Errorf("found no %q frame in the sources: is this test still reading the right files?", typ)
		}
	}
}
