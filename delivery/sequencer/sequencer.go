// Package sequencer applies commands in log order: it deduplicates, assigns
// each conversation's gap-free seq, writes events and state to the Store,
// and only then appends the sequenced events to the events log.
package sequencer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/retry"
)

// Group is the consumer group of the sequencer role.
const Group = "sequencer"

// Sequencer is the sequencer role: one owner per commands partition.
type Sequencer struct {
	log    chat.Log
	store  chat.Store
	logger *slog.Logger
	now    func() time.Time
	hops   *prometheus.HistogramVec
	// The hops' observers, looked up once: a label lookup per command
	// hashes the label every time.
	commandWait, storeRead, storeCommit, eventsAppend prometheus.Observer

	// epochs are the Store epochs of the partitions this sequencer writes
	// (Store.Own), taken at a partition's first batch and again after a
	// failed Commit.
	epochsMu sync.RWMutex
	epochs   map[int]int64
	// assigned is the group assignment (chat.Assignment) each epoch was
	// taken in.
	assigned map[int]int64
	// known caches, per partition, the conversations' states as this
	// sequencer's own Commits left them (or as it read them after taking
	// the partition): while it holds the epoch nobody else writes them,
	// so a batch reads from the Store only conversations it has not seen.
	known map[int]map[string]knownConv
	// mships caches, per partition, membership rows (by conversation and
	// user) as this sequencer's Commits left them or as it read them:
	// only Commits write them, so while it holds the epoch a sender's row
	// is read once, not at every batch.
	mships map[int]map[string]chat.Membership
	// refused holds, per partition, the gateways' refusal floors
	// (Store.Refusals) as read after taking the partition: a command at or
	// below its gateway's floor is refused, as Commit would refuse its
	// change. A floor raised since makes the Commit fail, and the partition
	// is taken, and its floors read, again.
	refused map[int]map[string]time.Time
	// knownDedups counts, per partition, the dedup records cached in
	// known (knownConv.dedups); dedupTotal is their sum, bounded by
	// dedupBudget (maxKnownDedups) over all partitions.
	knownDedups             map[int]int
	dedupTotal, dedupBudget int
	// senderDedups is the limit of Store.SenderDedups (maxSenderDedups).
	senderDedups int

	// appending holds, per partition, the events append of the last
	// batch whose commit the Log lets this sequencer hold
	// (chat.HoldCommit): the next batch's append waits for it, so a
	// partition's events reach the events log in batch order.
	appending map[int]*pendingAppend

	lastExpiredWarn atomic.Int64 // unix nanoseconds
	members         memberCache  // of big conversations (members.go)
}

// Option configures a Sequencer.
type Option func(*Sequencer)

// WithRegisterer registers the sequencer's metrics with reg:
// parley_sequencer_hop_seconds, the time a command spends in each hop of
// the sequencer (label hop: command_wait, from the command's time at the
// gateway until the sequencer takes it from the log; store_read, a
// batch's reads before it is applied;
// store_commit, a batch's Store.Commit; events_append, a batch's append
// to the events log).
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Sequencer) { reg.MustRegister(s.hops) }
}

// New returns a sequencer reading commands from log and writing to store.
func New(log chat.Log, store chat.Store, logger *slog.Logger, opts ...Option) *Sequencer {
	s := &Sequencer{
		log: log, store: store, logger: logger.With("component", "sequencer"), now: time.Now,
		hops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_sequencer_hop_seconds",
			Help:    "Time in each hop of the sequencer: command_wait (gateway to sequencer, per command); store_read, store_commit and events_append (per batch).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10},
		}, []string{"hop"}),
		epochs:   map[int]int64{},
		assigned: map[int]int64{},
		known:    map[int]map[string]knownConv{},
		refused:  map[int]map[string]time.Time{},
		mships:   map[int]map[string]chat.Membership{},

		knownDedups:  map[int]int{},
		dedupBudget:  maxKnownDedups,
		senderDedups: maxSenderDedups,

		appending: map[int]*pendingAppend{},
	}
	s.commandWait = s.hops.WithLabelValues("command_wait")
	s.storeRead = s.hops.WithLabelValues("store_read")
	s.storeCommit = s.hops.WithLabelValues("store_commit")
	s.eventsAppend = s.hops.WithLabelValues("events_append")
	for _, o := range opts {
		o(s)
	}
	return s
}

