package presence

import (
	"context"
	"sync"

	"github.com/parleychat/parley/chat"
)

// index knows, for this gateway's users, the conversations they are in:
// member lists of the small ones (at most max members), only the member
// count of the big ones. It answers "which local users hear of u's
// presence" without reading the Store.
//
// Only the announcer goroutine changes it (through its ops, in order), so
// a conversation loaded at seq S and the membership events after S are
// applied in the order the hub saw them; the mutex is for readers.
type index struct {
	max int

	mu       sync.Mutex
	rooms    map[string]*room               // conversations of local users
	users    map[string]map[string]struct{} // local user -> its active conversations
	byMember map[string]map[string]struct{} // member of a small room -> those rooms
}

type room struct {
	seq     int64
	count   int
	members map[string]struct{} // nil while count > max
	locals  map[string]struct{} // local users who are members
}

func newIndex(max int) *index {
	return &index{
		max:      max,
		rooms:    map[string]*room{},
		users:    map[string]map[string]struct{}{},
		byMember: map[string]map[string]struct{}{},
	}
}

type opKind int

const (
	opLoad   opKind = iota + 1 // a user's first local connection opened
	opUnload                   // a user's last local connection is gone (after the grace)
	opMember                   // a member.added or member.removed event went by
)

type op struct {
	kind opKind
	user string
	ev   chat.Event
	// res, once an opMember is applied, is the read it still needs (so a
	// retry after a failed read does not apply the event twice).
	res eventResult
}

// queueOp queues an index update for the announcer; it never blocks.
func (t *Tracker) queueOp(o op) {
	t.opsMu.Lock()
	t.ops = append(t.ops, o)
	t.opsMu.Unlock()
	t.wakeAnnouncer()
}

func (t *Tracker) takeOps() []op {
	t.opsMu.Lock()
	defer t.opsMu.Unlock()
	o := t.ops
	t.ops = nil
	return o
}

// isLocal reports whether user is (still) connected here, or within its grace.
func (t *Tracker) isLocal(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.local[user] != nil
}

// applyOps applies the queued index updates in order. After an update
// that fails (the Store is down), it and the rest are returned, in order,
// to be tried again later: announcements never wait behind a Store that
// answers no read.
func (t *Tracker) applyOps(ctx context.Context, ops []op) (retry []op) {
	for i, o := range ops {
		var err error
		switch o.kind {
		case opLoad:
			if t.isLocal(o.user) {
				err = t.loadUser(ctx, o.user)
			}
		case opUnload:
			if !t.isLocal(o.user) {
				t.idx.unloadUser(o.user)
			}
		case opMember:
			err = t.memberEvent(ctx, &o)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.logger.Warn("updating the contact index; will retry", "err", err, "updates", len(ops)-i)
			ops[i] = o // keeps what a membership event still needs read
			return ops[i:]
		}
	}
	return nil
}

// loadUser reads the conversations of a user who connected here, and those
// not indexed yet, once.
func (t *Tracker) loadUser(ctx context.Context, user string) error {
	if t.idx.loaded(user) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	cids, err := t.dir.Conversations(ctx, user)
	if err != nil {
		return err
	}
	fresh := map[string]Room{}
	for _, cid := range cids {
		if t.idx.has(cid) {
			continue
		}
		r, err := t.dir.Room(ctx, cid, t.idx.max)
		if chat.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		fresh[cid] = r
	}
	t.idx.addUser(user, cids, fresh)
	return nil
}

