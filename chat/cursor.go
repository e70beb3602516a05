package chat

import (
	"encoding/base64"
	"encoding/binary"
	"sort"
	"strings"
)

// Cursor is a position in a user's whole stream: for each partition, the
// position of the last durable event delivered. Partitions absent from the
// map are at zero. Deployment ties the cursor to the deployment that made
// it, so a foreign cursor is refused rather than misread.
type Cursor struct {
	Deployment uint32
	Positions  map[int]int64
}

// NewCursor returns an empty cursor of deployment d.
func NewCursor(d uint32) Cursor { return Cursor{Deployment: d, Positions: map[int]int64{}} }

// Clone returns an independent copy.
func (c Cursor) Clone() Cursor {
	n := Cursor{Deployment: c.Deployment, Positions: make(map[int]int64, len(c.Positions))}
	for p, v := range c.Positions {
		n.Positions[p] = v
	}
	return n
}

// Advance moves partition p to pos if pos is ahead; it reports whether it moved.
func (c Cursor) Advance(p int, pos int64) bool {
	if pos > c.Positions[p] {
		c.Positions[p] = pos
		return true
	}
	return false
}

const cursorVersion = 1

// MaxCursorLen is the longest encoded cursor accepted.
const MaxCursorLen = 1024

// Encode returns the cursor's compact opaque form: version, deployment,
// then (partition delta, position) uvarint pairs in partition order,
// base64url without padding.
func (c Cursor) Encode() string { return string(c.AppendEncode(nil)) }

// AppendEncode appends the form Encode returns to dst. It allocates
// nothing when dst has room and the cursor names at most 64 partitions:
// the fan-out writes a cursor with every event it delivers.
func (c Cursor) AppendEncode(dst []byte) []byte {
	var small [64]int
	parts := small[:0]
	for p, v := range c.Positions {
		if v > 0 {
			parts = append(parts, p)
		}
	}
	if len(parts) > 16 {
		sort.Ints(parts)
	} else {
		for i := 1; i < len(parts); i++ { // insertion sort: no interface boxing
			for j := i; j > 0 && parts[j] < parts[j-1]; j-- {
				parts[j], parts[j-1] = parts[j-1], parts[j]
			}
		}
	}
	var raw [5 + 64*(binary.MaxVarintLen64+2)]byte
	buf := raw[:0]
	buf = append(buf, cursorVersion)
	buf = binary.BigEndian.AppendUint32(buf, c.Deployment)
	prev := -1
	for _, p := range parts {
		buf = binary.AppendUvarint(buf, uint64(p-prev))
		buf = binary.AppendUvarint(buf, uint64(c.Positions[p]))
		prev = p
	}
	return base64.RawURLEncoding.AppendEncode(dst, buf)
}

// DecodeCursor parses s. It fails with CodeCursorExpired when s is not a
// cursor of deployment d with partitions below n.
func DecodeCursor(s string, d uint32, n int) (Cursor, error) {
	bad := Errorf(CodeCursorExpired, "cursor expired or from another deployment")
	// The decoder skips CR and LF; a cursor holding them is not one the
	// server wrote (found by fuzzing).
	if len(s) > MaxCursorLen || strings.ContainsAny(s, "\r\n") {
		return Cursor{}, bad
	}
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(buf) < 5 || buf[0] != cursorVersion {
		return Cursor{}, bad
	}
	c := NewCursor(binary.BigEndian.Uint32(buf[1:5]))
	if c.Deployment != d {
		return Cursor{}, bad
	}
	rest := buf[5:]
	prev := -1
	for len(rest) > 0 {
		dp, k := binary.Uvarint(rest)
		if k <= 0 || dp == 0 || dp > uint64(n) {
			return Cursor{}, bad
		}
		rest = rest[k:]
		pos, k := binary.Uvarint(rest)
		if k <= 0 || pos > 1<<62 {
			return Cursor{}, bad
		}
		rest = rest[k:]
		p := prev + int(dp)
		if p >= n {
			return Cursor{}, bad
		}
		c.Positions[p] = int64(pos)
		prev = p
	}
	return c, nil
}
