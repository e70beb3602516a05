package chat

import "testing"

// benchCursor is a user's cursor in n partitions, as the fan-out writes it.
func benchCursor(n int) Cursor {
	c := NewCursor(0xdeadbeef)
	for p := 0; p < n; p++ {
		c.Positions[p*3] = int64(p+1)<<20 | 7
	}
	return c
}

func BenchmarkCursorAppendEncode(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		c := benchCursor(n)
		buf := make([]byte, 0, 2048)
		b.Run(itoa(n)+"partitions", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf = c.AppendEncode(buf[:0])
			}
		})
	}
}

func BenchmarkCursorEncode(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		c := benchCursor(n)
		b.Run(itoa(n)+"partitions", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Encode()
			}
		})
	}
}

func BenchmarkCursorDecode(b *testing.B) {
	for _, n := range []int{1, 8, 64} {
		s := benchCursor(n).Encode()
		b.Run(itoa(n)+"partitions", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCursor(s, 0xdeadbeef, 256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestCursorEncodingIsStable: cursors that clients hold keep their exact
// form (golden strings made by the encoder before AppendEncode).
func TestCursorEncodingIsStable(t *testing.T) {
	c := Cursor{Deployment: 0xdeadbeef, Positions: map[int]int64{0: 1, 5: 300, 63: 1 << 40, 7: 0, 20: 99999}}
	if got, want := c.Encode(), "Ad6tvu8BAQWsAg-fjQYrgICAgIAg"; got != want {
		t.Fatalf("Encode = %s, want %s", got, want)
	}
	m := NewCursor(3)
	for p := 0; p < 64; p++ {
		m.Positions[p] = int64(p*p) << 9
	}
	const want64 = "AQAAAAMCgAQBgBABgCQBgEABgGQBgJABAYDEAQGAgAIBgMQCAYCQAwGA5AMBgMAEAYCkBQGAkAYBgIQHAYCACAGAhAkBgJAKAYCkCwGAwAwBgOQNAYCQDwGAxBABgIASAYDEEwGAkBUBgOQWAYDAGAGApBoBgJAcAYCEHgGAgCABgIQiAYCQJAGApCYBgMAoAYDkKgGAkC0BgMQvAYCAMgGAxDQBgJA3AYDkOQGAwDwBgKQ_AYCQQgGAhEUBgIBIAYCESwGAkE4BgKRRAYDAVAGA5FcBgJBbAYDEXgGAgGIBgMRlAYCQaQGA5GwBgMBwAYCkdAGAkHgBgIR8"
	if got := string(m.AppendEncode([]byte{})); got != want64 {
		t.Fatalf("AppendEncode of 64 partitions = %s, want %s", got, want64)
	}
}
