// Package push is the push role: it follows the events log in consumer
// group "push" and notifies the devices of recipients who are offline.
//
// For every message.created it reads, each recipient who is not the sender
// gets a push on each of its devices, unless the recipient is online (has
// a connection open on any gateway, or had one within the presence grace,
// as the gateways' presence records say) or muted the conversation. A
// device gets at most one push per conversation per Collapse (10 s):
// messages that come meanwhile are folded into one push sent when the
// window ends, naming the newest.
//
// Nothing a push service does reaches message delivery: the role is a
// consumer group of its own, its handler only queues (a bounded set of
// pending pushes; beyond it a push is dropped and counted), and the
// sending is done by workers with timeouts and bounded retries.
package push

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
)

// Group is the consumer group of the push role.
const Group = "push"

// maxPending bounds the (user, conversation) pairs with a push waiting,
// so a flood of messages to offline users cannot grow memory without end.
const maxPending = 100_000

// maxAttempts bounds the tries of one push to one device.
const maxAttempts = 4

// sendTimeout bounds one request to a push service or the webhook.
const sendTimeout = 10 * time.Second

// previewRunes is the length of a preview (API: first 100 characters).
const previewRunes = 100

// Presence says who is online on any gateway (presence.View).
type Presence interface {
	// Ready is closed once Online can be trusted.
	Ready() <-chan struct{}
	// Online reports whether user has, or had within the presence grace,
	// a connection on any gateway.
	Online(user string) bool
}

// Notification is the content of a push (API "Devices and push").
type Notification struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	SenderID       string `json:"sender_id"`
	SenderName     string `json:"sender_name"`
	Preview        string `json:"preview,omitempty"`
}

// Deps are what the push role works with.
type Deps struct {
	Log        chat.Log
	Store      chat.Store
	Presence   Presence
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Pusher is the push role.
type Pusher struct {
	cfg      Config
	log      chat.Log
	store    chat.Store
	presence Presence
	logger   *slog.Logger

	webPush *webPushSender // nil without VAPID keys
	webhook *webhookSender // nil without a webhook URL

	deliveries  *prometheus.CounterVec
	failures    *prometheus.CounterVec
	skipped     *prometheus.CounterVec
	undecodable prometheus.Counter
	// skippedOnline and skippedStale are children of skipped, taken once
	// (handle counts per recipient).
	skippedOnline, skippedStale prometheus.Counter

	mu    sync.Mutex
	slots map[slotKey]*slot
	due   dueHeap
	wake  chan struct{}
	work  chan *slot
	now   func() time.Time
}

// slotKey is one recipient in one conversation: the unit of collapsing.
// All of a user's devices are pushed together, so a window per pair is a
// window per device and conversation. A conversation is in one partition
// of the events log, so one push node holds all of its pairs.
type slotKey struct{ user, conversation string }

// slot is the push state of a pair. Guarded by Pusher.mu.
type slot struct {
	key      slotKey
	pending  *note     // the newest message waiting for a push
	lastSent time.Time // when its devices were last pushed to
	queued   bool      // in the due heap or in the work channel
	index    int       // in the due heap
	at       time.Time
}

// note is one message for one recipient.
type note struct {
	n    Notification
	read time.Time // when the role read it
}

// New returns the push role. It does no I/O; Run does. cfg must have
// passed Validate.
func New(cfg Config, deps Deps) (*Pusher, error) {
	cfg = cfg.withDefaults()
	p := &Pusher{
		cfg: cfg, log: deps.Log, store: deps.Store, presence: deps.Presence,
		logger: deps.Logger.With("component", "push"),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_deliveries_total",
			Help: "Pushes a push service or the push webhook accepted, by kind (webpush, webhook).",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_failures_total",
			Help: "Pushes not delivered, by kind and reason: gone (the service said the subscription is gone; the device was removed), rejected (refused for good), failed (retries ran out), blocked (the endpoint is not a public https address).",
		}, []string{"kind", "reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_skipped_total",
			Help: "Recipients of a message that got no push, by reason: online, muted, no_devices, dropped (too many pushes pending), stale (the message was old when read), unavailable (the store did not answer).",
		}, []string{"reason"}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "parley_undecodable_records_total",
			Help:        "Event records a consumer skipped because they did not decode.",
			ConstLabels: prometheus.Labels{"consumer": Group},
		}),
		slots: map[slotKey]*slot{},
		wake:  make(chan struct{}, 1),
		work:  make(chan *slot, cfg.Workers),
		now:   time.Now,
	}
	p.skippedOnline, p.skippedStale = p.skipped.WithLabelValues("online"), p.skipped.WithLabelValues("stale")
	if cfg.VAPIDPublicKey != "" {
		s, err := newWebPushSender(cfg)
		if err != nil {
			return nil, err
		}
		p.webPush = s
	}
	if cfg.WebhookURL != "" {
		s, err := newWebhookSender(cfg)
		if err != nil {
			return nil, err
		}
		p.webhook = s
	}
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(p.deliveries, p.failures, p.skipped, p.undecodable)
	}
	return p, nil
}

