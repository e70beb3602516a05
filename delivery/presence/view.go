package presence

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// DefaultSettle is how long a View waits, after its request for the
// gateways' lists came back to it, before it calls itself ready: by then
// every live gateway has sent a heartbeat (DefaultHeartbeat) and so has
// read the request and answered it.
const DefaultSettle = DefaultHeartbeat + time.Second

// View is a read-only copy of who is online on any gateway, for a node
// role that has no connections of its own (the push role). It folds the
// same records of the ephemeral topic as a Tracker, so it agrees with the
// gateways: a user is online from its first connection on any gateway
// until Grace after its last one closed there (the gateway publishes the
// offline only then), or until that gateway falls silent.
//
// A View starts from the topic's end, so at start it asks the gateways for
// their lists once (a hello record, which every Tracker answers with a
// snapshot); Ready is closed once those answers had time to arrive. It
// publishes nothing else: no heartbeats, no users.
type View struct {
	id     string
	log    chat.Log
	settle time.Duration
	logger *slog.Logger
	// heartbeat is the gateways' (Config.Heartbeat): a gateway silent for
	// goneBeats of them is taken for dead.
	heartbeat time.Duration

	ready     chan struct{}
	readyOnce sync.Once

	mu      sync.Mutex
	where   map[string]map[string]bool // user -> gateways it is online on
	seen    map[string]time.Time       // gateway -> last record read from it
	askedAt time.Time                  // when our hello came back
	helloAt time.Time                  // when we last sent one (zero: not subscribed yet)
}

// NewView returns a view named id (unique among the deployment's nodes,
// like a gateway id). settle <= 0 means DefaultSettle; tests shorten it.
// It does no I/O; Run does.
func NewView(id string, log chat.Log, settle time.Duration, logger *slog.Logger) *View {
	if settle <= 0 {
		settle = DefaultSettle
	}
	return &View{
		id: id, log: log, settle: settle, logger: logger.With("component", "presence-view"), heartbeat: DefaultHeartbeat,
		ready: make(chan struct{}),
		where: map[string]map[string]bool{},
		seen:  map[string]time.Time{},
	}
}

// Ready is closed once the view knows the gateways' lists.
func (v *View) Ready() <-chan struct{} { return v.ready }

// Online reports whether user has a connection open on any gateway, or
// had one within the grace.
func (v *View) Online(user string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.where[user]) > 0
}

// Run reads the ephemeral topic until ctx is done.
func (v *View) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		v.expire(ctx)
	}()
	readEphemeral(ctx, v.log, v.logger, func() {
		// Ask the gateways for their lists; expire asks again while
		// the hello does not come back (an append that failed).
		v.hello(ctx)
	}, v.apply)
	return nil
}

// hello asks the gateways for their lists of online users.
func (v *View) hello(ctx context.Context) {
	v.mu.Lock()
	v.helloAt = time.Now()
	v.mu.Unlock()
	b, _ := json.Marshal(record{Kind: "hello", Gateway: v.id})
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := v.log.Append(actx, chat.TopicEphemeral, &chat.Record{Key: v.id, Value: b}); err != nil {
		v.logger.Warn("asking the gateways who is online", "err", err)
	}
}

// SetHeartbeat tells the view the gateways' heartbeat interval
// (--presence.heartbeat) when it is not DefaultHeartbeat; a default
// settle follows it. Call it before Run.
func (v *View) SetHeartbeat(d time.Duration) {
	if d <= 0 {
		return
	}
	if v.settle == DefaultSettle {
		v.settle = d + time.Second
	}
	v.heartbeat = d
}

// helloRetry is how long a View waits for its hello to come back before
// sending another.
const helloRetry = 5 * time.Second

// expire forgets gateways that fell silent, as a Tracker does, and closes
// Ready settle after the view's hello came back.
func (v *View) expire(ctx context.Context) {
	tick := time.NewTicker(min(v.heartbeat, max(v.settle/4, 10*time.Millisecond)))
	goneAfter := goneBeats * v.heartbeat
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v.mu.Lock()
		now := time.Now()
		for gw, at := range v.seen {
			if now.Sub(at) > goneAfter {
				delete(v.seen, gw)
				for user, gws := range v.where {
					delete(gws, gw)
					if len(gws) == 0 {
						delete(v.where, user)
					}
				}
			}
		}
		settled := !v.askedAt.IsZero() && now.Sub(v.askedAt) >= v.settle
		again := v.askedAt.IsZero() && !v.helloAt.IsZero() && now.Sub(v.helloAt) >= helloRetry
		v.mu.Unlock()
		if again {
			v.hello(ctx)
		}
		if settled {
			v.readyOnce.Do(func() { close(v.ready) })
		}
	}
}

func (v *View) apply(_ int, recs []chat.Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range recs {
		r, ok := decodeRecord(recs[i])
		if !ok {
			continue
		}
		if r.Gateway == v.id {
			if r.Kind == "hello" && v.askedAt.IsZero() {
				v.askedAt = time.Now()
			}
			continue
		}
		switch r.Kind {
		case "event":
			continue
		case "hello":
			// Another node asking; its answers come to us too. A view's
			// hello says nothing of a gateway being alive.
			continue
		}
		v.seen[r.Gateway] = time.Now()
		applyLists(v.where, r, v.add, v.remove)
	}
}

func (v *View) add(user, gw string) {
	gws := v.where[user]
	if gws == nil {
		gws = map[string]bool{}
		v.where[user] = gws
	}
	gws[gw] = true
}

func (v *View) remove(user, gw string) {
	gws := v.where[user]
	delete(gws, gw)
	if len(gws) == 0 {
		delete(v.where, user)
	}
}
