package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// Config is what a hub is wired to.
type Config struct {
	// ID is the gateway's id: records naming it carry results of commands
	// this gateway waits for.
	ID         string
	Log        chat.Log
	Store      chat.Store
	Logger     *slog.Logger
	Deployment uint32
	// Registerer, when set, gets the hub's metric:
	// parley_undecodable_records_total{consumer="fanout"}, the event
	// records it dropped because they did not decode.
	Registerer prometheus.Registerer
}

// Hub is the fan-out of one gateway: it reads every events partition,
// hands each command result to the caller waiting for it, and queues each
// event, encoded once, on the local connections of its recipients.
//
// Results never wait behind fan-out: the reader resolves every result of
// the records it read before it hands their events to the fan-out
// goroutine, which queues them (one lock for a whole read, one wake per
// connection).
type Hub struct {
	id          string
	log         chat.Log
	store       chat.Store
	logger      *slog.Logger
	deployment  uint32
	undecodable prometheus.Counter

	mu      sync.Mutex
	front   []int64 // per partition: highest position dispatched
	users   map[string][]*Conn
	gen     uint64
	touched []kick
	ready   chan struct{}
	why     string // why the hub is not ready; "" once it is

	recipients recipientCache // the reader's

	// Hooks, set before Run.

	// OnResult gets each result of a command sent through this gateway,
	// from the reader, before any fan-out of the records read with it.
	OnResult func(commandID string, r chat.Result)
	// OnRemoved is told of every member.removed event, before its result.
	OnRemoved func(cid, uid string)
	// OnMembership is told of every member.added and member.removed
	// event, in log order, before its result (presence keeps its index
	// of who shares a conversation with whom from them).
	OnMembership func(chat.Event)
	// OnDispatch is told how many deliveries one read queued.
	OnDispatch func(n int)
	// OnRegister and OnUnregister are told of each connection of user
	// that opens or closes here (under the hub's lock: they must not call
	// back into the hub).
	OnRegister   func(user string)
	OnUnregister func(user string)
}

// NewHub returns a hub; Run starts it.
func NewHub(cfg Config) *Hub {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	undecodable := prometheus.NewCounter(prometheus.CounterOpts{
		Name:        "parley_undecodable_records_total",
		Help:        "Event records a consumer skipped because they did not decode.",
		ConstLabels: prometheus.Labels{"consumer": "fanout"},
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(undecodable)
	}
	return &Hub{
		undecodable: undecodable,
		id:          cfg.ID,
		log:         cfg.Log,
		store:       cfg.Store,
		logger:      logger.With("component", "fanout"),
		deployment:  cfg.Deployment,
		front:       make([]int64, cfg.Log.Partitions()),
		users:       map[string][]*Conn{},
		ready:       make(chan struct{}),
		why:         "not reading the events log yet",
	}
}

// ID is the gateway id the hub reads results for.
func (h *Hub) ID() string { return h.id }

// Ready is closed once the hub reads live, from a frontier at the
// store's committed heads. It is never closed on a frontier it could not
// read: a connection resuming from a guessed frontier would miss events.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// NotReady says why the hub is not ready yet (for /readyz), or "" once it
// is.
func (h *Hub) NotReady() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.why
}

func (h *Hub) setWhy(why string) {
	h.mu.Lock()
	h.why = why
	h.mu.Unlock()
}

// Backoff between reads of the partition heads at start.
const (
	headsBackoffMin = 100 * time.Millisecond
	headsBackoffMax = 5 * time.Second
)

