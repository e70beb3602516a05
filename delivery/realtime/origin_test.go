package realtime

import (
	"net/http/httptest"
	"testing"
)

// TestOriginCheckRefusesCrossSiteWebSockets: a WebSocket may be opened
// without an Origin (native clients), from the server's own origin, or
// from an allowed pattern (host, or scheme and host); any other site is
// refused, whatever its case or port.
func TestOriginCheckRefusesCrossSiteWebSockets(t *testing.T) {
	srv := New(Config{AllowedOrigins: "app.example.com, *.trusted.test ,https://secure.example.org"}, Deps{})
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"", true},
		{"http://chat.local:8080", true}, // the request's own host
		{"https://APP.example.com", true},
		{"https://a.trusted.test", true},
		{"https://secure.example.org", true},
		{"http://secure.example.org", false}, // the pattern names https
		{"https://evil.example.com", false},
		{"https://app.example.com.evil.test", false},
		{"http://chat.local:9090", false}, // another port is another origin
		{"null", false},
		{"::not a url", false},
	} {
		r := httptest.NewRequest("GET", "http://chat.local:8080/v1/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := srv.originAllowed(r); got != tc.want {
			t.Errorf("Origin %q: allowed %v, want %v", tc.origin, got, tc.want)
		}
	}
}
