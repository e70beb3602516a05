package chat

import (
	"encoding/binary"
	"testing"
)

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

// TestCursorEncodingIsStable: the cursor's form changes only on purpose
// (golden strings), and every form clients may hold still decodes to the
// same positions: version 1's strings, made before version 2, included.
func TestCursorEncodingIsStable(t *testing.T) {
	c := Cursor{Deployment: 0xdeadbeef, Positions: map[int]int64{0: 1, 5: 300, 63: 1 << 40, 7: 0, 20: 99999}}
	m := NewCursor(3)
	for p := 0; p < 64; p++ {
		m.Positions[p] = int64(p*p) << 9
	}
	live := Cursor{Deployment: 0x5a17, Positions: map[int]int64{2: 1_000_000 << 8, 9: 1_000_123<<8 | 2}}
	for _, g := range []struct {
		name string
		c    Cursor
		v1   string // as version 1 wrote it
		v2   string // as Encode writes it
	}{
		{"indexed", c, "Ad6tvu8BAQWsAg-fjQYrgICAgIAg", "At6tvu8BAQEFAywPjQafK4CAgIAg"},
		{"64 partitions", m, "AQAAAAMCgAQBgBABgCQBgEABgGQBgJABAYDEAQGAgAIBgMQCAYCQAwGA5AMBgMAEAYCkBQGAkAYBgIQHAYCACAGAhAkBgJAKAYCkCwGAwAwBgOQNAYCQDwGAxBABgIASAYDEEwGAkBUBgOQWAYDAGAGApBoBgJAcAYCEHgGAgCABgIQiAYCQJAGApCYBgMAoAYDkKgGAkC0BgMQvAYCAMgGAxDQBgJA3AYDkOQGAwDwBgKQ_AYCQQgGAhEUBgIBIAYCESwGAkE4BgKRRAYDAVAGA5FcBgJBbAYDEXgGAgGIBgMRlAYCQaQGA5GwBgMBwAYCkdAGAkHgBgIR8",
			"AgAAAAMCBAEQASQBQAFkAZABAcQBAYACAcQCAZADAeQDAcAEAaQFAZAGAYQHAYAIAYQJAZAKAaQLAcAMAeQNAZAPAcQQAYASAcQTAZAVAeQWAcAYAaQaAZAcAYQeAYAgAYQiAZAkAaQmAcAoAeQqAZAtAcQvAYAyAcQ0AZA3AeQ5AcA8AaQ_AZBCAYRFAYBIAYRLAZBOAaRRAcBUAeRXAZBbAcReAYBiAcRlAZBpAeRsAcBwAaR0AZB4AYR8"},
		{"live", live, "", "AgAAWhcDgIl6B_eKegI"},
	} {
		got := string(g.c.AppendEncode([]byte{}))
		if g.v2 != "" && got != g.v2 {
			t.Errorf("%s: Encode = %s, want %s", g.name, got, g.v2)
		}
		for _, s := range []string{g.v1, got} {
			if s == "" {
				continue
			}
			d, err := DecodeCursor(s, g.c.Deployment, 64)
			if err != nil {
				t.Fatalf("%s: %s does not decode: %v", g.name, s, err)
			}
			for p := range 64 {
				if d.Positions[p] != g.c.Positions[p] {
					t.Errorf("%s: %s decodes partition %d to %d, want %d", g.name, s, p, d.Positions[p], g.c.Positions[p])
				}
			}
		}
	}
}

// TestCursorVersion2IsShorter: a cursor of log offsets past a million
// (index 0, as nearly every event) takes a byte less per partition than
// version 1's. Version 1's length is computed here from its layout.
func TestCursorVersion2IsShorter(t *testing.T) {
	c := NewCursor(0x5a17)
	v1 := 5
	for p := 0; p < 64; p += 4 {
		c.Positions[p] = Position(1_000_000+int64(p)*1000, 0)
		v1 += 1 + len(binary.AppendUvarint(nil, uint64(c.Positions[p])))
	}
	if got := len(c.AppendBinary(nil)); got != v1-16 {
		t.Fatalf("version 2 takes %d bytes for 16 partitions, version 1 %d", got, v1)
	}
}
