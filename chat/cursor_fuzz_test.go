package chat

import (
	"strings"
	"testing"
)

// FuzzDecodeCursor: any string a client sends as a cursor is either
// refused as cursor_expired or decodes to positions of the deployment's
// partitions that encode back to the same cursor.
func FuzzDecodeCursor(f *testing.F) {
	c := NewCursor(7)
	c.Advance(0, 1<<8)
	c.Advance(3, 12345<<8|3)
	f.Add(c.Encode(), uint32(7), 4)
	f.Add(NewCursor(7).Encode(), uint32(7), 1)
	f.Add("", uint32(0), 1)
	f.Add("AQAAAAc", uint32(7), 64)
	f.Add("AQAAAAcB_____________wE", uint32(7), 64)
	f.Add("AQAA\r\nAAc", uint32(7), 64)
	f.Add("Ad6tvu8BAQWsAg-fjQYrgICAgIAg", uint32(0xdeadbeef), 64) // version 1
	f.Add("AgAAWhcDgIl6B_eKegI", uint32(0x5a17), 64)              // version 2, an index byte
	f.Add("AgAAWhcDAQA", uint32(0x5a17), 64)                      // version 2, an index byte of 0
	f.Fuzz(func(t *testing.T, s string, d uint32, n int) {
		n = 1 + (n&0x7fffffff)%4096 // a deployment's partition count
		got, err := DecodeCursor(s, d, n)
		if err != nil {
			if code := ErrorCode(err); code != CodeCursorExpired {
				t.Fatalf("DecodeCursor(%q): code %q, want %q", s, code, CodeCursorExpired)
			}
			return
		}
		if len(s) > MaxCursorLen || strings.ContainsAny(s, "\r\n") {
			t.Fatalf("cursor %q was accepted", s)
		}
		if got.Deployment != d {
			t.Fatalf("deployment %d accepted as %d", got.Deployment, d)
		}
		for p, pos := range got.Positions {
			if p < 0 || p >= n || pos < 0 || pos > 1<<62 {
				t.Fatalf("decoded partition %d position %d (n=%d)", p, pos, n)
			}
		}
		again, err := DecodeCursor(got.Encode(), d, n)
		if err != nil {
			t.Fatalf("the re-encoded cursor %q is refused: %v", got.Encode(), err)
		}
		for p := range n {
			if got.Positions[p] != again.Positions[p] {
				t.Fatalf("partition %d: %d, after a round trip %d", p, got.Positions[p], again.Positions[p])
			}
		}
	})
}
