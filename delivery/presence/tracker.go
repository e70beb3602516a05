// Package presence knows who is online on every gateway and tells the
// connections that should hear of it.
//
// A user is online while at least one of its connections on any gateway is
// open, and offline Grace after its last one closes. Each gateway counts
// its own connections and publishes its users' online and offline on the
// ephemeral topic; every gateway reads that topic and keeps the same map
// of who is online where.
//
// Changes reach a user's own connections and the members of the
// conversations it shares with them that have at most MaxMembers members,
// coalesced to at most one event per user per Window. Those contacts come
// from an in-memory index of the conversations of this gateway's users,
// loaded once per user from the Directory and kept current from
// member.added and member.removed events, so no member list is read per
// change. In larger conversations a connection asks for the users it
// shows with Watch.
package presence

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/retry"
)

// Gateways tell each other they are alive every Config.Heartbeat; one not
// heard of for goneBeats heartbeats is taken for dead and its users for
// offline (unless they are connected elsewhere).
const goneBeats = 4

// publishChunk bounds the records of one Append (all of a gateway's
// records share a key, so they go in one produce request); maxQueued is
// how many may wait while the log is down before typing and heartbeats
// are dropped.
const (
	publishChunk = 256
	maxQueued    = 10000
)

// readTimeout bounds one Directory read.
const readTimeout = 5 * time.Second

// record is one record of the ephemeral topic, keyed by the gateway that
// wrote it, so one gateway's records stay in order. The encoding is shared
// by every gateway of a deployment: keep it compatible.
type record struct {
	// Kind is online or offline (User on Gateway), alive (a heartbeat),
	// hello (a gateway that just started asks for snapshots), snapshot
	// and snapshot+ (every user online on Gateway, in parts), or event
	// (Event for the local connections of Users, on every gateway).
	Kind    string          `json:"kind"`
	Gateway string          `json:"gw"`
	User    string          `json:"user,omitempty"`
	Users   []string        `json:"users,omitempty"`
	Event   *chat.Ephemeral `json:"event,omitempty"`
}

// Directory is what presence reads about conversations. The gateway backs
// it with the Store.
type Directory interface {
	// Conversations returns the ids of the conversations userID is an
	// active member of.
	Conversations(ctx context.Context, userID string) ([]string, error)
	// Room returns a conversation's newest seq and member count, and its
	// members when there are at most max of them (nil otherwise), so a
	// big conversation's member list need not be decoded. CodeNotFound
	// for an unknown conversation.
	Room(ctx context.Context, conversationID string, max int) (Room, error)
	// IsMember reports whether userID is an active member.
	IsMember(ctx context.Context, conversationID, userID string) (bool, error)
	// Members returns up to limit active members whose ids sort after
	// after, in user-id order.
	Members(ctx context.Context, conversationID, after string, limit int) ([]string, error)
}

// Room is what the index keeps of a conversation.
type Room struct {
	// Seq is the conversation's newest event seq: membership events at or
	// below it are already reflected.
	Seq int64
	// Count is the number of active members.
	Count int
	// Members are the active members, only while Count <= the max asked.
	Members []string
}

// Deliverer hands an ephemeral event to this gateway's connections of
// users (the fan-out hub). It must not block.
type Deliverer interface {
	Ephemeral(users []string, e chat.Ephemeral)
}

// Tracker is the presence of one gateway. Connected, Disconnected and
// MembershipChanged only queue, so the hub may call them under its lock.
type Tracker struct {
	cfg    Config
	id     string
	log    chat.Log
	dir    Directory
	out    Deliverer
	logger *slog.Logger

	mu      sync.Mutex
	leaving bool                       // Leave was called: connections no longer count
	local   map[string]*localState     // users connected here
	where   map[string]map[string]bool // user -> gateways it is online on
	seen    map[string]time.Time       // gateway -> last record read from it
	changed map[string]struct{}        // users whose state changed, for the announcer

	// pub is the publish queue, in order; pubWake signals the publisher.
	pubMu   sync.Mutex
	pub     []record
	pubWake chan struct{}

	// ops are index updates, in order, for the announcer; kick wakes it
	// for ops and changes.
	opsMu sync.Mutex
	ops   []op
	kick  chan struct{}

	idx *index

	wmu      sync.Mutex
	watchers map[string]map[Watcher]struct{} // watched user -> watchers
	watching map[Watcher][]string            // watcher -> watched users
}

type localState struct {
	conns  int
	online bool
	timer  *time.Timer
}