// epoch returns the sequencer's Store epoch for partition, taking the
// partition with Own first when it holds none. Own also finishes what an
// earlier owner's Commit left half-written, so the batch's reads after it
// see every change that can still be stored. A partition held from an
// earlier assignment of the group (chat.Assignment) is taken again: in
// between it may have been another sequencer's, whose changes the cached
// states do not know, and a command refused on a stale state would make
// no Commit for the epoch to fence.
func (s *Sequencer) epoch(ctx context.Context, partition int) (int64, error) {
	assignment := chat.Assignment(ctx)
	s.epochsMu.Lock()
	e, ok := s.epochs[partition]
	if ok && s.assigned[partition] != assignment {
		delete(s.epochs, partition)
		delete(s.known, partition)
		s.uncountDedups(partition)
		delete(s.mships, partition)
		ok = false
	}
	s.epochsMu.Unlock()
	if ok {
		return e, nil
	}
	e, err := s.store.Own(ctx, partition)
	if err != nil {
		return 0, fmt.Errorf("sequencer: take partition %d: %w", partition, err)
	}
	floors, err := s.store.Refusals(ctx, partition)
	if err != nil {
		return 0, fmt.Errorf("sequencer: read the refusals of partition %d: %w", partition, err)
	}
	s.epochsMu.Lock()
	s.epochs[partition] = e
	s.assigned[partition] = assignment
	s.uncountDedups(partition)
	s.known[partition] = map[string]knownConv{}
	s.mships[partition] = map[string]chat.Membership{}
	s.refused[partition] = floors
	s.epochsMu.Unlock()
	return e, nil
}

// fenceExpired fences gateway's commands up to d, the latest deadline
// among those a batch refused as expired. A floor already that high
// needs nothing. Otherwise it fences everything that is expired by this
// sequencer's clock (deadlines up to now - chat.ExpiryGrace, which
// covers d): a catching-up owner then pays one Refuse per gateway, not
// one per batch. When a later command of the gateway is stored already
// (Refuse reports false), the expired ones precede it in the log and
// were not stored (the states, read after taking the partition, would
// show them as replays): any owner passes them again only to find them
// expired, so the refusal stands without a floor.
func (s *Sequencer) fenceExpired(ctx context.Context, partition int, gateway string, d time.Time) error {
	s.epochsMu.Lock()
	floor, ok := s.refused[partition][gateway]
	s.epochsMu.Unlock()
	if ok && !floor.Before(d) {
		return nil
	}
	for _, upTo := range []time.Time{s.now().Add(-chat.ExpiryGrace), d} {
		if upTo.Before(d) {
			continue
		}
		fenced, err := s.store.Refuse(ctx, partition, gateway, upTo)
		if err != nil {
			return fmt.Errorf("sequencer: fence expired commands: %w", err)
		}
		if fenced {
			s.epochsMu.Lock()
			if m := s.refused[partition]; m != nil && m[gateway].Before(upTo) {
				m[gateway] = upTo
			}
			s.epochsMu.Unlock()
			return nil
		}
	}
	return nil
}

// refusedBy reports whether cmd's gateway refused it (Store.Refuse): it
// answered 503 and the Store would refuse the change.
func (s *Sequencer) refusedBy(partition int, cmd *chat.Command) bool {
	if cmd.Gateway == "" || cmd.Deadline.IsZero() {
		return false
	}
	s.epochsMu.RLock()
	floor, ok := s.refused[partition][cmd.Gateway]
	s.epochsMu.RUnlock()
	return ok && !floor.Before(cmd.Deadline)
}

// knownConv is a conversation's state as stored (exists false: there is
// no such conversation).
type knownConv struct {
	conv   chat.Conversation
	exists bool
	// dedups, when not nil, holds dedup records of the conversation
	// (sender+"\x00"+client_id -> message id), every one of them of the
	// senders it is complete for (dedupSenders): a send's client_id
	// missing here is then new without a Store read. Only the partition's
	// handle calls, one at a time, read and extend it.
	dedups map[string]string
	dedupSenders
}

// dedupSenders says whose dedup records a conversation's cached set
// holds complete. A conversation that did not exist when this sequencer
// read it after taking the partition has no records but those its own
// Commits wrote: all. Of a conversation stored before, a sender's
// records were read once (Store.SenderDedups, at most maxSenderDedups of
// them) and every later one is this sequencer's own: senders[s] is true;
// false when the sender had more than that (its sends read their
// records as before).
type dedupSenders struct {
	all     bool
	senders map[string]bool
}

// knows reports whether every dedup record of sender is in the set.
func (d dedupSenders) knows(sender string) bool { return d.all || d.senders[sender] }

