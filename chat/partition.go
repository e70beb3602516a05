package chat

import (
	"crypto/sha256"
	"encoding/base32"
	"hash/fnv"
	"strings"
)

// DefaultPartitions is the default partition count of a deployment.
const DefaultPartitions = 64

// PartitionOf maps a conversation id to its partition: FNV-1a 32 of the id
// modulo n. Every Log adapter routes keys with this function, so a
// conversation always lives in one partition and the cursor can name it.
func PartitionOf(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// DirectConversationID is the id of the direct conversation between a and
// b: derived from the unordered pair so that creating it twice, even
// concurrently on two gateways, names the same conversation.
func DirectConversationID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	sum := sha256.Sum256([]byte(a + "\x00" + b))
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15])
	return "dm_" + strings.ToLower(enc)
}

// Position packs a command's log offset and the index of an event produced
// by that command into one stream position. One command yields at most
// MaxEventsPerCommand events. Positions start above zero, so a cursor entry
// of zero means "before everything".
func Position(offset int64, index int) int64 { return (offset+1)<<8 | int64(index) }

// MaxEventsPerCommand bounds the events one command may produce.
const MaxEventsPerCommand = 256
