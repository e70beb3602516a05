// Package submit is a gateway's command submission pipeline: it appends
// commands to the commands log through a few ordered lanes, many commands
// per Append, and hands each caller the result the sequencer made for its
// command.
//
// Its answers are truthful: a caller hears "unavailable" only when the
// command was never appended, or when it can no longer be applied. A
// command carries a deadline; the sequencer refuses a command it reaches
// more than chat.ExpiryGrace after that deadline. A command whose result
// has not come a little after that is fenced in the Store
// (chat.Store.Refuse) before the caller hears "unavailable": the fence
// either makes the command unstorable for good, or finds that the
// sequencer has stored it (or one after it), and then a send is answered
// from its dedup record, or the caller waits for the result, which
// follows. A gateway's commands to one partition carry strictly growing
// deadlines in log order, which is what the fence relies on.
package submit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/tracing"
)

// Settle is how long the result of a command the sequencer applied at the
// last moment may take to come back: its store commit, its events record
// and the read of that record.
const Settle = time.Second

// minLead is the shortest time a command may take to reach the sequencer.
const minLead = 500 * time.Millisecond

// Deadlines returns, for a command submitted at at by a caller willing to
// wait timeout, the deadline it carries and the time the submitter gives
// up waiting: at+timeout, unless timeout is too short to leave the
// command minLead to reach the sequencer.
func Deadlines(at time.Time, timeout time.Duration) (deadline, giveUp time.Time) {
	deadline = at.Add(max(timeout-chat.ExpiryGrace-Settle, minLead))
	return deadline, deadline.Add(chat.ExpiryGrace + Settle)
}

// Refuser is what the submitter needs of the Store: the fence
// (chat.Store.Refuse), and the dedup record and message of a send the
// fence found stored, to answer it without waiting for the events log.
type Refuser interface {
	Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (bool, error)
	Dedup(ctx context.Context, conversationID, senderID, clientID string) (string, error)
	Message(ctx context.Context, conversationID, messageID string) (chat.Message, error)
}

// Config is what a submitter is wired to.
type Config struct {
	// Gateway is the id that results come back under.
	Gateway string
	Log     chat.Log
	// Store fences the commands whose result does not come in time
	// (required).
	Store Refuser
	// Timeout is how long a caller waits for its result at most (at
	// least chat.ExpiryGrace+Settle+minLead is waited).
	Timeout time.Duration
	Logger  *slog.Logger
	// Lanes is how many appenders run side by side (default 16, at most
	// one per partition).
	Lanes int
	// OnAppended, if set, is told how long each command took from Submit
	// until the log accepted it.
	OnAppended func(time.Duration)
	// ShedAfter is how long a partition's oldest command may wait for its
	// result before new commands to that partition are answered
	// "unavailable" at once, unappended (see shed.go). 0 is two thirds of
	// the time the sequencer has to reach a command; negative never sheds.
	ShedAfter time.Duration
}

// Submitter appends commands and routes their results to their callers.
type Submitter struct {
	cfg    Config
	logger *slog.Logger
	lanes  []chan queued

	mu       sync.Mutex
	waiting  map[string]*waiter
	backlogs []backlog // by partition: its commands waiting, oldest first
	shed     atomic.Int64

	fenceMu sync.Mutex
	fences  map[int]*fencer // by partition

	inflight sync.WaitGroup
}

type waiter struct {
	once  sync.Once
	done  func(chat.Result, error)
	timer *time.Timer
	span  trace.Span // "submit", ended with the answer
	// partition, and deadline and appending, set by the appender (under
	// Submitter.mu) before the command is appended: the deadline it
	// carries, and that it may be in the log from then on.
	partition int
	deadline  time.Time
	appending bool
	cmd       *chat.Command // the command as appended (its copy)
	// cap answers the caller if nothing else did by giveUp + refuseLimit;
	// passed (under Submitter.mu) is set when the fence found the command
	// passed, and then it does not.
	cap    *time.Timer
	passed bool
	// at is when the command was submitted; listed, prev and next link it
	// into its partition's backlog until its fence starts (shed.go).
	at         time.Time
	listed     bool
	prev, next *waiter
}

