package record

import (
	"time"

	"github.com/parleychat/parley/chat"
)

// StoredConversation is a conversation state as both Stores keep it (a
// Pebble value, a Cassandra column): chat.Conversation's JSON, which
// leaves LastPosition and LastActivity out, plus those two, which the
// store must keep (the sequencer skips replayed commands by
// LastPosition). testdata/conversation_v1.json pins its bytes.
type StoredConversation struct {
	chat.Conversation
	LastPosition int64     `json:"last_position"`
	LastActivity time.Time `json:"last_activity"`
}

// Unwrap returns the conversation with LastPosition and LastActivity set.
func (sc *StoredConversation) Unwrap() chat.Conversation {
	c := sc.Conversation
	c.LastPosition, c.LastActivity = sc.LastPosition, sc.LastActivity
	return c
}