// New returns the presence of gateway id. It does no I/O; Run does.
func New(cfg Config, id string, log chat.Log, dir Directory, out Deliverer, logger *slog.Logger) *Tracker {
	cfg = cfg.withDefaults()
	return &Tracker{
		cfg:      cfg,
		id:       id,
		log:      log,
		dir:      dir,
		out:      out,
		logger:   logger.With("component", "presence"),
		local:    map[string]*localState{},
		where:    map[string]map[string]bool{},
		seen:     map[string]time.Time{},
		changed:  map[string]struct{}{},
		pubWake:  make(chan struct{}, 1),
		kick:     make(chan struct{}, 1),
		idx:      newIndex(cfg.MaxMembers),
		watchers: map[string]map[Watcher]struct{}{},
		watching: map[Watcher][]string{},
	}
}

// Run reads the ephemeral topic, publishes, beats and announces until ctx
// is done; it owns every goroutine of the tracker.
func (t *Tracker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, f := range []func(context.Context){t.publisher, t.announcer, t.heartbeat} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	readEphemeral(ctx, t.log, t.logger, func() {
		// Ask the others for what they know, and tell them ours.
		t.publish(record{Kind: "hello"})
		t.publishSnapshot()
	}, t.apply)
	return nil
}

// Connected counts a new local connection of user. It only queues.
func (t *Tracker) Connected(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leaving {
		return // a connection that slipped in while the gateway drains
	}
	st := t.local[user]
	if st == nil {
		st = &localState{}
		t.local[user] = st
		t.queueOp(op{kind: opLoad, user: user})
	}
	st.conns++
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if !st.online {
		st.online = true
		t.publish(record{Kind: "online", User: user})
	}
}

// Disconnected counts a closed local connection of user; the user goes
// offline Grace after its last one, unless it reconnects meanwhile.
func (t *Tracker) Disconnected(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.local[user]
	if st == nil || st.conns == 0 {
		return
	}
	st.conns--
	if st.conns > 0 {
		return
	}
	st.timer = time.AfterFunc(t.cfg.Grace, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if st.conns > 0 || !st.online || t.local[user] != st {
			return
		}
		delete(t.local, user)
		t.publish(record{Kind: "offline", User: user})
		t.queueOp(op{kind: opUnload, user: user})
	})
}

// BeginLeave is a draining gateway's goodbye: every user connected here
// goes offline on this gateway at once (their grace timers stopped), in
// one record that the other gateways apply as soon as they read it,
// instead of after the grace or after this gateway's heartbeats are
// missed. A user connected elsewhere too (a client that already resumed
// on another gateway) stays online. Connections counted afterwards are
// ignored. It only queues; Leave waits for the record to be written.
func (t *Tracker) BeginLeave() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.leaving {
		return
	}
	t.leaving = true
	for user, st := range t.local {
		if st.timer != nil {
			st.timer.Stop()
		}
		delete(t.local, user)
		t.queueOp(op{kind: opUnload, user: user})
	}
	// An empty list replaces all the others knew to be online here.
	t.publishSnapshotLocked()
}

// Leave is BeginLeave, then waits until everything queued for the log
// (the goodbye included) is written, or ctx is done (then the others fall
// back to the heartbeat timeout). Run must still be running.
func (t *Tracker) Leave(ctx context.Context) error {
	t.BeginLeave()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.pubMu.Lock()
		flushed := len(t.pub) == 0
		t.pubMu.Unlock()
		if flushed {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// MembershipChanged takes a member.added or member.removed event the hub
// saw go by, to keep the contact index current. It only queues.
func (t *Tracker) MembershipChanged(ev chat.Event) {
	if ev.Type != chat.EventMemberAdded && ev.Type != chat.EventMemberRemoved {
		return
	}
	t.queueOp(op{kind: opMember, ev: ev})
}

// Broadcast sends an ephemeral event (typing) to the connections of users
// on every gateway.
func (t *Tracker) Broadcast(users []string, e chat.Ephemeral) {
	t.publish(record{Kind: "event", Users: users, Event: &e})
}

// Online reports whether user has a connection open on any gateway (or
// had one within the grace).
func (t *Tracker) Online(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.where[user]) > 0
}

// publishSnapshot queues the list of users online on this gateway. It is
// made and queued under t.mu, so no online or offline record of this
// gateway can fall between the two and be overtaken by a stale list.
func (t *Tracker) publishSnapshot() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publishSnapshotLocked()
}

func (t *Tracker) publishSnapshotLocked() {
	users := make([]string, 0, len(t.local))
	for u, st := range t.local {
		if st.online {
			users = append(users, u)
		}
	}
	// Big gateways send their list in parts; the first part replaces
	// what others knew of this gateway, the rest add to it.
	const part = 2000
	for i := 0; i == 0 || i < len(users); i += part {
		kind := "snapshot"
		if i > 0 {
			kind = "snapshot+"
		}
		t.publish(record{Kind: kind, Users: users[i:min(i+part, len(users))]})
	}
}

