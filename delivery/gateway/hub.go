package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/parleychat/parley/chat"
)

// item is one thing queued for a connection. Durable events carry their
// shared encoding without the closing brace (the connection appends its own
// cursor); everything else is a complete JSON object.
type item struct {
	data      []byte
	partition int
	position  int64
	durable   bool
	typ       string
}

// Hub is the fan-out of one gateway: it reads every events partition and
// hands each event, encoded once, to the local connections of its
// recipients. It also routes command results to the waiting callers.
type Hub struct {
	id     string
	log    chat.Log
	store  chat.Store
	logger *slog.Logger

	mu    sync.Mutex
	front []int64 // per partition: highest position dispatched
	users map[string]map[*Conn]struct{}
	ready chan struct{}

	pmu     sync.Mutex
	pending map[string]func(chat.Result)

	onDispatch   func(n int) // metrics hook
	onRegister   func(user string)
	onRemoved    func(cid, uid string) // a member.removed event went by
	onMembership func(chat.Event)      // a member.added or member.removed event went by
	onUnregister func(user string)
}

// NewHub returns a hub for gateway id.
func NewHub(id string, log chat.Log, store chat.Store, logger *slog.Logger) *Hub {
	return &Hub{
		id:      id,
		log:     log,
		store:   store,
		logger:  logger.With("component", "fanout"),
		front:   make([]int64, log.Partitions()),
		users:   map[string]map[*Conn]struct{}{},
		ready:   make(chan struct{}),
		pending: map[string]func(chat.Result){},
	}
}

// Ready is closed once the hub reads live.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Run reads the events log until ctx is done. The frontier starts at the
// store's committed heads, read after the subscription is fixed: anything
// committed before is at or below a head (replayed from the store by
// connections), anything after arrives live.
func (h *Hub) Run(ctx context.Context) error {
	var once sync.Once
	ready := func() {
		heads, err := h.store.Heads(ctx, len(h.front))
		if err != nil {
			h.logger.Error("reading partition heads", "err", err)
		}
		h.mu.Lock()
		for p, v := range heads {
			h.front[p] = max(h.front[p], v)
		}
		h.mu.Unlock()
		once.Do(func() { close(h.ready) })
	}
	return h.log.Subscribe(ctx, chat.TopicEvents, ready, h.dispatch)
}

// wireEvent encodes ev for clients, once, without its closing brace.
func wireEvent(ev chat.Event) []byte {
	ev.Partition, ev.Position = 0, 0
	if ev.Message != nil {
		m := *ev.Message
		m.Normalize()
		ev.Message = &m
	}
	b, err := json.Marshal(ev)
	if err != nil || len(b) < 2 {
		return nil
	}
	return b[:len(b)-1]
}

func (h *Hub) dispatch(partition int, recs []chat.Record) {
	for i := range recs {
		var s chat.Sequenced
		if err := json.Unmarshal(recs[i].Value, &s); err != nil {
			h.logger.Warn("dropping undecodable event record", "partition", partition, "offset", recs[i].Offset)
			continue
		}
		// A removal is forgotten before the remover hears it is done, so
		// the removed member's next send here reads the store again.
		for _, ev := range s.Events {
			if ev.Type == chat.EventMemberRemoved && h.onRemoved != nil {
				h.onRemoved(ev.ConversationID, ev.UserID)
			}
			if (ev.Type == chat.EventMemberAdded || ev.Type == chat.EventMemberRemoved) && h.onMembership != nil {
				h.onMembership(ev)
			}
		}
		if s.Gateway == h.id {
			h.resolve(s.CommandID, s.Result)
		}
		if len(s.Events) == 0 {
			continue
		}
		items := make([]item, 0, len(s.Events))
		for _, ev := range s.Events {
			items = append(items, item{data: wireEvent(ev), partition: ev.Partition, position: ev.Position, durable: true, typ: ev.Type})
		}
		n := 0
		h.mu.Lock()
		for _, it := range items {
			if it.position <= h.front[it.partition] {
				continue // a replayed duplicate: already dispatched or in the store
			}
			h.front[it.partition] = it.position
			for _, u := range s.Recipients {
				for c := range h.users[u] {
					c.enqueue(it)
					n++
				}
			}
		}
		h.mu.Unlock()
		if h.onDispatch != nil {
			h.onDispatch(n)
		}
	}
}

// Ephemeral sends a typing or presence event to the local connections of users.
func (h *Hub) Ephemeral(users []string, e chat.Ephemeral) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	it := item{data: b, typ: e.Type}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range users {
		for c := range h.users[u] {
			c.enqueue(it)
		}
	}
}

// register adds c and returns a snapshot of the frontier, atomically with
// dispatch: events at or below the snapshot are in the store, events above
// it will be queued on c.
func (h *Hub) register(c *Conn, maxPerUser int) ([]int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.users[c.user]
	if maxPerUser > 0 && len(set) >= maxPerUser {
		return nil, false
	}
	if set == nil {
		set = map[*Conn]struct{}{}
		h.users[c.user] = set
	}
	set[c] = struct{}{}
	if h.onRegister != nil {
		h.onRegister(c.user)
	}
	return append([]int64(nil), h.front...), true
}

func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.users[c.user]; set != nil {
		if _, ok := set[c]; !ok {
			return
		}
		delete(set, c)
		if len(set) == 0 {
			delete(h.users, c.user)
		}
		if h.onUnregister != nil {
			h.onUnregister(c.user)
		}
	}
}

// anyLocal reports whether any connection is open on this gateway.
func (h *Hub) anyLocal() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users) > 0
}

// Connections returns the number of local connections of user.
func (h *Hub) Connections(user string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users[user])
}

// each calls f for every local connection (for shutdown).
func (h *Hub) each(f func(*Conn)) {
	h.mu.Lock()
	conns := make([]*Conn, 0)
	for _, set := range h.users {
		for c := range set {
			conns = append(conns, c)
		}
	}
	h.mu.Unlock()
	for _, c := range conns {
		f(c)
	}
}

// expect registers f to be called once with a command's result.
func (h *Hub) expect(id string, f func(chat.Result)) {
	h.pmu.Lock()
	h.pending[id] = f
	h.pmu.Unlock()
}

func (h *Hub) forget(id string) {
	h.pmu.Lock()
	delete(h.pending, id)
	h.pmu.Unlock()
}

func (h *Hub) resolve(id string, r chat.Result) {
	h.pmu.Lock()
	f := h.pending[id]
	delete(h.pending, id)
	h.pmu.Unlock()
	if f != nil {
		f(r)
	}
}
