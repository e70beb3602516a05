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