// memberEvent applies a member.added or member.removed event.
func (t *Tracker) memberEvent(ctx context.Context, o *op) error {
	ev := o.ev
	cid, uid := ev.ConversationID, ev.UserID
	if o.res == pending {
		o.res = t.idx.applyEvent(ev)
	}
	res := o.res
	if res == applied {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	if res == needMembership {
		in, err := t.dir.IsMember(ctx, cid, uid)
		if err != nil {
			return err
		}
		t.idx.setLocal(cid, uid, in)
		return nil
	}
	r, err := t.dir.Room(ctx, cid, t.idx.max)
	if chat.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	t.idx.putRoom(cid, r, uid, ev.Type == chat.EventMemberAdded)
	return nil
}

type eventResult int

const (
	pending        eventResult = iota // not applied yet
	applied                           // nothing left to read
	needRoom                          // read the room (a local user joined one not indexed, or a big one shrank)
	needMembership                    // read whether a local user is in a big room read after its event
)

func (x *index) loaded(user string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.users[user] != nil
}

func (x *index) has(cid string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rooms[cid] != nil
}

// addUser records a local user's conversations; fresh holds those that
// were not indexed when they were read.
func (x *index) addUser(user string, cids []string, fresh map[string]Room) {
	x.mu.Lock()
	defer x.mu.Unlock()
	set := make(map[string]struct{}, len(cids))
	x.users[user] = set
	for _, cid := range cids {
		r := x.rooms[cid]
		if r == nil {
			fr, ok := fresh[cid]
			if !ok {
				continue // gone meanwhile
			}
			r = x.installLocked(cid, fr)
		}
		set[cid] = struct{}{}
		r.locals[user] = struct{}{}
	}
}

// putRoom installs (or refreshes) a room read at or after a membership
// event of uid, and records uid's membership if it is local and joined.
func (x *index) putRoom(cid string, fr Room, uid string, joined bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.rooms[cid]
	switch {
	case r == nil:
		r = x.installLocked(cid, fr)
	case fr.Seq >= r.seq:
		x.dropMembersLocked(cid, r)
		r.seq, r.count = fr.Seq, fr.Count
		x.setMembersLocked(cid, r, fr.Members)
	}
	if set := x.users[uid]; set != nil && joined {
		set[cid] = struct{}{}
		r.locals[uid] = struct{}{}
	}
	if len(r.locals) == 0 {
		x.dropRoomLocked(cid, r)
	}
}

func (x *index) installLocked(cid string, fr Room) *room {
	r := &room{seq: fr.Seq, count: fr.Count, locals: map[string]struct{}{}}
	x.rooms[cid] = r
	x.setMembersLocked(cid, r, fr.Members)
	return r
}

func (x *index) setMembersLocked(cid string, r *room, members []string) {
	if r.count > x.max || members == nil {
		r.members = nil
		return
	}
	r.members = make(map[string]struct{}, len(members))
	for _, m := range members {
		r.members[m] = struct{}{}
		x.linkLocked(m, cid)
	}
}

func (x *index) linkLocked(member, cid string) {
	set := x.byMember[member]
	if set == nil {
		set = map[string]struct{}{}
		x.byMember[member] = set
	}
	set[cid] = struct{}{}
}

func (x *index) unlinkLocked(member, cid string) {
	if set := x.byMember[member]; set != nil {
		delete(set, cid)
		if len(set) == 0 {
			delete(x.byMember, member)
		}
	}
}

func (x *index) dropMembersLocked(cid string, r *room) {
	for m := range r.members {
		x.unlinkLocked(m, cid)
	}
	r.members = nil
}

func (x *index) dropRoomLocked(cid string, r *room) {
	x.dropMembersLocked(cid, r)
	for u := range r.locals {
		if set := x.users[u]; set != nil {
			delete(set, cid)
		}
	}
	delete(x.rooms, cid)
}

// unloadUser forgets a user who is no longer connected here, and the
// conversations no other local user is in.
func (x *index) unloadUser(user string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for cid := range x.users[user] {
		r := x.rooms[cid]
		if r == nil {
			continue
		}
		delete(r.locals, user)
		if len(r.locals) == 0 {
			x.dropRoomLocked(cid, r)
		}
	}
	delete(x.users, user)
}

// applyEvent applies a membership event to an indexed room, or says what
// must be read to apply it.
func (x *index) applyEvent(ev chat.Event) eventResult {
	cid, uid := ev.ConversationID, ev.UserID
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.rooms[cid]
	local := x.users[uid] != nil
	if r == nil {
		if ev.Type == chat.EventMemberAdded && local {
			return needRoom
		}
		return applied // no local user is in it
	}
	if ev.Seq <= r.seq {
		// What was read already holds this event, and maybe later ones:
		// whether a local uid is still in the room is what was read.
		if !local {
			return applied
		}
		if r.members == nil {
			return needMembership
		}
		_, in := r.members[uid]
		x.setLocalLocked(cid, r, uid, in)
		return applied
	}
	r.seq = ev.Seq
	switch ev.Type {
	case chat.EventMemberAdded:
		r.count++
		if r.members != nil {
			if r.count > x.max {
				x.dropMembersLocked(cid, r) // grew past the cut-off
			} else {
				r.members[uid] = struct{}{}
				x.linkLocked(uid, cid)
			}
		}
		if local {
			x.setLocalLocked(cid, r, uid, true)
		}
	case chat.EventMemberRemoved:
		r.count = max(0, r.count-1)
		if r.members != nil {
			delete(r.members, uid)
			x.unlinkLocked(uid, cid)
		}
		if local {
			x.setLocalLocked(cid, r, uid, false)
		}
		if x.rooms[cid] == r && r.members == nil && r.count <= x.max {
			return needRoom // shrank to the cut-off: its members are needed now
		}
	}
	return applied
}

// setLocal records whether local user uid is a member of cid (after a
// read of that one membership).
func (x *index) setLocal(cid, uid string, in bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if r := x.rooms[cid]; r != nil && x.users[uid] != nil {
		x.setLocalLocked(cid, r, uid, in)
	}
}

func (x *index) setLocalLocked(cid string, r *room, uid string, in bool) {
	set := x.users[uid]
	if in {
		set[cid] = struct{}{}
		r.locals[uid] = struct{}{}
		return
	}
	delete(set, cid)
	delete(r.locals, uid)
	if len(r.locals) == 0 {
		x.dropRoomLocked(cid, r)
	}
}

// contacts are user and the local users who share a small conversation
// with it: who hears of its presence here without asking.
func (x *index) contacts(user string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	to := []string{user}
	var seen map[string]struct{}
	for cid := range x.byMember[user] {
		r := x.rooms[cid]
		if r == nil {
			continue
		}
		for u := range r.locals {
			if u == user {
				continue
			}
			if seen == nil {
				seen = map[string]struct{}{}
			}
			if _, dup := seen[u]; dup {
				continue
			}
			seen[u] = struct{}{}
			to = append(to, u)
		}
	}
	return to
}

// shares reports whether id is a member of a small indexed room among
// cids; rest are the cids it cannot tell about (big or not indexed).
func (x *index) shares(cids []string, id string) (bool, []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var rest []string
	for _, cid := range cids {
		r := x.rooms[cid]
		if r == nil || r.members == nil {
			rest = append(rest, cid)
			continue
		}
		if _, ok := r.members[id]; ok {
			return true, nil
		}
	}
	return false, rest
}