// queued is a command waiting for its lane's appender.
type queued struct {
	id  string
	cmd *chat.Command
	at  time.Time
}

// refuseTimeout bounds one call of Store.Refuse; refuseLimit is how long
// after giving up the submitter keeps trying to fence a command when the
// Store does not answer, before it answers "unavailable" unfenced (the
// Store is down: see Submit).
const (
	refuseTimeout = 500 * time.Millisecond
	refuseLimit   = 750 * time.Millisecond
	refusePause   = 100 * time.Millisecond
	// fenceLead is how long after the sequencer's own expiry (deadline +
	// chat.ExpiryGrace) the fence starts.
	fenceLead = Settle / 4
)

// capped answers a command nobody answered by its cap: unfenced, since
// the Store did not answer the fence (a command the fence found passed
// waits for its result instead).
func (s *Submitter) capped(id string) {
	s.mu.Lock()
	w := s.waiting[id]
	if w != nil && w.passed {
		w = nil
	}
	if w != nil {
		delete(s.waiting, id)
		s.unlist(w)
	}
	s.mu.Unlock()
	if w != nil {
		s.logger.Warn("answering unavailable unfenced: the Store did not answer the fence in time", "command", id, "partition", w.partition)
		w.timer.Stop()
		s.finish(w, chat.Result{}, chat.Errorf(chat.CodeUnavailable, "timed out waiting for the sequencer"))
	}
}

// maxAppendBatch bounds the commands of one Append.
const maxAppendBatch = 512

// New returns a submitter; Run starts its appenders.
func New(cfg Config) *Submitter {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 16
	}
	cfg.Lanes = min(cfg.Lanes, cfg.Log.Partitions())
	if cfg.ShedAfter == 0 {
		cfg.ShedAfter = defaultShedAfter(cfg.Timeout)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Submitter{cfg: cfg, logger: logger.With("component", "submit"), lanes: make([]chan queued, cfg.Lanes), waiting: map[string]*waiter{}, fences: map[int]*fencer{}, backlogs: make([]backlog, cfg.Log.Partitions())}
	for i := range s.lanes {
		s.lanes[i] = make(chan queued, 1024)
	}
	return s
}

// Run appends queued commands until ctx is done.
func (s *Submitter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, lane := range s.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.appender(ctx, lane)
		}()
	}
	wg.Wait()
}

// Submit appends cmd (filling its ID, Gateway, At and Deadline) and calls
// done exactly once: with the sequencer's result (and its error, if it
// refused the command), or with CodeUnavailable when the command was never
// appended or can no longer be applied. The command's conversation keeps
// its order: its commands take one lane. Submit waits only while that
// lane is full.
//
// When no result has come by a quarter of Settle after the sequencer's
// own expiry, the command is fenced (Store.Refuse) before "unavailable"
// is answered; when the fence finds the command passed, a send is
// answered from its dedup record, or the caller waits on for its result.
// The one exception: when the Store has not answered the fence by the
// give-up time plus refuseLimit (the Store itself is down),
// "unavailable" is answered all the same, so that a caller is never kept
// waiting on a dead engine; a command whose batch the sequencer claimed
// just before the Store failed can then still be applied when it
// returns.
//
// While the partition is behind (shed.go), done is called at once with
// CodeUnavailable and nothing is appended.
func (s *Submitter) Submit(ctx context.Context, cmd *chat.Command, done func(chat.Result, error)) {
	now := time.Now()
	partition := chat.PartitionOf(cmd.ConversationID, s.cfg.Log.Partitions())
	s.mu.Lock()
	behind := s.behind(partition, now)
	s.mu.Unlock()
	if behind {
		s.shed.Add(1)
		done(chat.Result{}, chat.Errorf(chat.CodeUnavailable, "the conversation's earlier messages are still waiting for the sequencer"))
		return
	}
	s.inflight.Add(1)
	cmd.ID = chat.NewID("cmd")
	cmd.Gateway = s.cfg.Gateway
	cmd.At = now.UTC()
	deadline, giveUp := Deadlines(cmd.At, s.cfg.Timeout)
	cmd.Deadline = deadline
	// The appender sets the deadline it carries: a copy, so the caller's
	// command is not written to meanwhile.
	ctx, span := tracing.Tracer().Start(ctx, "submit", trace.WithSpanKind(trace.SpanKindProducer))
	cmd.Trace = tracing.Inject(ctx)
	c := *cmd
	w := &waiter{done: done, partition: partition, cmd: &c, span: span, at: now}
	// The fence starts a little before the answer is due, so that a
	// caller hears "unavailable" by giveUp although the fence takes a
	// round trip to the Store; the sequencer refuses the command itself
	// from deadline + chat.ExpiryGrace on, so this costs no command that
	// could still be applied in time. Past giveUp + refuseLimit the
	// caller is answered whatever the fence does (see Submit's doc).
	fenceAt := deadline.Add(chat.ExpiryGrace + fenceLead)
	w.timer = time.AfterFunc(time.Until(fenceAt), func() { s.giveUp(c.ID) })
	w.cap = time.AfterFunc(time.Until(giveUp.Add(refuseLimit)), func() { s.capped(c.ID) })
	s.mu.Lock()
	s.waiting[c.ID] = w
	s.enlist(w)
	s.mu.Unlock()
	lane := s.lanes[partition%len(s.lanes)]
	q := queued{id: c.ID, cmd: &c, at: c.At}
	select {
	case lane <- q: // the usual case: no timer for it
		return
	default:
	}
	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	select {
	case lane <- q:
	case <-wait.C:
		// Never appended: it cannot be applied.
		s.fail(c.ID, "the command log is too busy")
	}
}

