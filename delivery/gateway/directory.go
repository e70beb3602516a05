package gateway

import (
	"context"
	"slices"
	"sort"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/presence"
)

// storeDirectory is what presence reads, from the Store. A big
// conversation's state carries its member count but not its members
// (chat.Conversation.MemberCount); those are paged from their own rows, so
// presence never decodes a big room's member list.
type storeDirectory struct{ store chat.Store }

var _ presence.Directory = storeDirectory{}

func (d storeDirectory) Conversations(ctx context.Context, userID string) ([]string, error) {
	ms, err := d.store.Memberships(ctx, userID)
	if err != nil {
		return nil, err
	}
	cids := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.Active {
			cids = append(cids, m.ConversationID)
		}
	}
	return cids, nil
}

func (d storeDirectory) Room(ctx context.Context, cid string, max int) (presence.Room, error) {
	c, err := d.store.Conversation(ctx, cid)
	if err != nil {
		return presence.Room{}, err
	}
	r := presence.Room{Seq: c.LastSeq, Count: c.MemberCount}
	if c.Members != nil {
		r.Count = len(c.Members) // the state lists its members: small, or stored before member rows
		if r.Count <= max {
			r.Members = slices.Clone(c.Members)
		}
		return r, nil
	}
	if r.Count <= max {
		if r.Members, err = d.store.Members(ctx, cid, "", max+1); err != nil {
			return presence.Room{}, err
		}
		r.Count = len(r.Members)
	}
	return r, nil
}

func (d storeDirectory) IsMember(ctx context.Context, cid, uid string) (bool, error) {
	m, err := d.store.Membership(ctx, cid, uid)
	if chat.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.Active, nil
}

func (d storeDirectory) Members(ctx context.Context, cid, after string, limit int) ([]string, error) {
	c, err := d.store.Conversation(ctx, cid)
	if chat.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.Members == nil {
		return d.store.Members(ctx, cid, after, limit)
	}
	ms := slices.Clone(c.Members)
	sort.Strings(ms)
	i := sort.SearchStrings(ms, after)
	if i < len(ms) && ms[i] == after {
		i++
	}
	return ms[i:min(len(ms), i+limit)], nil
}