// tried reports whether sender's records were read whole, or found too
// many to read whole.
func (d dedupSenders) tried(sender string) bool {
	_, ok := d.senders[sender]
	return d.all || ok
}

// maxSenderDedups bounds the dedup records of one sender and conversation
// read at once (Store.SenderDedups) to cache them for the epoch.
const maxSenderDedups = 64

// maxKnownDedups bounds the dedup records cached over all partitions
// (about 150 bytes each). A partition whose batch would pass it forgets
// its conversations' dedup records (their sends read them from the Store
// again, as those of conversations not born in the epoch do).
const maxKnownDedups = 100_000

// uncountDedups forgets the count of partition's cached dedup records,
// whose cache is being dropped; epochsMu is held.
func (s *Sequencer) uncountDedups(partition int) {
	s.dedupTotal -= s.knownDedups[partition]
	delete(s.knownDedups, partition)
}

// maxKnown bounds the cached states of one partition; past it the cache
// starts again.
const maxKnown = 50_000

func (s *Sequencer) knownState(partition int, cid string) (knownConv, bool) {
	s.epochsMu.RLock()
	defer s.epochsMu.RUnlock()
	k, ok := s.known[partition][cid]
	return k, ok
}

// dedupsFull reports whether the cached dedup records are at their
// budget over all partitions: a batch then reads no sender's records
// whole (remember could not keep them), only its sends' own client_ids.
func (s *Sequencer) dedupsFull() bool {
	s.epochsMu.RLock()
	defer s.epochsMu.RUnlock()
	return s.dedupTotal >= s.dedupBudget
}

// remember caches the states a batch left, once its changes are stored.
func (s *Sequencer) remember(partition int, states map[string]*convState) {
	s.epochsMu.Lock()
	defer s.epochsMu.Unlock()
	m := s.known[partition]
	if m == nil {
		return // the partition was given up meanwhile
	}
	added := 0
	for _, st := range states {
		if st.knownDedups != nil {
			added += len(st.dedups) + st.readDedups
		}
	}
	// A batch's conversations keep their dedup records known complete
	// only when the partition's were not just dropped: their maps are
	// counted as they were cached.
	dropped := true
	switch {
	case len(m)+len(states) > maxKnown:
		clear(m)
	case s.dedupTotal+added > s.dedupBudget:
		for cid, k := range m {
			if k.dedups != nil {
				k.dedups, k.dedupSenders = nil, dedupSenders{}
				m[cid] = k
			}
		}
	default:
		dropped = false
	}
	if dropped {
		s.uncountDedups(partition)
	}
	for cid, st := range states {
		k := knownConv{conv: st.conv, exists: st.exists}
		had := len(m[cid].dedups) // counted (none when just dropped)
		if st.knownDedups != nil && !dropped {
			// The batch's own sends join the conversation's set (the
			// records read for it are in it already).
			k.dedups, k.dedupSenders = st.knownDedups, st.dedupSenders
			for key, mid := range st.dedups {
				k.dedups[key] = mid
			}
		}
		s.knownDedups[partition] += len(k.dedups) - had
		s.dedupTotal += len(k.dedups) - had
		m[cid] = k
	}
	ms := s.mships[partition]
	if ms == nil {
		return
	}
	n := 0
	for _, st := range states {
		n += len(st.mships)
	}
	if len(ms)+n > maxKnown {
		clear(ms)
	}
	for cid, st := range states {
		for uid, m := range st.mships {
			ms[cid+"\x00"+uid] = *m
		}
	}
}

// dropKnown forgets the cached states of the conversations in states,
// their dedup records and the membership rows the batch touched.
func (s *Sequencer) dropKnown(partition int, states map[string]*convState) {
	s.epochsMu.Lock()
	defer s.epochsMu.Unlock()
	m, ms := s.known[partition], s.mships[partition]
	for cid, st := range states {
		if k, ok := m[cid]; ok {
			s.knownDedups[partition] -= len(k.dedups)
			s.dedupTotal -= len(k.dedups)
			delete(m, cid)
		}
		for uid := range st.mships {
			delete(ms, cid+"\x00"+uid)
		}
	}
}

// knownMembership returns a membership row cached for partition.
func (s *Sequencer) knownMembership(partition int, cid, uid string) (chat.Membership, bool) {
	s.epochsMu.RLock()
	defer s.epochsMu.RUnlock()
	m, ok := s.mships[partition][cid+"\x00"+uid]
	return m, ok
}