// giveUp answers a command whose result has not come: "unavailable" at
// once if the appender never took it (it never will: see take), else
// once the Store's fence rules it out. The commands of a partition that
// give up together are fenced together, with one Refuse up to the latest
// deadline among them: under load many give up at once, and one
// lightweight transaction each would load the Store further.
func (s *Submitter) giveUp(id string) {
	s.mu.Lock()
	w := s.waiting[id]
	if w != nil {
		s.unlist(w)
		if !w.appending {
			delete(s.waiting, id)
		}
	}
	s.mu.Unlock()
	switch {
	case w == nil:
		return
	case !w.appending:
		s.finish(w, chat.Result{}, chat.Errorf(chat.CodeUnavailable, "the command log is too busy"))
		return
	}
	s.fenceMu.Lock()
	f := s.fences[w.partition]
	if f == nil {
		f = &fencer{}
		s.fences[w.partition] = f
	}
	f.pending = append(f.pending, id)
	if f.deadline.Before(w.deadline) {
		f.deadline = w.deadline
	}
	run := !f.running
	f.running = true
	s.fenceMu.Unlock()
	if run {
		s.fence(w.partition, f)
	}
}

// fencer gathers the commands of one partition that gave up while its
// previous Refuse ran.
type fencer struct {
	running  bool
	pending  []string
	deadline time.Time // the latest among pending
	floor    time.Time // the floor this submitter set last
}

// fence fences f's pending commands, round after round, until none is
// left.
func (s *Submitter) fence(partition int, f *fencer) {
	for {
		s.fenceMu.Lock()
		ids, d, floor := f.pending, f.deadline, f.floor
		f.pending, f.deadline = nil, time.Time{}
		if len(ids) == 0 {
			f.running = false
			s.fenceMu.Unlock()
			return
		}
		s.fenceMu.Unlock()
		if !d.After(floor) {
			// Fenced already, by an earlier round.
			for _, id := range ids {
				s.fail(id, "timed out waiting for the sequencer")
			}
			continue
		}
		refused, err := s.refuse(partition, d)
		switch {
		case err != nil:
			s.logger.Warn("could not fence commands whose results did not come; answering unavailable unfenced", "partition", partition, "commands", len(ids), "err", err)
			for _, id := range ids {
				s.fail(id, "timed out waiting for the sequencer")
			}
		case refused:
			s.fenceMu.Lock()
			if d.After(f.floor) {
				f.floor = d
			}
			s.fenceMu.Unlock()
			for _, id := range ids {
				s.fail(id, "timed out waiting for the sequencer")
			}
		default:
			// The sequencer has passed them (a change at or after d is
			// stored): their results follow. A stored send is answered
			// from the Store meanwhile (the events log may be what is
			// slow, or down).
			s.mu.Lock()
			for _, id := range ids {
				if w := s.waiting[id]; w != nil {
					w.passed = true
				}
			}
			s.mu.Unlock()
			for _, id := range ids {
				go s.answerStored(id)
			}
		}
	}
}

