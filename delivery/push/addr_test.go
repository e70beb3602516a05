package push

import (
	"net/netip"
	"testing"
)

// TestPublicAddr: the rule for user-supplied push endpoints, both at
// registration (rest) and when the push role dials.
func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		loopback bool
		want     bool
	}{
		{"8.8.8.8", false, true},
		{"2001:4860:4860::8888", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"::ffff:10.0.0.1", true, false},
		{"10.0.0.1", false, false},
		{"172.16.0.1", false, false},
		{"192.168.0.1", false, false},
		{"100.64.0.1", false, false},
		{"169.254.169.254", false, false},
		{"fe80::1", false, false},
		{"fd00::1", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"0.0.0.0", true, false},
	} {
		if got := PublicAddr(netip.MustParseAddr(tc.addr), tc.loopback); got != tc.want {
			t.Errorf("PublicAddr(%s, %v) = %v, want %v", tc.addr, tc.loopback, got, tc.want)
		}
	}
}