// forget drops the epoch of partition after a failed Commit: it may be
// stale (another owner took the partition) or the Commit's outcome
// uncertain, and the next batch takes the partition again, which settles
// it.
func (s *Sequencer) forget(partition int) {
	s.epochsMu.Lock()
	delete(s.epochs, partition)
	delete(s.known, partition)
	s.uncountDedups(partition)
	delete(s.mships, partition)
	s.epochsMu.Unlock()
}

// Run consumes the commands log until ctx is done. A failed batch (store or
// log down, or a fencing conflict) is retried after a pause: its offsets
// were not committed, so its commands are handled again and, being
// idempotent, are applied once.
func (s *Sequencer) Run(ctx context.Context) error {
	return retry.Consume(ctx, s.logger, "sequencer batch failed", func(ctx context.Context) error {
		// A new membership of the group may bring other partitions, and
		// others may have taken ours meanwhile: every partition is taken
		// again at its first batch.
		s.epochsMu.Lock()
		clear(s.epochs)
		clear(s.known)
		clear(s.knownDedups)
		s.dedupTotal = 0
		clear(s.mships)
		clear(s.appending)
		s.epochsMu.Unlock()
		return s.log.Consume(ctx, chat.TopicCommands, Group, s.handle)
	})
}

// convState is one conversation's state within a batch.
type convState struct {
	conv     chat.Conversation
	exists   bool
	members  map[string]bool
	messages map[string]*chat.Message // by id, touched in this batch
	dedups   map[string]string        // sender+"\x00"+client_id -> message id, added in this batch
	// knownDedups, when not nil, holds dedup records stored before the
	// batch (knownConv.dedups), complete for the senders dedupSenders
	// knows: their client_ids in neither map are new. The batch's
	// prefetch replaces both with copies before it adds what it read
	// (readDedups records), so the cache changes only with remember.
	knownDedups map[string]string
	dedupSenders
	readDedups int
	mships     map[string]*chat.Membership
}

type batch struct {
	s         *Sequencer
	ctx       context.Context
	partition int
	states    map[string]*convState
	expired   int // commands refused because their gateway stopped waiting
	// fence holds, by gateway, the latest deadline among the commands
	// refused as expired: fenced (Store.Refuse) before the refusals are
	// appended, so no later owner applies what this one answered
	// unavailable.
	fence map[string]time.Time
	// prefetched holds dedup lookups made side by side before the batch
	// is applied (conversation+sender+client_id -> message id, "" when
	// there is none): one by one, they were most of a batch's time on a
	// networked store.
	prefetched map[string]string
}

// learnDedups adds what Store.SenderDedups read of sender's records to
// the state's known set, on copies of the cached maps; complete false
// marks the sender as one whose records are not all known.
func (st *convState) learnDedups(sender string, found map[string]string, complete bool) {
	d := make(map[string]string, len(st.knownDedups)+len(found))
	for k, v := range st.knownDedups {
		d[k] = v
	}
	senders := make(map[string]bool, len(st.senders)+1)
	for k, v := range st.senders {
		senders[k] = v
	}
	senders[sender] = complete
	if complete {
		for client, mid := range found {
			d[sender+"\x00"+client] = mid
		}
		st.readDedups += len(found)
	}
	st.knownDedups, st.senders = d, senders
}

// prefetchParallelism bounds the store reads a batch makes at once.
const prefetchParallelism = 16

