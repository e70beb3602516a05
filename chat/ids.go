package chat

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// crockford is a base32 alphabet whose byte order equals its sort order.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

var idState struct {
	sync.Mutex
	last uint64
	seq  uint32
}

// NewID returns prefix + "_" + a 26-char id that sorts by creation time:
// 48 bits of milliseconds, then a per-millisecond counter and randomness,
// so ids made in one process sort strictly in creation order.
func NewID(prefix string) string {
	now := uint64(time.Now().UnixMilli())
	idState.Lock()
	if now <= idState.last {
		now = idState.last
		idState.seq++
	} else {
		idState.last = now
		idState.seq = 0
	}
	seq := idState.seq
	idState.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], now<<16)
	binary.BigEndian.PutUint32(b[6:10], seq)
	_, _ = rand.Read(b[10:])
	var sb strings.Builder
	sb.Grow(len(prefix) + 27)
	sb.WriteString(prefix)
	sb.WriteByte('_')
	// 128 bits -> 26 base32 chars (130 bits, top 2 zero).
	var hi, lo = binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])
	out := make([]byte, 26)
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	sb.Write(out)
	return sb.String()
}
