package gateway

import (
	"context"
	"net/http"
	"slices"
	"sort"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
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

// getPresence answers GET /v1/conversations/{cid}/presence?after=&limit=:
// the online members in user-id order, a page at a time.
func (g *Gateway) getPresence(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	cid := r.PathValue("cid")
	if err := g.isMember(r.Context(), cid, u.ID); err != nil {
		g.writeErr(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q, "limit", 500, 1, 500)
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	online, next, err := g.presence.OnlineMembers(r.Context(), cid, q.Get("after"), int(limit))
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	var nextAfter *string
	if next != "" {
		nextAfter = &next
	}
	writeJSON(w, http.StatusOK, map[string]any{"online": online, "next_after": nextAfter})
}

// watchPresence handles a presence.watch frame. The watch ends with the
// session.
func (s *wsSession) watchPresence(ctx context.Context, ids []string) error {
	if !s.watching {
		s.watching = true
		context.AfterFunc(ctx, func() { s.g.presence.Unwatch(s) })
	}
	return s.g.presence.Watch(ctx, s, ids)
}

// UserID and Presence make a WebSocket session a presence.Watcher.
func (s *wsSession) UserID() string { return s.user.ID }

func (s *wsSession) Presence(e chat.Ephemeral) {
	b, err := jsonMarshal(e)
	if err != nil {
		return
	}
	s.conn.Enqueue(&fanout.Item{Data: b, Type: e.Type, Kind: fanout.KindEphemeral})
}
