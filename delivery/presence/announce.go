package presence

import (
	"context"
	"time"

	"github.com/parleychat/parley/chat"
)

// Watcher is one connection that asked for the presence of some users
// (presence.watch). It is compared by identity.
type Watcher interface {
	// UserID is the user the connection belongs to.
	UserID() string
	// Presence queues a presence event for the connection; it must not block.
	Presence(e chat.Ephemeral)
}

// announced is the last presence event sent for a user.
type announced struct {
	at     time.Time
	online bool
}

// announcer is the one goroutine that changes the contact index and
// announces presence changes, so that every change is announced with the
// index as of the membership events before it. Changes of one user are
// coalesced: the first goes out at once, later ones within Window wait
// for its end and then go out as one event with the latest state, if that
// differs from what was last said.
func (t *Tracker) announcer(ctx context.Context) {
	window := t.cfg.Window
	tick := time.NewTicker(max(window/4, time.Millisecond))
	defer tick.Stop()
	last := map[string]announced{}
	waiting := map[string]struct{}{}
	var retry []op
	var retryAt, prunedAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-tick.C:
		}
		ops := t.takeOps()
		if len(retry) > 0 {
			// Updates stay in order: new ones wait behind those to retry.
			retry, ops = append(retry, ops...), nil
			if time.Now().After(retryAt) {
				ops, retry = retry, nil
			}
		}
		if len(ops) > 0 {
			if failed := t.applyOps(ctx, ops); len(failed) > 0 {
				retry, retryAt = failed, time.Now().Add(time.Second)
			}
		}
		now := time.Now()
		for u := range t.takeChanged() {
			if a, ok := last[u]; ok && now.Sub(a.at) < window {
				waiting[u] = struct{}{}
				continue
			}
			t.announce(u, last, now)
		}
		for u := range waiting {
			if now.Sub(last[u].at) >= window {
				delete(waiting, u)
				t.announce(u, last, now)
			}
		}
		if now.Sub(prunedAt) >= 10*window {
			// Keep what was last said of online users (so a change back
			// to it is not said twice); offline is what is assumed of
			// users never heard of.
			prunedAt = now
			for u, a := range last {
				if _, w := waiting[u]; !w && !a.online && now.Sub(a.at) >= window {
					delete(last, u)
				}
			}
		}
	}
}

// announce sends user's current state to those who hear of it here, unless
// it is what they were last told.
func (t *Tracker) announce(user string, last map[string]announced, now time.Time) {
	online := t.Online(user)
	if a, ok := last[user]; (ok && a.online == online) || (!ok && !online) {
		// Unchanged: already said, or offline and never said online.
		return
	}
	last[user] = announced{at: now, online: online}
	e := chat.Ephemeral{Type: chat.EventPresence, UserID: user, Online: &online}
	to := t.idx.contacts(user)
	t.out.Ephemeral(to, e)
	t.wmu.Lock()
	ws := t.watchers[user]
	if len(ws) == 0 {
		t.wmu.Unlock()
		return
	}
	told := make(map[string]struct{}, len(to))
	for _, u := range to {
		told[u] = struct{}{}
	}
	for w := range ws {
		if _, dup := told[w.UserID()]; !dup {
			w.Presence(e)
		}
	}
	t.wmu.Unlock()
}

// Watch makes w receive the presence of ids: at once the current state of
// each, then every change. It replaces w's previous list; an empty list
// stops. Ids that share no conversation with w's user are ignored. More
// than MaxWatch ids is CodeInvalid; a Directory that cannot answer is
// CodeUnavailable (the previous list then stays).
func (t *Tracker) Watch(ctx context.Context, w Watcher, ids []string) error {
	if len(ids) > MaxWatch {
		return chat.Errorf(chat.CodeInvalid, "presence.watch takes at most %d user_ids", MaxWatch)
	}
	caller := w.UserID()
	var ok []string
	if len(ids) > 0 {
		ctx, cancel := context.WithTimeout(ctx, readTimeout)
		defer cancel()
		cids, err := t.dir.Conversations(ctx, caller)
		if err != nil {
			return err
		}
		seen := make(map[string]struct{}, len(ids))
		for _, id := range ids {
			if _, dup := seen[id]; dup || !chat.ValidUserID(id) {
				continue
			}
			seen[id] = struct{}{}
			shared, err := t.shared(ctx, caller, cids, id)
			if err != nil {
				return err
			}
			if shared {
				ok = append(ok, id)
			}
		}
	}
	t.setWatch(w, ok)
	if ctx.Err() != nil {
		// The connection ended meanwhile (and unwatched before this set).
		t.setWatch(w, nil)
		return ctx.Err()
	}
	for _, id := range ok {
		on := t.Online(id)
		w.Presence(chat.Ephemeral{Type: chat.EventPresence, UserID: id, Online: &on})
	}
	return nil
}

// shared reports whether id is a member of one of cids (the caller's
// conversations): from the index for small rooms, else by asking.
func (t *Tracker) shared(ctx context.Context, caller string, cids []string, id string) (bool, error) {
	if id == caller {
		return true, nil
	}
	yes, rest := t.idx.shares(cids, id)
	if yes || len(rest) == 0 {
		return yes, nil
	}
	if len(rest) > 4 {
		// Many big rooms: one read of id's conversations beats one per room.
		theirs, err := t.dir.Conversations(ctx, id)
		if err != nil {
			return false, err
		}
		mine := make(map[string]struct{}, len(rest))
		for _, c := range rest {
			mine[c] = struct{}{}
		}
		for _, c := range theirs {
			if _, ok := mine[c]; ok {
				return true, nil
			}
		}
		return false, nil
	}
	for _, cid := range rest {
		in, err := t.dir.IsMember(ctx, cid, id)
		if err != nil {
			return false, err
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

func (t *Tracker) setWatch(w Watcher, ids []string) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	for _, id := range t.watching[w] {
		if set := t.watchers[id]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(t.watchers, id)
			}
		}
	}
	if len(ids) == 0 {
		delete(t.watching, w)
		return
	}
	t.watching[w] = ids
	for _, id := range ids {
		set := t.watchers[id]
		if set == nil {
			set = map[Watcher]struct{}{}
			t.watchers[id] = set
		}
		set[w] = struct{}{}
	}
}

// Unwatch stops everything w watches (its connection closed).
func (t *Tracker) Unwatch(w Watcher) { t.setWatch(w, nil) }

// OnlineMembers returns, in user-id order, up to limit online members of
// a conversation whose ids sort after after, and the id to page on from
// ("" when there are no more). The caller checks membership.
func (t *Tracker) OnlineMembers(ctx context.Context, cid, after string, limit int) ([]string, string, error) {
	const page = 500
	online := []string{}
	for {
		ms, err := t.dir.Members(ctx, cid, after, page)
		if err != nil {
			return nil, "", err
		}
		t.mu.Lock()
		for _, m := range ms {
			if len(t.where[m]) > 0 {
				online = append(online, m)
			}
		}
		t.mu.Unlock()
		if len(online) > limit {
			return online[:limit], online[limit-1], nil
		}
		if len(ms) < page {
			return online, "", nil
		}
		after = ms[len(ms)-1]
	}
}