// prefetch reads, side by side, the states of the batch's conversations,
// then the dedup records of its sends and the membership rows of its
// senders (a send moves its sender's read position, so apply needs the
// row), all side by side: one query per conversation and sender, in two
// rounds of reads per batch, not one read per sender in turn. A failed
// read is left to apply, which reads again and reports it.
func (b *batch) prefetch(cmds []*chat.Command) {
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(prefetchParallelism)
	full := b.s.dedupsFull()
	type senderKey struct{ cid, actor string }
	var order []string
	bySender := map[string][]senderKey{}
	clientIDs := map[senderKey][]string{}
	seen := map[string]bool{}
	senders := map[string][]string{} // conversation -> its senders, once each
	sent := map[senderKey]bool{}
	for _, cmd := range cmds {
		cid := cmd.ConversationID
		if _, ok := bySender[cid]; !ok {
			order = append(order, cid)
			bySender[cid] = nil
		}
		if sk := (senderKey{cid, cmd.Actor}); cmd.Op == chat.OpSend && !sent[sk] {
			sent[sk] = true
			senders[cid] = append(senders[cid], cmd.Actor)
		}
		if cmd.Op != chat.OpSend || cmd.ClientID == "" || b.s.expired(cmd) {
			continue
		}
		key := dedupKey(cid, cmd.Actor, cmd.ClientID)
		if seen[key] {
			continue
		}
		seen[key] = true
		sk := senderKey{cid, cmd.Actor}
		if _, ok := clientIDs[sk]; !ok {
			bySender[cid] = append(bySender[cid], sk)
		}
		clientIDs[sk] = append(clientIDs[sk], cmd.ClientID)
	}
	// Per conversation: its state first, then its senders' dedup records
	// and membership rows side by side.
	for _, cid := range order {
		g.Go(func() error {
			st, err := b.loadState(cid)
			if err != nil {
				return nil
			}
			mu.Lock()
			b.states[cid] = st
			mu.Unlock()
			var dg errgroup.Group
			dg.SetLimit(prefetchParallelism)
			if st.exists {
				for _, uid := range senders[cid] {
					if !st.members[uid] {
						continue
					}
					if m, ok := b.s.knownMembership(b.partition, cid, uid); ok {
						mu.Lock()
						st.mships[uid] = &m
						mu.Unlock()
						continue
					}
					dg.Go(func() error {
						m, err := b.s.store.Membership(b.ctx, cid, uid)
						if err != nil {
							return nil
						}
						mu.Lock()
						st.mships[uid] = &m
						mu.Unlock()
						return nil
					})
				}
			}
			for _, sk := range bySender[cid] {
				mu.Lock() // the reads of other senders learn meanwhile
				known, tried := st.knows(sk.actor), st.tried(sk.actor)
				mu.Unlock()
				if known {
					continue // known complete: no read (send looks them up)
				}
				dg.Go(func() error {
					if !tried && !full {
						// Once per epoch: the sender's every record, if
						// there are few (not while the cache is full:
						// they could not be kept, and would be read
						// again at every batch).
						found, complete, err := b.s.store.SenderDedups(b.ctx, cid, sk.actor, b.s.senderDedups)
						if err != nil {
							return nil
						}
						mu.Lock()
						st.learnDedups(sk.actor, found, complete)
						mu.Unlock()
						if complete {
							return nil
						}
					}
					ids := clientIDs[sk]
					found, err := b.s.store.Dedups(b.ctx, cid, sk.actor, ids)
					if err != nil {
						return nil
					}
					mu.Lock()
					for _, id := range ids {
						b.prefetched[dedupKey(cid, sk.actor, id)] = found[id] // "" when none
					}
					mu.Unlock()
					return nil
				})
			}
			return dg.Wait()
		})
	}
	_ = g.Wait()
}

// expired reports whether the gateway gave up waiting for cmd: it has
// answered 503 already, so the command is refused rather than applied
// (the client sends it again, with the same client_id).
func (s *Sequencer) expired(cmd *chat.Command) bool {
	return cmd.Expired(s.now())
}

// warnExpired says, at most every 10 s, that commands expired: normal
// while the sequencer catches up (after a rebalance or an engine outage),
// a sign of clocks that disagree when it happens without load.
func (s *Sequencer) warnExpired(partition, n int) {
	now := s.now()
	last := s.lastExpiredWarn.Load()
	if now.UnixNano()-last < int64(10*time.Second) || !s.lastExpiredWarn.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s.logger.Warn("refused commands that expired in the log (their gateways had answered 503); expected while catching up, otherwise check that the nodes' clocks agree",
		"partition", partition, "commands", n)
}

func dedupKey(cid, sender, clientID string) string {
	return cid + "\x00" + sender + "\x00" + clientID
}

// maxRefusedRetries bounds how often one batch is applied again because
// gateways refused some of its commands meanwhile.
const maxRefusedRetries = 5