// Enabled reports whether the role has a way to push: VAPID keys for Web
// Push or a webhook URL. Without either it has nothing to do.
func (p *Pusher) Enabled() bool { return p.webPush != nil || p.webhook != nil }

// Run consumes the events log and pushes until ctx is done; it owns every
// goroutine of the role.
func (p *Pusher) Run(ctx context.Context) error {
	// Last: kept-alive connections to push services have goroutines of
	// their own.
	defer func() {
		if p.webPush != nil {
			p.webPush.client.CloseIdleConnections()
		}
		if p.webhook != nil {
			p.webhook.client.CloseIdleConnections()
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1 + p.cfg.Workers)
	go func() {
		defer wg.Done()
		p.schedule(ctx)
	}()
	for range p.cfg.Workers {
		go func() {
			defer wg.Done()
			p.worker(ctx)
		}()
	}
	backoff := 100 * time.Millisecond
	for {
		err := p.log.Consume(ctx, chat.TopicEvents, Group, p.handle)
		if ctx.Err() != nil {
			return nil
		}
		p.logger.Warn("reading events failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// handle queues a push for each recipient of each new message. It never
// waits for a push service, nor for the Store.
func (p *Pusher) handle(_ context.Context, partition int, recs []chat.Record) error {
	now := p.now()
	// A recipient online when the message is read had a connection that
	// the gateways delivered it to: no push, and no pending state (in a
	// big room that is most recipients, and this keeps them at one map
	// read each). One not online yet is looked at again after Delay, in
	// case its online record is still on its way.
	presenceKnown := false
	select {
	case <-p.presence.Ready():
		presenceKnown = true
	default:
	}
	for _, rec := range recs {
		var s chat.Sequenced
		if err := json.Unmarshal(rec.Value, &s); err != nil {
			p.undecodable.Inc()
			p.logger.Warn("skipping an undecodable event record", "partition", partition, "offset", rec.Offset, "err", err)
			continue
		}
		for _, ev := range s.Events {
			if ev.Type != chat.EventMessageCreated || ev.Message == nil {
				continue
			}
			m := ev.Message
			n := Notification{Type: "message", ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID}
			if p.cfg.Preview {
				n.Preview = preview(m.Text)
			}
			stale := now.Sub(ev.At) > p.cfg.MaxAge
			for _, user := range s.Recipients {
				if user == m.SenderID {
					continue
				}
				if stale {
					p.skippedStale.Inc()
					continue
				}
				if presenceKnown && p.presence.Online(user) {
					p.skippedOnline.Inc()
					continue
				}
				p.enqueue(user, note{n: n, read: now})
			}
		}
	}
	return nil
}

// preview is the text's first previewRunes characters.
func preview(text string) string {
	if utf8.RuneCountInString(text) <= previewRunes {
		return text
	}
	i, n := 0, 0
	for i = range text {
		if n == previewRunes {
			break
		}
		n++
	}
	return text[:i]
}

// enqueue records nt as its pair's newest message and schedules the pair:
// at once (after Delay), or when the pair's collapse window ends.
func (p *Pusher) enqueue(user string, nt note) {
	k := slotKey{user, nt.n.ConversationID}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slots[k]
	if s == nil {
		if len(p.slots) >= maxPending {
			p.skipped.WithLabelValues("dropped").Inc()
			return
		}
		s = &slot{key: k, index: -1}
		p.slots[k] = s
	}
	if s.pending == nil || nt.n.Seq > s.pending.n.Seq {
		nt := nt
		s.pending = &nt
	}
	if !s.queued {
		s.queued = true
		p.pushDue(s, p.dueOf(s))
	}
}

// dueOf is when s's pending push may go. Under p.mu.
func (p *Pusher) dueOf(s *slot) time.Time {
	at := time.Time{}
	if s.pending != nil {
		at = s.pending.read.Add(p.cfg.Delay)
	}
	if !s.lastSent.IsZero() {
		if w := s.lastSent.Add(p.cfg.Collapse); w.After(at) {
			at = w
		}
	}
	return at
}

func (p *Pusher) pushDue(s *slot, at time.Time) {
	s.at = at
	heap.Push(&p.due, s)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// schedule hands pairs whose time came to the workers, and forgets pairs
// whose window ended with nothing pending.
func (p *Pusher) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		p.mu.Lock()
		var ready *slot
		wait := time.Hour
		for p.due.Len() > 0 {
			s := p.due[0]
			if d := s.at.Sub(p.now()); d > 0 {
				wait = d
				break
			}
			heap.Pop(&p.due)
			if s.pending == nil {
				// A window ended with nothing new: forget the pair.
				s.queued = false
				delete(p.slots, s.key)
				continue
			}
			ready = s
			break
		}
		p.mu.Unlock()
		if ready != nil {
			select {
			case p.work <- ready:
			case <-ctx.Done():
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

func (p *Pusher) worker(ctx context.Context) {
	for {
		var s *slot
		select {
		case <-ctx.Done():
			return
		case s = <-p.work:
		}
		// Presence is only known once the gateways answered.
		select {
		case <-ctx.Done():
			return
		case <-p.presence.Ready():
		}
		p.mu.Lock()
		nt := s.pending
		s.pending = nil
		p.mu.Unlock()
		sent := false
		if nt != nil {
			sent = p.notify(ctx, s.key.user, nt.n)
		}
		p.mu.Lock()
		if sent {
			s.lastSent = p.now()
		}
		switch {
		case s.pending != nil || sent:
			// More came meanwhile, or the window must run out before
			// the pair is forgotten.
			p.pushDue(s, p.dueOf(s))
		default:
			s.queued = false
			if s.lastSent.IsZero() || p.now().Sub(s.lastSent) >= p.cfg.Collapse {
				delete(p.slots, s.key)
			} else {
				p.pushDue(s, p.dueOf(s))
				s.queued = true
			}
		}
		p.mu.Unlock()
	}
}

// notify pushes n to user's devices unless the user is online or muted
// the conversation, and reports whether any push went out.
func (p *Pusher) notify(ctx context.Context, user string, n Notification) bool {
	if p.presence.Online(user) {
		p.skippedOnline.Inc()
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, sendTimeout)
	defer cancel()
	settings, err := p.store.Settings(rctx, user)
	if err != nil {
		p.skipped.WithLabelValues("unavailable").Inc()
		p.logger.Warn("reading settings", "user", user, "err", err)
		return false
	}
	if settings[n.ConversationID].Muted {
		p.skipped.WithLabelValues("muted").Inc()
		return false
	}
	devices, err := p.store.Devices(rctx, user)
	if err != nil {
		p.skipped.WithLabelValues("unavailable").Inc()
		p.logger.Warn("reading devices", "user", user, "err", err)
		return false
	}
	devices = slices.DeleteFunc(devices, func(d chat.Device) bool {
		return (d.Kind == chat.DeviceWebPush && p.webPush == nil) || (d.Kind == chat.DeviceWebhook && p.webhook == nil)
	})
	if len(devices) == 0 {
		p.skipped.WithLabelValues("no_devices").Inc()
		return false
	}
	n.SenderName = n.SenderID
	if users, err := p.store.Users(rctx, []string{n.SenderID}); err == nil && users[n.SenderID].Name != "" {
		n.SenderName = users[n.SenderID].Name
	}
	sent := false
	for _, d := range devices {
		if ctx.Err() != nil {
			break
		}
		if p.deliver(ctx, user, d, n) {
			sent = true
		}
	}
	return sent
}

// outcome is what one attempt came to.
type outcome int

const (
	delivered outcome = iota
	retry             // worth trying again (network, 5xx, 429)
	gone              // the subscription or token is dead: remove it
	rejected          // refused for good
	blocked           // the endpoint is not one the server may reach
)

// attempt is one try of one push; after is a wait the service asked for
// (Retry-After), if any.
type attempt func(ctx context.Context) (outcome, time.Duration, error)

// deliver pushes n to one device, with retries, and reports success.
func (p *Pusher) deliver(ctx context.Context, user string, d chat.Device, n Notification) bool {
	var try attempt
	kind := d.Kind
	switch d.Kind {
	case chat.DeviceWebPush:
		if p.webPush == nil {
			return false
		}
		try = p.webPush.attempt(d, n)
	case chat.DeviceWebhook:
		if p.webhook == nil {
			return false
		}
		try = p.webhook.attempt(d, user, n)
	default:
		return false
	}
	backoff := p.cfg.RetryBase
	for i := 1; ; i++ {
		actx, cancel := context.WithTimeout(ctx, sendTimeout)
		out, after, err := try(actx)
		cancel()
		switch out {
		case delivered:
			p.deliveries.WithLabelValues(kind).Inc()
			return true
		case gone:
			p.failures.WithLabelValues(kind, "gone").Inc()
			dctx, cancel := context.WithTimeout(ctx, sendTimeout)
			derr := p.store.DeleteDevice(dctx, user, d.ID)
			cancel()
			if derr != nil && !chat.IsNotFound(derr) {
				p.logger.Warn("removing a gone device", "user", user, "device", d.ID, "err", derr)
			} else {
				p.logger.Info("removed a device its push service says is gone", "user", user, "device", d.ID, "kind", kind)
			}
			return false
		case rejected:
			p.failures.WithLabelValues(kind, "rejected").Inc()
			p.logger.Warn("push refused", "user", user, "device", d.ID, "kind", kind, "err", err)
			return false
		case blocked:
			p.failures.WithLabelValues(kind, "blocked").Inc()
			p.logger.Warn("push endpoint not allowed", "user", user, "device", d.ID, "err", err)
			return false
		}
		if i == maxAttempts || ctx.Err() != nil {
			p.failures.WithLabelValues(kind, "failed").Inc()
			p.logger.Warn("push failed; giving up", "user", user, "device", d.ID, "kind", kind, "attempts", i, "err", err)
			return false
		}
		wait := max(backoff, min(after, 30*time.Second))
		backoff *= 2
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// classify maps a push service's or webhook's answer to an outcome.
func classify(res *http.Response, goneCodes ...int) (outcome, time.Duration, error) {
	for _, c := range goneCodes {
		if res.StatusCode == c {
			return gone, 0, fmt.Errorf("status %d", res.StatusCode)
		}
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return delivered, 0, nil
	case res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusRequestTimeout || res.StatusCode >= 500:
		return retry, retryAfter(res), fmt.Errorf("status %d", res.StatusCode)
	default:
		return rejected, 0, fmt.Errorf("status %d", res.StatusCode)
	}
}

// retryAfter reads a Retry-After in seconds (0 when absent or a date).
func retryAfter(res *http.Response) time.Duration {
	var secs int
	if _, err := fmt.Sscanf(res.Header.Get("Retry-After"), "%d", &secs); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	return 0
}

// errBlocked marks a dial refused by the address check.
var errBlocked = errors.New("push endpoint is not on a public address")

// dueHeap orders pairs by due time.
type dueHeap []*slot

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	s := x.(*slot)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *dueHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.index = -1
	return s
}