// readHeads reads the store's committed heads, retrying with backoff
// until it can or ctx is done (then it returns nil, false).
func (h *Hub) readHeads(ctx context.Context) ([]int64, bool) {
	wait := headsBackoffMin
	for {
		heads, err := h.store.Heads(ctx, len(h.front))
		if err == nil {
			return heads, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		h.logger.Error("reading partition heads; not ready until it can", "err", err, "retry_in", wait)
		h.setWhy("cannot read the partition heads: " + err.Error())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
		wait = min(2*wait, headsBackoffMax)
	}
}

// readBatch is the events of one read, decoded, on their way to fan-out.
type readBatch struct {
	records  []chat.Sequenced
	received time.Time
}

// fanOutBacklog bounds the reads waiting for fan-out; the reader (and so
// the results behind it) waits only once this many are queued.
const fanOutBacklog = 1024

// Run reads the events log until ctx is done. The frontier starts at the
// store's committed heads, read after the subscription is fixed: anything
// committed before is at or below a head (replayed from the store by
// connections), anything after arrives live.
func (h *Hub) Run(ctx context.Context) error {
	var once sync.Once
	ready := func() {
		// Blocking here holds the subscription at its start offsets:
		// nothing read is lost while the heads are retried.
		heads, ok := h.readHeads(ctx)
		if !ok {
			return // ctx done: never ready
		}
		h.mu.Lock()
		for p, v := range heads {
			if p < len(h.front) {
				h.front[p] = max(h.front[p], v)
			}
		}
		h.why = ""
		h.mu.Unlock()
		once.Do(func() { close(h.ready) })
	}
	backlog := make(chan readBatch, fanOutBacklog)
	fanned := make(chan struct{})
	go func() {
		defer close(fanned)
		for b := range backlog {
			h.fanOut(b)
		}
	}()
	err := h.log.Subscribe(ctx, chat.TopicEvents, ready, func(partition int, recs []chat.Record) {
		if b, ok := h.read(partition, recs); ok {
			select {
			case backlog <- b:
			case <-ctx.Done():
			}
		}
	})
	close(backlog)
	<-fanned
	return err
}

// read decodes one read's records and resolves their results; it returns
// the records with events, for fan-out.
func (h *Hub) read(partition int, recs []chat.Record) (readBatch, bool) {
	b := readBatch{received: time.Now()}
	for i := range recs {
		w, err := record.DecodeLazySequenced(recs[i].Value)
		if err != nil {
			h.undecodable.Inc()
			h.logger.Warn("dropping undecodable event record", "partition", partition, "offset", recs[i].Offset, "err", err)
			continue
		}
		s := w.Sequenced
		if len(s.Events) > 0 {
			if s.Recipients, err = h.recipients.decode(s.Events[0].ConversationID, w.Recipients); err != nil {
				h.undecodable.Inc()
				h.logger.Warn("dropping an event record with undecodable recipients", "partition", partition, "offset", recs[i].Offset, "err", err)
				continue
			}
		}
		// A removal is forgotten before the remover hears it is done, so
		// the removed member's next send here reads the store again.
		if h.OnRemoved != nil || h.OnMembership != nil {
			for _, ev := range s.Events {
				if ev.Type == chat.EventMemberRemoved && h.OnRemoved != nil {
					h.OnRemoved(ev.ConversationID, ev.UserID)
				}
				if (ev.Type == chat.EventMemberAdded || ev.Type == chat.EventMemberRemoved) && h.OnMembership != nil {
					h.OnMembership(ev)
				}
			}
		}
		if s.Gateway == h.id && h.OnResult != nil {
			traceResult(s.Trace, b.received)
			h.OnResult(s.CommandID, s.Result)
		}
		if len(s.Events) > 0 {
			b.records = append(b.records, s)
		}
	}
	return b, len(b.records) > 0
}

// fanOut queues the events of one read on every local connection of their
// recipients, under one lock, and wakes each connection once.
func (h *Hub) fanOut(b readBatch) {
	type record struct {
		items      []*Item
		recipients []string
	}
	recs := make([]record, 0, len(b.records))
	for _, s := range b.records {
		r := record{recipients: s.Recipients, items: make([]*Item, 0, len(s.Events))}
		for _, ev := range s.Events {
			it := EventItem(ev, b.received)
			it.Trace = s.Trace
			if ev.Partition < 0 || ev.Partition >= len(h.front) {
				h.logger.Warn("dropping an event that cannot be delivered", "type", ev.Type, "partition", ev.Partition)
				continue
			}
			r.items = append(r.items, it)
		}
		recs = append(recs, r)
	}
	n := 0
	h.mu.Lock()
	h.gen++
	touched := h.touched[:0]
	for _, r := range recs {
		live := r.items[:0]
		for _, it := range r.items {
			if it.Position <= h.front[it.Partition] {
				continue // a replayed duplicate: already dispatched or in the store
			}
			h.front[it.Partition] = it.Position
			live = append(live, it)
		}
		if len(live) == 0 {
			continue
		}
		for _, u := range r.recipients {
			for _, c := range h.users[u] {
				w := wakeNone
				for _, it := range live {
					w = max(w, c.push(it))
				}
				n += len(live)
				if w == wakeStart || (w == wakeNotify && c.mark != h.gen) {
					c.mark = h.gen
					touched = append(touched, kick{c, w})
				}
			}
		}
	}
	h.mu.Unlock()
	for _, k := range touched {
		k.c.kick(k.w)
	}
	clear(touched)
	h.mu.Lock()
	if cap(touched) <= 1<<16 {
		h.touched = touched[:0]
	} else {
		h.touched = nil
	}
	h.mu.Unlock()
	if h.OnDispatch != nil && n > 0 {
		h.OnDispatch(n)
	}
}

// kick is a connection to wake once the hub's lock is released.
type kick struct {
	c *Conn
	w wakeup
}

// Ephemeral sends a typing or presence event to the local connections of users.
func (h *Hub) Ephemeral(users []string, e chat.Ephemeral) {
	it := EphemeralItem(e)
	if it == nil {
		return
	}
	var touched []kick
	h.mu.Lock()
	for _, u := range users {
		for _, c := range h.users[u] {
			if w := c.push(it); w != wakeNone {
				touched = append(touched, kick{c, w})
			}
		}
	}
	h.mu.Unlock()
	for _, k := range touched {
		k.c.kick(k.w)
	}
}

// Register adds c and returns a snapshot of the frontier, atomically with
// fan-out: events at or below the snapshot are in the store, events above
// it will be queued on c. It refuses (false) a user's connection beyond
// maxPerUser (0: no limit).
func (h *Hub) Register(c *Conn, maxPerUser int) ([]int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.users[c.user]
	if maxPerUser > 0 && len(set) >= maxPerUser {
		return nil, false
	}
	h.users[c.user] = append(set, c)
	if h.OnRegister != nil {
		h.OnRegister(c.user)
	}
	return slices.Clone(h.front), true
}

// Unregister removes c; removing it again does nothing. c ends: the
// reads of its replay's later pages stop, one under way included.
func (h *Hub) Unregister(c *Conn) {
	c.mu.Lock()
	c.endPages()
	c.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.users[c.user]
	i := slices.Index(set, c)
	if i < 0 {
		return
	}
	if len(set) == 1 {
		delete(h.users, c.user)
	} else {
		set = slices.Delete(set, i, i+1)
		h.users[c.user] = slices.Clip(set)
	}
	if h.OnUnregister != nil {
		h.OnUnregister(c.user)
	}
}

// AnyLocal reports whether any connection is open on this gateway.
func (h *Hub) AnyLocal() bool {
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

// Each calls f for every local connection, outside the hub's lock.
func (h *Hub) Each(f func(*Conn)) {
	h.mu.Lock()
	conns := make([]*Conn, 0, len(h.users))
	for _, set := range h.users {
		conns = append(conns, set...)
	}
	h.mu.Unlock()
	for _, c := range conns {
		f(c)
	}
}

// recipientCache keeps, per conversation, the last recipient list read:
// consecutive events of a big room name the same thousands of members,
// decoded once rather than once per event.
type recipientCache struct {
	byConversation map[string]cachedRecipients
}

type cachedRecipients struct {
	raw  json.RawMessage
	list []string
}

// maxCachedConversations bounds the cache; it starts over beyond.
const maxCachedConversations = 4096

// minCachedRecipients is the smallest list worth caching.
const minCachedRecipients = 64

// decode returns the recipients encoded in raw, from the cache when cid's
// last list was the same. The list returned is shared: never modified.
func (rc *recipientCache) decode(cid string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if c, ok := rc.byConversation[cid]; ok && bytes.Equal(c.raw, raw) {
		return c.list, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	if len(list) >= minCachedRecipients {
		if rc.byConversation == nil || len(rc.byConversation) >= maxCachedConversations {
			rc.byConversation = map[string]cachedRecipients{}
		}
		rc.byConversation[cid] = cachedRecipients{raw: raw, list: list}
	}
	return list, nil
}