func (s *Sequencer) handle(ctx context.Context, partition int, recs []chat.Record) error {
	picked := time.Now()
	cmds := make([]*chat.Command, len(recs))
	var valid []*chat.Command
	for i := range recs {
		cmd, err := record.DecodeCommand(recs[i].Value)
		if err != nil || cmd.ConversationID == "" {
			s.logger.Warn("dropping undecodable command", "partition", partition, "offset", recs[i].Offset)
			continue
		}
		cmds[i] = &cmd
		valid = append(valid, &cmd)
		if !cmd.At.IsZero() {
			s.commandWait.Observe(max(0, picked.Sub(cmd.At).Seconds()))
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.handleOnce(ctx, partition, recs, cmds, valid)
		if !errors.Is(err, chat.ErrRefused) || attempt >= maxRefusedRetries {
			return err
		}
		// Gateways refused some of the batch's commands since the
		// partition was taken: the epoch holds, the floors are read
		// again and the batch is applied again from the states before
		// it (nothing of it is remembered before its Commit).
		floors, ferr := s.store.Refusals(ctx, partition)
		if ferr != nil {
			return fmt.Errorf("sequencer: read the refusals of partition %d: %w", partition, ferr)
		}
		s.epochsMu.Lock()
		s.refused[partition] = floors
		s.epochsMu.Unlock()
	}
}

func (s *Sequencer) handleOnce(ctx context.Context, partition int, recs []chat.Record, cmds, valid []*chat.Command) error {
	epoch, err := s.epoch(ctx, partition)
	if err != nil {
		return err
	}
	b := &batch{s: s, ctx: ctx, partition: partition, states: map[string]*convState{}, prefetched: map[string]string{}, fence: map[string]time.Time{}}
	changes := make([]chat.Change, 0, len(recs))
	outs := make([]*chat.Record, 0, len(recs))
	var head int64
	spans := &batchSpans{partition: partition}
	t0 := time.Now()
	b.prefetch(valid)
	t1 := time.Now()
	s.storeRead.Observe(t1.Sub(t0).Seconds())
	for i := range recs {
		rec, cmd := &recs[i], cmds[i]
		if cmd == nil {
			continue
		}
		seqd, change, err := b.apply(cmd, rec.Offset)
		if err != nil {
			spans.fail(err)
			return err // infrastructure failure: retry the whole batch
		}
		seqd.Trace = spans.start(cmd)
		if change != nil {
			changes = append(changes, *change)
			for _, ev := range change.Events {
				head = max(head, ev.Position)
			}
		}
		val, err := record.EncodeSequenced(seqd)
		if err != nil {
			return fmt.Errorf("sequencer: encode: %w", err)
		}
		outs = append(outs, &chat.Record{Key: cmd.ConversationID, Value: val})
	}
	for gw, d := range b.fence {
		if err := s.fenceExpired(ctx, partition, gw, d); err != nil {
			return err
		}
	}
	t2 := time.Now()
	if len(changes) > 0 {
		if err := spans.commit(ctx, func(ctx context.Context) error { return s.store.Commit(ctx, partition, epoch, head, changes) }); err != nil {
			if errors.Is(err, chat.ErrRefused) {
				// The epoch holds; but changes of the Commit before the
				// refused one may be stored (a Commit written in parts):
				// the cached states of the batch's conversations are
				// dropped, and read again. The partition's other
				// conversations are not in this Commit, so theirs stand:
				// dropping them all made every refusal, which comes with
				// overload, cost a read of every conversation again.
				s.dropKnown(partition, b.states)
				spans.fail(err)
				return fmt.Errorf("sequencer: commit: %w", err)
			}
			s.forget(partition)
			spans.fail(err)
			return fmt.Errorf("sequencer: commit: %w", err)
		}
		s.storeCommit.Observe(time.Since(t2).Seconds())
		b.rememberMembers()
	}
	s.remember(partition, b.states)
	t3 := time.Now()
	if b.expired > 0 {
		s.warnExpired(partition, b.expired)
	}
	prev := s.takeAppending(ctx, partition)
	// A batch with nothing to append (every record skipped) is not held:
	// HoldCommit marks the batch held, and only the goroutine below would
	// release it.
	if release := holdIfAppending(ctx, len(outs)); release != nil {
		// The batch is stored; its events are appended beside the next
		// batch, whose append waits for this one. The Log commits the
		// batch's offsets only on release(nil) and waits for the release
		// before it gives the partition up, so it owns this goroutine.
		pa := &pendingAppend{assignment: chat.Assignment(ctx), done: make(chan struct{})}
		s.setAppending(partition, pa)
		go func() {
			defer close(pa.done)
			pa.err = s.appendEvents(ctx, prev, outs, spans)
			release(pa.err)
		}()
		s.logger.Debug("batch applied", "partition", partition, "commands", len(recs), "convs", len(b.states),
			"read", t1.Sub(t0), "apply", t2.Sub(t1), "commit", t3.Sub(t2))
		return nil
	}
	if err := s.appendEvents(ctx, prev, outs, spans); err != nil {
		return err
	}
	s.logger.Debug("batch applied", "partition", partition, "commands", len(recs), "convs", len(b.states),
		"read", t1.Sub(t0), "apply", t2.Sub(t1), "commit", t3.Sub(t2), "append", time.Since(t3))
	return nil
}

// pendingAppend is a batch's events append running behind the batch.
type pendingAppend struct {
	assignment int64
	done       chan struct{}
	err        error // set before done is closed
}

// takeAppending returns the events append of partition's previous batch
// that may still run (nil if none), and forgets it. One of an earlier
// assignment is over: the Log waited for its release before it handed the
// partition out again.
func (s *Sequencer) takeAppending(ctx context.Context, partition int) *pendingAppend {
	s.epochsMu.Lock()
	defer s.epochsMu.Unlock()
	pa := s.appending[partition]
	delete(s.appending, partition)
	if pa == nil || pa.assignment != chat.Assignment(ctx) {
		return nil
	}
	return pa
}

func (s *Sequencer) setAppending(partition int, pa *pendingAppend) {
	s.epochsMu.Lock()
	s.appending[partition] = pa
	s.epochsMu.Unlock()
}

// appendEvents appends a stored batch's outputs to the events log, after
// prev, the previous batch's append (if any), has succeeded: a failed one
// fails this one too, so the Log hands both batches out again.
func (s *Sequencer) appendEvents(ctx context.Context, prev *pendingAppend, outs []*chat.Record, spans *batchSpans) error {
	if prev != nil {
		<-prev.done
		if prev.err != nil {
			spans.fail(prev.err)
			return prev.err
		}
	}
	start := time.Now()
	if len(outs) > 0 {
		if err := s.log.Append(ctx, chat.TopicEvents, outs...); err != nil {
			spans.fail(err)
			return fmt.Errorf("sequencer: append events: %w", err)
		}
		s.eventsAppend.Observe(time.Since(start).Seconds())
	}
	spans.end()
	return nil
}

func (b *batch) state(cid string) (*convState, error) {
	if st, ok := b.states[cid]; ok {
		return st, nil
	}
	st, err := b.loadState(cid)
	if err != nil {
		return nil, err
	}
	b.states[cid] = st
	return st, nil
}

// loadState reads a conversation's state from the store.
func (b *batch) loadState(cid string) (*convState, error) {
	st := &convState{members: map[string]bool{}, messages: map[string]*chat.Message{}, dedups: map[string]string{}, mships: map[string]*chat.Membership{}}
	if k, ok := b.s.knownState(b.partition, cid); ok {
		st.conv, st.exists = k.conv, k.exists
		if k.dedups != nil {
			st.knownDedups, st.dedupSenders = k.dedups, k.dedupSenders
		}
		for _, m := range k.conv.Members {
			st.members[m] = true
		}
		return st, nil
	}
	conv, err := b.s.store.Conversation(b.ctx, cid)
	switch {
	case err == nil:
		if err := b.fillMembers(&conv); err != nil {
			return nil, err
		}
		st.conv, st.exists = conv, true
		for _, m := range conv.Members {
			st.members[m] = true
		}
	case chat.IsNotFound(err):
		// No conversation, so no dedup record: whatever sends it gets
		// from now on, this sequencer applies while it holds the epoch.
		st.knownDedups, st.all = map[string]string{}, true
	default:
		return nil, err
	}
	return st, nil
}

func (b *batch) message(st *convState, mid string) (*chat.Message, error) {
	if m, ok := st.messages[mid]; ok {
		return m, nil
	}
	m, err := b.s.store.Message(b.ctx, st.conv.ID, mid)
	if err != nil {
		return nil, err
	}
	st.messages[mid] = &m
	return &m, nil
}

func (b *batch) membership(st *convState, uid string) (*chat.Membership, error) {
	if m, ok := st.mships[uid]; ok {
		return m, nil
	}
	if m, ok := b.s.knownMembership(b.partition, st.conv.ID, uid); ok {
		st.mships[uid] = &m
		return &m, nil
	}
	m, err := b.s.store.Membership(b.ctx, st.conv.ID, uid)
	if err != nil && !chat.IsNotFound(err) {
		return nil, err
	}
	if err != nil {
		m = chat.Membership{ConversationID: st.conv.ID, UserID: uid}
	}
	st.mships[uid] = &m
	return &m, nil
}

// failed is a command refused for a reason the client must hear.
func failed(cmd *chat.Command, code, format string, args ...any) *chat.Sequenced {
	return &chat.Sequenced{CommandID: cmd.ID, Gateway: cmd.Gateway, Result: chat.Result{ErrCode: code, ErrMessage: fmt.Sprintf(format, args...)}}
}

// isStorageErr separates infrastructure failures (retry) from refusals.
func isStorageErr(err error) bool {
	return err != nil && !chat.IsNotFound(err)
}

// apply turns one command into its sequenced output and store change.
func (b *batch) apply(cmd *chat.Command, offset int64) (*chat.Sequenced, *chat.Change, error) {
	st, err := b.state(cmd.ConversationID)
	if err != nil {
		return nil, nil, err
	}
	base := chat.Position(offset, 0)
	if st.exists && base <= st.conv.LastPosition {
		out, err := b.replayed(cmd, st, offset)
		return out, nil, err
	}
	if b.s.expired(cmd) || b.s.refusedBy(b.partition, cmd) {
		// Not applied before (that is the replay above): refused now, as
		// the gateway answered or will. A new owner catching up after a
		// rebalance thus skips what nobody waits for any more.
		b.expired++
		if cmd.Gateway != "" && !cmd.Deadline.IsZero() && cmd.Deadline.After(b.fence[cmd.Gateway]) {
			b.fence[cmd.Gateway] = cmd.Deadline
		}
		return failed(cmd, chat.CodeUnavailable, "the command expired in the log before it was applied; send it again"), nil, nil
	}
	a := &applier{b: b, st: st, cmd: cmd, offset: offset, at: cmd.At.UTC()}
	if a.at.IsZero() {
		a.at = b.s.now().UTC()
	}
	out, err := a.run()
	if err != nil {
		return nil, nil, err
	}
	if len(a.change.Events) == 0 {
		return out, nil, nil
	}
	out.Events = a.change.Events
	out.Recipients = a.recipients()
	a.change.Conversation = storedState(st.conv)
	a.change.Gateway, a.change.Deadline = cmd.Gateway, cmd.Deadline
	return out, &a.change, nil
}

// replayed answers a command that a previous owner already applied (the
// store is ahead of the committed log offset): it re-emits the stored
// events so live delivery and the waiting gateway still see them.
func (b *batch) replayed(cmd *chat.Command, st *convState, offset int64) (*chat.Sequenced, error) {
	from := chat.Position(offset, 0) - 1
	to := chat.Position(offset, chat.MaxEventsPerCommand-1)
	evs, err := b.s.store.EventsAfter(b.ctx, cmd.ConversationID, from, to, chat.MaxEventsPerCommand)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 && cmd.Op == chat.OpSend {
		// The send stored nothing when it was applied: it was a retry
		// answered from its dedup record (a later command of the
		// conversation is stored, hence the replay), or it was refused.
		// Its answer must still name a message, or say to send again.
		return b.replayedSend(cmd, st)
	}
	out := &chat.Sequenced{CommandID: cmd.ID, Gateway: cmd.Gateway, Events: evs}
	out.Result.Created = len(evs) > 0
	for i := range evs {
		if evs[i].Message != nil {
			out.Result.Message = evs[i].Message
		}
	}
	conv := st.conv
	out.Result.Conversation = &conv
	recips := map[string]bool{}
	for m := range st.members {
		recips[m] = true
	}
	for _, ev := range evs {
		if ev.Type == chat.EventMemberRemoved {
			recips[ev.UserID] = true
		}
	}
	out.Recipients = sortedKeys(recips)
	return out, nil
}

// replayedSend answers a replayed send that stored no events: with the
// message its client_id names, as when it was applied, or, without one,
// unavailable (it was refused; the client sends it again with the same
// client_id, which a stored original then answers).
func (b *batch) replayedSend(cmd *chat.Command, st *convState) (*chat.Sequenced, error) {
	if cmd.ClientID != "" {
		mid, err := b.s.store.Dedup(b.ctx, cmd.ConversationID, cmd.Actor, cmd.ClientID)
		if isStorageErr(err) {
			return nil, err
		}
		if err == nil {
			m, err := b.message(st, mid)
			if isStorageErr(err) {
				return nil, err
			}
			if err == nil {
				mc := *m
				conv := st.conv
				return &chat.Sequenced{CommandID: cmd.ID, Gateway: cmd.Gateway,
					Result: chat.Result{Message: &mc, Conversation: &conv}}, nil
			}
		}
	}
	return failed(cmd, chat.CodeUnavailable, "the send was not applied; send it again"), nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hasPrefetched reports whether the dedup record of a send was looked up
// before the batch (found or not).
func (b *batch) hasPrefetched(cid, sender, clientID string) bool {
	_, ok := b.prefetched[dedupKey(cid, sender, clientID)]
	return ok
}

// holdIfAppending takes the batch's commit hold when it has events to
// append (n > 0), and leaves the batch unheld otherwise.
func holdIfAppending(ctx context.Context, n int) func(error) {
	if n == 0 {
		return nil
	}
	return chat.HoldCommit(ctx)
}
