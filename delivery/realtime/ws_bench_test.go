package realtime

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkWSWriteFrame times one frame of events from the server's
// writer until the client has read it: "corked" through the frameConn
// (one write per frame), "buffered" as before it, through a 1 KiB write
// buffer alone with a deadline context per write (a frame larger than the
// buffer took two writes).
func BenchmarkWSWriteFrame(b *testing.B) {
	event := []byte(`{"type":"message.created","conversation_id":"c_0123456789abcdef","seq":123,"message":{"id":"m_0123456789abcdef","conversation_id":"c_0123456789abcdef","sender_id":"user-000001","text":"` + strings.Repeat("x", 100) + `","created_at":"2026-12-02T07:00:00.000000Z","seq":123},"cursor":"AQIDBAUGBwgJ"}`)
	for _, n := range []int{1, 4, 16} {
		frame := bytes.Join(bytes.Split(bytes.Repeat(append(event, '\n'), n), []byte("\n"))[:n], []byte("\n"))
		for _, mode := range []string{"corked", "buffered"} {
			b.Run("events="+strconv.Itoa(n)+"/write="+mode, func(b *testing.B) {
				wsize := 0
				if mode == "buffered" {
					wsize = 1 << 10 // as before corking
				}
				s, cl := wsPair(b, wsize)
				if mode == "buffered" {
					s.out = nil
				}
				buf := &wsBuffer{frame: frame}
				ctx := context.Background()
				b.SetBytes(int64(len(frame)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := s.writeFrame(buf); err != nil {
						b.Fatal(err)
					}
					if _, _, err := cl.Read(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