// publish queues rec for the ephemeral topic; it never blocks.
func (t *Tracker) publish(rec record) {
	rec.Gateway = t.id
	t.pubMu.Lock()
	if len(t.pub) >= maxQueued && (rec.Kind == "event" || rec.Kind == "alive") {
		// The log has been down a while: typing and heartbeats are stale
		// by the time it is back; presence changes are kept.
		t.pubMu.Unlock()
		return
	}
	t.pub = append(t.pub, rec)
	t.pubMu.Unlock()
	select {
	case t.pubWake <- struct{}{}:
	default:
	}
}

// publisher appends queued records in order, retrying while the log is
// down (presence then lags; it never reorders).
func (t *Tracker) publisher(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.pubWake:
		}
		for {
			t.pubMu.Lock()
			batch := t.pub[:min(len(t.pub), publishChunk)]
			t.pubMu.Unlock()
			if len(batch) == 0 {
				break
			}
			recs := make([]*chat.Record, 0, len(batch))
			for _, r := range batch {
				b, err := json.Marshal(r)
				if err != nil {
					continue
				}
				recs = append(recs, &chat.Record{Key: t.id, Value: b})
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := t.log.Append(actx, chat.TopicEphemeral, recs...)
			cancel()
			if err != nil && (chat.ErrorCode(err) == chat.CodeInvalid || chat.ErrorCode(err) == chat.CodeTooLarge) {
				// Never deliverable: drop it rather than stall behind it.
				t.logger.Warn("dropping records the log refuses", "err", err, "records", len(recs))
				err = nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				t.logger.Warn("publishing", "err", err, "records", len(recs))
				if !retry.Sleep(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			t.pubMu.Lock()
			t.pub = t.pub[len(batch):]
			if len(t.pub) == 0 {
				t.pub = nil
			}
			t.pubMu.Unlock()
		}
	}
}

// heartbeat says this gateway is alive and forgets gateways that are not.
func (t *Tracker) heartbeat(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Heartbeat)
	goneAfter := goneBeats * t.cfg.Heartbeat
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.publish(record{Kind: "alive"})
		t.mu.Lock()
		now := time.Now()
		if at, ok := t.seen[t.id]; !ok || now.Sub(at) > goneAfter/2 {
			// Our own heartbeats are not coming back: it is our reading
			// (or writing) that lags, not the others that died.
			t.mu.Unlock()
			continue
		}
		for gw, at := range t.seen {
			if gw != t.id && now.Sub(at) > goneAfter {
				delete(t.seen, gw)
				t.logger.Info("a gateway went silent; its users are offline unless connected elsewhere", "gateway", gw)
				for user, gws := range t.where {
					if gws[gw] {
						t.removeLocked(user, gw)
					}
				}
			}
		}
		t.mu.Unlock()
	}
}

// apply folds records of the ephemeral topic into the map of who is
// online where.
func (t *Tracker) apply(_ int, recs []chat.Record) {
	for i := range recs {
		r, ok := decodeRecord(recs[i])
		if !ok {
			continue
		}
		if r.Kind == "event" {
			if r.Event != nil {
				t.out.Ephemeral(r.Users, *r.Event)
			}
			continue
		}
		t.mu.Lock()
		if _, known := t.seen[r.Gateway]; !known && r.Gateway != t.id && r.Kind != "snapshot" && r.Kind != "hello" {
			// A gateway we do not know (or took for dead, say while our
			// reader lagged) is alive: ask everyone for their lists again.
			t.publish(record{Kind: "hello"})
		}
		if r.Kind != "hello" {
			// A hello may come from a node that is no gateway (the push
			// role's View) and never beats: it must not be taken for a
			// gateway that later "went silent". A gateway's hello is
			// followed by its snapshot at once.
			t.seen[r.Gateway] = time.Now()
		}
		applyLists(t.where, r, t.addLocked, t.removeLocked)
		if r.Kind == "hello" && r.Gateway != t.id {
			t.publishSnapshotLocked()
		}
		t.mu.Unlock()
	}
}

func (t *Tracker) addLocked(user, gw string) {
	gws := t.where[user]
	if gws == nil {
		gws = map[string]bool{}
		t.where[user] = gws
	}
	if gws[gw] {
		return
	}
	gws[gw] = true
	if len(gws) == 1 {
		t.changedLocked(user)
	}
}

func (t *Tracker) removeLocked(user, gw string) {
	gws := t.where[user]
	if !gws[gw] {
		return
	}
	delete(gws, gw)
	if len(gws) == 0 {
		delete(t.where, user)
		t.changedLocked(user)
	}
}

// changedLocked marks user for the announcer. Marks of one user merge, so
// a burst of changes costs one look at the user's latest state.
func (t *Tracker) changedLocked(user string) {
	t.changed[user] = struct{}{}
	t.wakeAnnouncer()
}

func (t *Tracker) wakeAnnouncer() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// takeChanged returns and clears the users whose state changed.
func (t *Tracker) takeChanged() map[string]struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.changed) == 0 {
		return nil
	}
	c := t.changed
	t.changed = map[string]struct{}{}
	return c
}
