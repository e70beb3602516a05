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

// The cursor's encodings, by their first byte. Version 1 wrote each
// position as one uvarint; version 2 writes a position's log offset and
// its index within the record apart (chat.Position): the index is almost
// always 0, so the 8 bits it took cost a byte per partition. Every
// version ever written still decodes: clients keep cursors on disk.
const (
	cursorV1      = 1
	cursorV2      = 2
	cursorVersion = cursorV2
)

// MaxCursorLen is the longest encoded cursor accepted.
const MaxCursorLen = 1024

// Encode returns the cursor's compact opaque form, base64url without
// padding of its bytes: the version, the deployment, then for each
// partition in order its delta from the previous one (uvarint) and its
// position as uvarint(position>>8<<1 | i), followed, when i is 1, by the
// low byte of the position (the event's index within its record, which is
// almost always 0).
func (c Cursor) Encode() string { return string(c.AppendEncode(nil)) }

// AppendEncode appends the form Encode returns to dst. It allocates
// nothing when dst has room and the cursor names at most 64 partitions:
// the fan-out writes a cursor with every event it delivers.
func (c Cursor) AppendEncode(dst []byte) []byte {
	var raw [5 + 64*(binary.MaxVarintLen64+2)]byte
	return base64.RawURLEncoding.AppendEncode(dst, c.AppendBinary(raw[:0]))
}

// AppendBinary appends the cursor's bytes before their text encoding (the
// binary realtime protocol carries them): Encode's string is their
// base64url without padding. It allocates nothing when dst has room and
// the cursor names at most 64 partitions.
func (c Cursor) AppendBinary(dst []byte) []byte {
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
	dst = append(dst, cursorVersion)
	dst = binary.BigEndian.AppendUint32(dst, c.Deployment)
	prev := -1
	for _, p := range parts {
		dst = binary.AppendUvarint(dst, uint64(p-prev))
		pos := uint64(c.Positions[p])
		if idx := byte(pos); idx != 0 {
			dst = binary.AppendUvarint(dst, pos>>8<<1|1)
			dst = append(dst, idx)
		} else {
			dst = binary.AppendUvarint(dst, pos>>8<<1)
		}
		prev = p
	}
	return dst
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
	if err != nil || len(buf) < 5 || (buf[0] != cursorV1 && buf[0] != cursorV2) {
		return Cursor{}, bad
	}
	v2 := buf[0] == cursorV2
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
		if k <= 0 {
			return Cursor{}, bad
		}
		rest = rest[k:]
		if v2 {
			offset, indexed := pos>>1, pos&1 == 1
			if offset > 1<<62>>8 {
				return Cursor{}, bad
			}
			pos = offset << 8
			if indexed { // the index byte follows, never 0 (Encode leaves 0 out)
				if len(rest) == 0 || rest[0] == 0 {
					return Cursor{}, bad
				}
				pos |= uint64(rest[0])
				rest = rest[1:]
			}
		}
		if pos > 1<<62 {
			return Cursor{}, bad
		}
		p := prev + int(dp)
		if p >= n {
			return Cursor{}, bad
		}
		c.Positions[p] = int64(pos)
		prev = p
	}
	return c, nil
}