// storedTries and storedPause pace the reads of a passed send's dedup
// record: in Cassandra a claimed batch's rows follow its claim.
const (
	storedTries = 5
	storedPause = 200 * time.Millisecond
)

// answerStored answers a passed send from the Store when its dedup record
// is there: the message it names, created by this command when its time
// is the command's (a retried client_id answers the first message, as
// the sequencer would). Other commands, and a send found nowhere (the
// sequencer refused it, or its rows are late), wait for their results.
func (s *Submitter) answerStored(id string) {
	s.mu.Lock()
	w := s.waiting[id]
	s.mu.Unlock()
	if w == nil || w.cmd.Op != chat.OpSend || w.cmd.ClientID == "" {
		return
	}
	cmd := w.cmd
	for try := 0; try < storedTries; try++ {
		if try > 0 {
			time.Sleep(storedPause)
		}
		ctx, cancel := context.WithTimeout(context.Background(), refuseTimeout)
		mid, err := s.cfg.Store.Dedup(ctx, cmd.ConversationID, cmd.Actor, cmd.ClientID)
		var m chat.Message
		if err == nil {
			m, err = s.cfg.Store.Message(ctx, cmd.ConversationID, mid)
		}
		cancel()
		if err == nil {
			s.Resolve(id, chat.Result{Created: m.CreatedAt.Equal(cmd.At), Message: &m})
			return
		}
	}
	s.logger.Info("a result is late; waiting for it, as the sequencer passed the command", "command", id, "partition", w.partition)
}

// refuse calls Store.Refuse until it answers or refuseLimit passes.
func (s *Submitter) refuse(partition int, d time.Time) (bool, error) {
	limit := time.Now().Add(refuseLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), refuseTimeout)
		refused, err := s.cfg.Store.Refuse(ctx, partition, s.cfg.Gateway, d)
		cancel()
		if err == nil || time.Now().After(limit) {
			return refused, err
		}
		time.Sleep(refusePause)
	}
}

// Wait is Submit for a caller that blocks until the answer.
func (s *Submitter) Wait(ctx context.Context, cmd *chat.Command) (chat.Result, error) {
	type answer struct {
		res chat.Result
		err error
	}
	ch := make(chan answer, 1)
	s.Submit(ctx, cmd, func(res chat.Result, err error) { ch <- answer{res, err} })
	a := <-ch
	return a.res, a.err
}

// Resolve hands a command's result to its caller, if one waits here.
func (s *Submitter) Resolve(id string, r chat.Result) {
	s.mu.Lock()
	w := s.waiting[id]
	delete(s.waiting, id)
	if w != nil {
		s.unlist(w)
	}
	s.mu.Unlock()
	if w != nil {
		w.timer.Stop()
		w.cap.Stop()
		s.finish(w, r, r.Err())
	}
}

// fail answers a waiting command unavailable.
func (s *Submitter) fail(id, msg string) {
	s.mu.Lock()
	w := s.waiting[id]
	delete(s.waiting, id)
	if w != nil {
		s.unlist(w)
	}
	s.mu.Unlock()
	if w != nil {
		w.timer.Stop()
		w.cap.Stop()
		s.finish(w, chat.Result{}, chat.Errorf(chat.CodeUnavailable, "%s", msg))
	}
}

func (s *Submitter) finish(w *waiter, r chat.Result, err error) {
	w.once.Do(func() {
		if err != nil {
			w.span.SetStatus(codes.Error, chat.ErrorCode(err))
		}
		w.span.End()
		w.done(r, err)
		s.inflight.Done()
	})
}

