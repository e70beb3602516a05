package sequencer

import (
	"fmt"
	"sync"

	"github.com/parleychat/parley/chat"
)

// Big conversations keep their member list out of their stored state:
// the state is read and written with every batch that touches the
// conversation, and a list of thousands of ids was most of it. Their
// members live in the store's member rows (Store.Members), which the
// sequencer reads once and then remembers (memberCache); it still knows
// every event's recipients and checks membership on the state it applies
// commands to.

// storesMembers reports whether c's stored state may leave its member list
// out: a big conversation whose member rows are complete, which holds for
// every conversation created since tallies (and member rows) exist.
func storesMembers(c *chat.Conversation) bool {
	return c.Tally != nil && c.MemberCount > chat.MaxListedMembers
}

// storedState is c as the store keeps it: without its member list when
// the member rows hold it.
func storedState(c chat.Conversation) chat.Conversation {
	if storesMembers(&c) {
		c.Members = nil
	}
	return c
}

// maxCachedMemberIDs bounds the ids a memberCache holds; a full cache is
// emptied and refills.
const maxCachedMemberIDs = 2_000_000

// memberCache remembers the member lists of big conversations as of a
// LastSeq: an entry is used only while the stored conversation is still at
// that seq, so a change made by another sequencer (after a rebalance)
// makes the entry stale rather than wrong.
type memberCache struct {
	mu      sync.Mutex
	entries map[string]cachedMembers
	ids     int
}

type cachedMembers struct {
	lastSeq int64
	members []string
}

func (m *memberCache) get(cid string, lastSeq int64) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[cid]
	if !ok || e.lastSeq != lastSeq {
		return nil, false
	}
	return e.members, true
}

// put remembers members (which the cache then owns) as of lastSeq.
func (m *memberCache) put(cid string, lastSeq int64, members []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil || m.ids+len(members) > maxCachedMemberIDs {
		m.entries, m.ids = map[string]cachedMembers{}, 0
	}
	m.ids += len(members) - len(m.entries[cid].members)
	m.entries[cid] = cachedMembers{lastSeq: lastSeq, members: members}
}

// membersPage is how many member rows one read asks for.
const membersPage = 1000

// fillMembers gives a conversation whose stored state leaves its members
// out its member list: from the cache, or from the store's member rows.
func (b *batch) fillMembers(conv *chat.Conversation) error {
	if conv.Members != nil || !storesMembers(conv) {
		return nil
	}
	if ms, ok := b.s.members.get(conv.ID, conv.LastSeq); ok {
		conv.Members = ms
		return nil
	}
	all := make([]string, 0, conv.MemberCount)
	for after := ""; ; {
		page, err := b.s.store.Members(b.ctx, conv.ID, after, membersPage)
		if err != nil {
			return fmt.Errorf("sequencer: members of %s: %w", conv.ID, err)
		}
		all = append(all, page...)
		if len(page) < membersPage {
			break
		}
		after = page[len(page)-1]
	}
	conv.Members = all
	b.s.members.put(conv.ID, conv.LastSeq, all)
	return nil
}

// rememberMembers keeps, once the batch is committed, the member lists of
// its big conversations as of their new LastSeq.
func (b *batch) rememberMembers() {
	for cid, st := range b.states {
		if st.exists && storesMembers(&st.conv) {
			b.s.members.put(cid, st.conv.LastSeq, st.conv.Members)
		}
	}
}
