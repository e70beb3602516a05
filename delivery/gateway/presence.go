package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// presenceGrace is how long a user stays online after its last connection
// closes, so a quick reconnect does not flap.
const presenceGrace = 10 * time.Second

// Gateways tell each other they are alive every aliveEvery; one not heard
// of for goneAfter is taken for dead and its users for offline (unless
// they are connected elsewhere).
const (
	aliveEvery = 3 * time.Second
	goneAfter  = 12 * time.Second
)

// publishChunk bounds the records of one Append (all of a gateway's
// records share a key, so they go in one produce request); maxQueued is
// how many may wait while the log is down before typing and heartbeats
// are dropped.
const (
	publishChunk = 256
	maxQueued    = 10000
)

// presenceRecord is one record of the ephemeral topic, keyed by the
// gateway that wrote it, so one gateway's records stay in order.
type presenceRecord struct {
	// Kind is online or offline (User on Gateway), alive (a heartbeat),
	// hello (a gateway that just started asks for snapshots), snapshot
	// (every user online on Gateway), or event (Event for the local
	// connections of Users, on every gateway).
	Kind    string          `json:"kind"`
	Gateway string          `json:"gw"`
	User    string          `json:"user,omitempty"`
	Users   []string        `json:"users,omitempty"`
	Event   *chat.Ephemeral `json:"event,omitempty"`
}

// presence is global: a user is online while at least one of its
// connections on any gateway is open, and offline presenceGrace after its
// last one closes. Each gateway counts its own connections and publishes
// its users' online and offline on the ephemeral topic; every gateway
// reads that topic and keeps the same map of who is online where, so
// every gateway answers GET …/presence alike and announces each change to
// its own connections. Typing goes the same way, so it reaches members on
// every gateway.
type presence struct {
	g     *Gateway
	grace time.Duration

	mu    sync.Mutex
	local map[string]*presenceState  // users connected here
	where map[string]map[string]bool // user -> gateways it is online on
	seen  map[string]time.Time       // gateway -> last record read from it

	// out is the publish queue, in order; wake signals the publisher.
	outMu sync.Mutex
	out   []presenceRecord
	wake  chan struct{}

	// announcements are made in order by one goroutine, as each needs
	// the store.
	announce chan announcement
}

type presenceState struct {
	conns  int
	online bool
	timer  *time.Timer
}

type announcement struct {
	user   string
	online bool
}

func newPresence(g *Gateway, grace time.Duration) *presence {
	return &presence{
		g:        g,
		grace:    grace,
		local:    map[string]*presenceState{},
		where:    map[string]map[string]bool{},
		seen:     map[string]time.Time{},
		wake:     make(chan struct{}, 1),
		announce: make(chan announcement, 4096),
	}
}

// run reads the ephemeral topic, publishes, beats and sweeps until ctx is
// done.
func (p *presence) run(ctx context.Context) {
	go p.publisher(ctx)
	go p.announcer(ctx)
	go p.heartbeat(ctx)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.g.hub.log.Subscribe(ctx, chat.TopicEphemeral, func() {
			// Ask the others for what they know, and tell them ours.
			p.publish(presenceRecord{Kind: "hello"})
			p.publishSnapshot()
		}, p.apply)
		if ctx.Err() != nil {
			return
		}
		p.g.logger.Warn("presence: reading the ephemeral topic", "err", err)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connected counts a new local connection of user. It is called under the
// hub's lock, so it only queues.
func (p *presence) connected(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.local[user]
	if st == nil {
		st = &presenceState{}
		p.local[user] = st
	}
	st.conns++
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if !st.online {
		st.online = true
		p.publish(presenceRecord{Kind: "online", User: user})
	}
}

func (p *presence) disconnected(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.local[user]
	if st == nil || st.conns == 0 {
		return
	}
	st.conns--
	if st.conns > 0 {
		return
	}
	st.timer = time.AfterFunc(p.grace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if st.conns > 0 || !st.online || p.local[user] != st {
			return
		}
		delete(p.local, user)
		p.publish(presenceRecord{Kind: "offline", User: user})
	})
}

