package pebble

import (
	"bytes"
	"maps"
	"slices"
	"sync"

	"github.com/parleychat/parley/chat"
)

// convCacheMax bounds the decoded conversations a Store keeps.
const convCacheMax = 16384

// convCache keeps conversations decoded with the stored bytes they came
// from, so that reading a conversation whose state has not changed (a
// listing of many conversations, most of them idle) compares bytes
// instead of decoding JSON. An entry is used only when its bytes equal
// the stored value just read, so it can never answer stale state and
// needs no invalidation; the answer is a deep copy, so callers may change
// it freely.
type convCache struct {
	mu sync.Mutex
	m  map[string]convCached
}

type convCached struct {
	raw []byte
	c   chat.Conversation
}

// get returns a copy of the conversation decoded from raw, if kept.
func (cc *convCache) get(id string, raw []byte) (chat.Conversation, bool) {
	cc.mu.Lock()
	e, ok := cc.m[id]
	cc.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return chat.Conversation{}, false
	}
	return cloneConversation(e.c), true
}

// put keeps c as decoded from raw (copied; raw may be reused after).
func (cc *convCache) put(id string, raw []byte, c chat.Conversation) {
	e := convCached{raw: bytes.Clone(raw), c: cloneConversation(c)}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil {
		cc.m = make(map[string]convCached)
	}
	if _, ok := cc.m[id]; !ok && len(cc.m) >= convCacheMax {
		for k := range cc.m { // drop any one: a cheap bound, not an LRU
			delete(cc.m, k)
			break
		}
	}
	cc.m[id] = e
}

// cloneConversation copies c deeply: nothing it refers to is shared.
func cloneConversation(c chat.Conversation) chat.Conversation {
	c.Members = slices.Clone(c.Members)
	if c.Tally != nil {
		t := *c.Tally
		t.Deletions = slices.Clone(t.Deletions)
		c.Tally = &t
	}
	if c.LastMessage != nil {
		m := *c.LastMessage
		m.Attachments = slices.Clone(m.Attachments)
		if m.ReplyTo != nil {
			r := *m.ReplyTo
			m.ReplyTo = &r
		}
		if m.EditedAt != nil {
			e := *m.EditedAt
			m.EditedAt = &e
		}
		if m.Reactions != nil {
			rs := maps.Clone(m.Reactions)
			for k, v := range rs {
				rs[k] = slices.Clone(v)
			}
			m.Reactions = rs
		}
		c.LastMessage = &m
	}
	return c
}
