package cassandra

import (
	"flag"
	"net"
	"testing"
)

// -cassandra.address-map makes the driver dial a node announced at one
// address at another (the fault tests put a TCP proxy there), and leaves
// other nodes alone; a malformed map is refused at flag parsing.
func TestAddressMapTranslatesAnnouncedAddresses(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"-cassandra.address-map", "127.0.0.2:9142=127.0.0.1:31002, 127.0.0.3:9142=127.0.0.1:31003"}); err != nil {
		t.Fatal(err)
	}
	tr := addressTranslator(c.AddressMap)
	for _, tc := range []struct {
		ip       string
		port     int
		wantIP   string
		wantPort int
	}{
		{"127.0.0.2", 9142, "127.0.0.1", 31002},
		{"127.0.0.3", 9142, "127.0.0.1", 31003},
		{"127.0.0.1", 9142, "127.0.0.1", 9142}, // not mapped
		{"127.0.0.2", 9042, "127.0.0.2", 9042}, // another port
	} {
		ip, port := tr.Translate(net.ParseIP(tc.ip), tc.port)
		if ip.String() != tc.wantIP || port != tc.wantPort {
			t.Errorf("%s:%d -> %s:%d, want %s:%d", tc.ip, tc.port, ip, port, tc.wantIP, tc.wantPort)
		}
	}
	for _, bad := range []string{"127.0.0.2:9142", "host:1=127.0.0.1:2", "127.0.0.1=127.0.0.1:2"} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(discard{})
		(&Config{}).RegisterFlags(fs)
		if err := fs.Parse([]string{"-cassandra.address-map", bad}); err == nil {
			t.Errorf("address map %q accepted", bad)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