// publishSnapshot queues the list of users online on this gateway. It is
// made and queued under p.mu, so no online or offline record of this
// gateway can fall between the two and be overtaken by a stale list.
func (p *presence) publishSnapshot() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publishSnapshotLocked()
}

func (p *presence) publishSnapshotLocked() {
	users := make([]string, 0, len(p.local))
	for u, st := range p.local {
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
		p.publish(presenceRecord{Kind: kind, Users: users[i:min(i+part, len(users))]})
	}
}

// broadcast sends an ephemeral event to the connections of users on every
// gateway.
func (p *presence) broadcast(users []string, e chat.Ephemeral) {
	p.publish(presenceRecord{Kind: "event", Users: users, Event: &e})
}

// publish queues rec for the ephemeral topic; it never blocks.
func (p *presence) publish(rec presenceRecord) {
	rec.Gateway = p.g.hub.id
	p.outMu.Lock()
	if len(p.out) >= maxQueued && (rec.Kind == "event" || rec.Kind == "alive") {
		// The log has been down a while: typing and heartbeats are stale
		// by the time it is back; presence changes are kept.
		p.outMu.Unlock()
		return
	}
	p.out = append(p.out, rec)
	p.outMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// publisher appends queued records in order, retrying while the log is
// down (presence then lags; it never reorders).
func (p *presence) publisher(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for {
			p.outMu.Lock()
			batch := p.out[:min(len(p.out), publishChunk)]
			p.outMu.Unlock()
			if len(batch) == 0 {
				break
			}
			recs := make([]*chat.Record, 0, len(batch))
			for _, r := range batch {
				b, err := json.Marshal(r)
				if err != nil {
					continue
				}
				recs = append(recs, &chat.Record{Key: p.g.hub.id, Value: b})
			}
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := p.g.hub.log.Append(actx, chat.TopicEphemeral, recs...)
			cancel()
			if err != nil && (chat.ErrorCode(err) == chat.CodeInvalid || chat.ErrorCode(err) == chat.CodeTooLarge) {
				// Never deliverable: drop it rather than stall behind it.
				p.g.logger.Warn("presence: dropping records the log refuses", "err", err, "records", len(recs))
				err = nil
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				p.g.logger.Warn("presence: publishing", "err", err, "records", len(recs))
				if !sleepCtx(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			p.outMu.Lock()
			p.out = p.out[len(batch):]
			if len(p.out) == 0 {
				p.out = nil
			}
			p.outMu.Unlock()
		}
	}
}

// heartbeat says this gateway is alive and forgets gateways that are not.
func (p *presence) heartbeat(ctx context.Context) {
	tick := time.NewTicker(aliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p.publish(presenceRecord{Kind: "alive"})
		p.mu.Lock()
		now := time.Now()
		if at, ok := p.seen[p.g.hub.id]; !ok || now.Sub(at) > goneAfter/2 {
			// Our own heartbeats are not coming back: it is our reading
			// (or writing) that lags, not the others that died.
			p.mu.Unlock()
			continue
		}
		for gw, at := range p.seen {
			if gw != p.g.hub.id && now.Sub(at) > goneAfter {
				delete(p.seen, gw)
				p.g.logger.Info("presence: a gateway went silent; its users are offline unless connected elsewhere", "gateway", gw)
				for user, gws := range p.where {
					if gws[gw] {
						p.removeLocked(user, gw)
					}
				}
			}
		}
		p.mu.Unlock()
	}
}

// apply folds records of the ephemeral topic into the map of who is
// online where.
func (p *presence) apply(_ int, recs []chat.Record) {
	for i := range recs {
		var r presenceRecord
		if err := json.Unmarshal(recs[i].Value, &r); err != nil || r.Gateway == "" {
			continue
		}
		if r.Kind == "event" {
			if r.Event != nil {
				p.g.hub.Ephemeral(r.Users, *r.Event)
			}
			continue
		}
		p.mu.Lock()
		if _, known := p.seen[r.Gateway]; !known && r.Gateway != p.g.hub.id && r.Kind != "snapshot" && r.Kind != "hello" {
			// A gateway we do not know (or took for dead, say while our
			// reader lagged) is alive: ask everyone for their lists again.
			p.publish(presenceRecord{Kind: "hello"})
		}
		p.seen[r.Gateway] = time.Now()
		switch r.Kind {
		case "online":
			p.addLocked(r.User, r.Gateway)
		case "offline":
			p.removeLocked(r.User, r.Gateway)
		case "snapshot":
			keep := map[string]bool{}
			for _, u := range r.Users {
				keep[u] = true
				p.addLocked(u, r.Gateway)
			}
			for user, gws := range p.where {
				if gws[r.Gateway] && !keep[user] {
					p.removeLocked(user, r.Gateway)
				}
			}
		case "snapshot+":
			for _, u := range r.Users {
				p.addLocked(u, r.Gateway)
			}
		case "hello":
			if r.Gateway != p.g.hub.id {
				p.publishSnapshotLocked()
			}
		}
		p.mu.Unlock()
	}
}

func (p *presence) addLocked(user, gw string) {
	gws := p.where[user]
	if gws == nil {
		gws = map[string]bool{}
		p.where[user] = gws
	}
	if gws[gw] {
		return
	}
	gws[gw] = true
	if len(gws) == 1 {
		p.queueAnnouncement(user, true)
	}
}

func (p *presence) removeLocked(user, gw string) {
	gws := p.where[user]
	if !gws[gw] {
		return
	}
	delete(gws, gw)
	if len(gws) == 0 {
		delete(p.where, user)
		p.queueAnnouncement(user, false)
	}
}

func (p *presence) queueAnnouncement(user string, online bool) {
	select {
	case p.announce <- announcement{user, online}:
	default:
		p.g.logger.Warn("presence: announcements overflow; dropping one", "user", user)
	}
}

func (p *presence) isOnline(user string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.where[user]) > 0
}

// announcer tells this gateway's connections of every user who shares a
// conversation with a user whose presence changed.
func (p *presence) announcer(ctx context.Context) {
	for {
		var a announcement
		select {
		case <-ctx.Done():
			return
		case a = <-p.announce:
		}
		if !p.g.hub.anyLocal() {
			continue
		}
		to, err := p.contacts(ctx, a.user)
		if err != nil {
			p.g.logger.Warn("presence: reading memberships", "err", err)
			continue
		}
		on := a.online
		p.g.hub.Ephemeral(to, chat.Ephemeral{Type: chat.EventPresence, UserID: a.user, Online: &on})
	}
}

// contacts are the user and everyone who shares a conversation with it.
func (p *presence) contacts(ctx context.Context, user string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ms, err := p.g.store.Memberships(ctx, user)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{user: true}
	to := []string{user}
	for _, m := range ms {
		if !m.Active {
			continue
		}
		c, err := p.g.store.Conversation(ctx, m.ConversationID)
		if err != nil {
			continue
		}
		members, err := p.g.conversationMembers(ctx, &c)
		if err != nil {
			continue
		}
		for _, u := range members {
			if !seen[u] {
				seen[u] = true
				to = append(to, u)
			}
		}
	}
	return to, nil
}

func (g *Gateway) getPresence(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	c, err := g.member(r.Context(), r.PathValue("cid"), u.ID)
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	members, err := g.conversationMembers(r.Context(), &c)
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	online := []string{}
	for _, m := range members {
		if g.presence.isOnline(m) {
			online = append(online, m)
		}
	}
	sort.Strings(online)
	writeJSON(w, http.StatusOK, map[string]any{"online": online})
}
