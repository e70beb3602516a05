package pebble

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Keys are tuples whose byte order is their tuple order, so that one range
// scan reads a conversation's events by seq or its messages by seq. The
// first element names the table. Strings are escaped (0x00 becomes
// 0x00 0xff) and terminated by 0x00 0x01, so no string is a prefix of
// another's encoding and any byte may appear in an id; numbers are
// fixed-width big-endian uint64.
//
// Values of the kinds of row (a conversation, an event, a message, a
// membership, an attachment, a device, settings) are their stored forms,
// record.EncodeRow, never the API's JSON.
//
//	conv/{cid}                      -> chat.Conversation (stored form)
//	ev/{cid}/{seq}                  -> chat.Event (stored form)
//	evpos/{cid}/{position}          -> seq
//	msg/{cid}/{seq}                 -> chat.Message (stored form)
//	msgid/{cid}/{message id}        -> seq
//	msgev/{cid}/{message id}/{seq}  -> "" (events that carry the message)
//	mem/{uid}/{cid}                 -> chat.Membership (stored form)
//	cmem/{cid}/{uid}                -> "" (the conversation's active members)
//	dedup/{cid}/{sender}/{client}   -> message id
//	head/{partition}                -> position
//	owner/{partition}               -> the epoch of the partition's writer
//	refuse/{partition}/{gateway}    -> refusal floor, unix ns (Refuse)
//	claimed/{partition}/{gateway}   -> the latest Deadline stored, unix ns
//	meta/{key}                      -> value
//	att/{attachment id}             -> chat.AttachmentRecord (stored form)
//	uname/{uid}/{"claim"|"set"}     -> display name (profiles, API "People")
//	cset/{uid}/{cid}                -> chat.ConversationSettings (stored form)
//	dev/{uid}/{device id}           -> chat.Device (stored form)
const (
	tableConv    = "conv"
	tableEv      = "ev"
	tableEvPos   = "evpos"
	tableMsg     = "msg"
	tableMsgID   = "msgid"
	tableMsgEv   = "msgev"
	tableMem     = "mem"
	tableCMem    = "cmem"
	tableDedup   = "dedup"
	tableHead    = "head"
	tableOwner   = "owner"
	tableRefuse  = "refuse"
	tableClaimed = "claimed"
	tableMeta    = "meta"
	tableAtt     = "att"
	tableUName   = "uname"
	tableCSet    = "cset"
	tableDev     = "dev"
)

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = append(b, s[i])
		if s[i] == 0 {
			b = append(b, 0xff)
		}
	}
	return append(b, 0x00, 0x01)
}

func appendUint(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// tuple encodes a table name and string elements.
func tuple(table string, elems ...string) []byte {
	n := len(table) + 2
	for _, e := range elems {
		n += len(e) + 2
	}
	b := make([]byte, 0, n+8) // room for a trailing number
	b = appendString(b, table)
	for _, e := range elems {
		b = appendString(b, e)
	}
	return b
}

// unsigned clamps v at zero: seqs and positions are never negative, and a
// negative bound means "from the start".
func unsigned(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func convKey(cid string) []byte                   { return tuple(tableConv, cid) }
func evPrefix(cid string) []byte                  { return tuple(tableEv, cid) }
func evKey(cid string, seq uint64) []byte         { return appendUint(evPrefix(cid), seq) }
func evPosPrefix(cid string) []byte               { return tuple(tableEvPos, cid) }
func evPosKey(cid string, pos uint64) []byte      { return appendUint(evPosPrefix(cid), pos) }
func msgPrefix(cid string) []byte                 { return tuple(tableMsg, cid) }
func msgKey(cid string, seq uint64) []byte        { return appendUint(msgPrefix(cid), seq) }
func msgIDKey(cid, mid string) []byte             { return tuple(tableMsgID, cid, mid) }
func msgEvPrefix(cid, mid string) []byte          { return tuple(tableMsgEv, cid, mid) }
func msgEvKey(cid, mid string, seq uint64) []byte { return appendUint(msgEvPrefix(cid, mid), seq) }
func memPrefix(uid string) []byte                 { return tuple(tableMem, uid) }
func memKey(uid, cid string) []byte               { return tuple(tableMem, uid, cid) }
func cmemPrefix(cid string) []byte                { return tuple(tableCMem, cid) }
func cmemKey(cid, uid string) []byte              { return tuple(tableCMem, cid, uid) }
func dedupKey(cid, sender, client string) []byte {
	return tuple(tableDedup, cid, sender, client)
}
func headPrefix() []byte           { return tuple(tableHead) }
func headKey(partition int) []byte { return appendUint(headPrefix(), uint64(partition)) }
func metaKey(key string) []byte    { return tuple(tableMeta, key) }
func ownerKey(partition int) []byte {
	return appendUint(tuple(tableOwner), uint64(partition))
}
func refusePrefix(partition int) []byte {
	return tuple(tableRefuse, strconv.Itoa(partition))
}
func refuseKey(partition int, gateway string) []byte {
	return tuple(tableRefuse, strconv.Itoa(partition), gateway)
}
func claimedKey(partition int, gateway string) []byte {
	return tuple(tableClaimed, strconv.Itoa(partition), gateway)
}
func attKey(id string) []byte        { return tuple(tableAtt, id) }
func csetPrefix(uid string) []byte   { return tuple(tableCSet, uid) }
func csetKey(uid, cid string) []byte { return tuple(tableCSet, uid, cid) }
func devPrefix(uid string) []byte    { return tuple(tableDev, uid) }
func devKey(uid, id string) []byte   { return tuple(tableDev, uid, id) }

// userNameKey holds one of a user's two names: the latest claimed one and
// the one it set. They are separate keys so neither write reads the other.
func userNameKey(uid string, claimed bool) []byte {
	if claimed {
		return tuple(tableUName, uid, "claim")
	}
	return tuple(tableUName, uid, "set")
}

// decodeLastString decodes b, one escaped and terminated string element
// (appendString) and nothing after it.
func decodeLastString(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		switch {
		case i+1 < len(b) && b[i+1] == 0xff:
			out = append(out, 0)
			i++
		case i+2 == len(b) && b[i+1] == 0x01:
			return string(out), nil
		default:
			return "", fmt.Errorf("malformed key element %q", b)
		}
	}
	return "", fmt.Errorf("unterminated key element %q", b)
}

// prefixEnd is the smallest key greater than every key that starts with p:
// the upper bound of a prefix scan.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// trailingUint decodes the number that ends key.
func trailingUint(key []byte) uint64 {
	if len(key) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

func decodeUint(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("corrupt number of %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
