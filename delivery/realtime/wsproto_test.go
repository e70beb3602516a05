package realtime

import (
	"net/http/httptest"
	"testing"
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