// Drain waits until every submitted command has its answer, or ctx ends.
func (s *Submitter) Drain(ctx context.Context) {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// appender appends one lane's queued commands to the commands log in queue
// order, all that queued during the previous Append in the next one, until
// ctx is done. It gives each command its final deadline: above the
// previous one of the same partition, so a gateway's deadlines grow in log
// order (the Store's fence relies on it).
//
// A failed Append does not answer its commands at once: the log may have
// taken them all the same (a lost acknowledgement). They are fenced
// (Store.Refuse) before anything newer of their partitions is appended;
// where the fence holds they are answered "unavailable", else (the
// sequencer has them) they wait for their results like any other.
func (s *Submitter) appender(ctx context.Context, lane chan queued) {
	batch := make([]queued, 0, maxAppendBatch)
	recs := make([]*chat.Record, 0, maxAppendBatch)
	last := map[int]time.Time{} // the latest deadline appended, by partition
	for {
		batch, recs = batch[:0], recs[:0]
		select {
		case <-ctx.Done():
			return
		case q := <-lane:
			batch = append(batch, q)
		}
	gather:
		for len(batch) < maxAppendBatch {
			select {
			case q := <-lane:
				batch = append(batch, q)
			default:
				break gather
			}
		}
		taken := batch[:0]
		for _, q := range batch {
			if rec := s.take(q, last); rec != nil {
				taken = append(taken, q)
				recs = append(recs, rec)
			}
		}
		batch = taken
		if len(recs) == 0 {
			continue
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		err := s.cfg.Log.Append(actx, chat.TopicCommands, recs...)
		cancel()
		if err != nil {
			s.logger.Warn("appending commands failed; fencing them", "err", err, "commands", len(batch))
			s.fenceFailed(ctx, batch)
			continue
		}
		if s.cfg.OnAppended != nil {
			now := time.Now()
			for _, q := range batch {
				s.cfg.OnAppended(now.Sub(q.at))
			}
		}
	}
}

// take gives a queued command its final deadline and encodes it, or
// returns nil when its caller was answered already (it gave up while the
// command queued): such a command is never appended.
func (s *Submitter) take(q queued, last map[int]time.Time) *chat.Record {
	p := chat.PartitionOf(q.cmd.ConversationID, s.cfg.Log.Partitions())
	d := q.cmd.Deadline
	if prev, ok := last[p]; ok && !d.After(prev) {
		d = prev.Add(time.Microsecond)
	}
	q.cmd.Deadline = d
	val, err := record.EncodeCommand(q.cmd)
	s.mu.Lock()
	w := s.waiting[q.id]
	if w != nil && err == nil {
		w.deadline, w.appending = d, true
	}
	s.mu.Unlock()
	if w == nil {
		return nil
	}
	if err != nil {
		s.fail(q.id, "the command could not be encoded")
		return nil
	}
	last[p] = d
	return &chat.Record{Key: q.cmd.ConversationID, Value: val}
}

// fenceFailed fences the commands of a failed Append, per partition up to
// the latest deadline among them, retrying until the Store answers (or
// ctx ends): meanwhile nothing newer is appended from this lane, and
// callers that queue give up as "too busy", never appended.
func (s *Submitter) fenceFailed(ctx context.Context, batch []queued) {
	latest := map[int]time.Time{}
	for _, q := range batch {
		p := chat.PartitionOf(q.cmd.ConversationID, s.cfg.Log.Partitions())
		if q.cmd.Deadline.After(latest[p]) {
			latest[p] = q.cmd.Deadline
		}
	}
	refused := map[int]bool{}
	for p, d := range latest {
		for {
			rctx, cancel := context.WithTimeout(ctx, refuseTimeout)
			ok, err := s.cfg.Store.Refuse(rctx, p, s.cfg.Gateway, d)
			cancel()
			if err == nil {
				refused[p] = ok
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.logger.Warn("fencing commands of a failed append; retrying", "partition", p, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(refusePause):
			}
		}
	}
	for _, q := range batch {
		if refused[chat.PartitionOf(q.cmd.ConversationID, s.cfg.Log.Partitions())] {
			s.fail(q.id, "the command log is unavailable")
		} else {
			go s.answerStored(q.id)
		}
	}
}
