// Package submit is a gateway's command submission pipeline: it appends
// commands to the commands log through a few ordered lanes, many commands
// per Append, and hands each caller the result the sequencer made for its
// command.
//
// Its answers are truthful: a caller hears "unavailable" only when the
// command was never appended, or when it can no longer be applied. A
// command carries a deadline; the sequencer refuses a command it reaches
// more than chat.ExpiryGrace after that deadline; the submitter waits for the
// result until Settle after that, so an applied command's result has come
// by then, and a command whose result has not come never will be applied.
package submit

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/parleychat/parley/chat"
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

// Config is what a submitter is wired to.
type Config struct {
	// Gateway is the id that results come back under.
	Gateway string
	Log     chat.Log
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
}

// Submitter appends commands and routes their results to their callers.
type Submitter struct {
	cfg    Config
	logger *slog.Logger
	lanes  []chan queued

	mu      sync.Mutex
	waiting map[string]*waiter

	inflight sync.WaitGroup
}

type waiter struct {
	once  sync.Once
	done  func(chat.Result, error)
	timer *time.Timer
	span  trace.Span // "submit", ended with the answer
}

// queued is a command waiting for its lane's appender.
type queued struct {
	id  string
	rec *chat.Record
	at  time.Time
}

// maxAppendBatch bounds the commands of one Append.
const maxAppendBatch = 512

// New returns a submitter; Run starts its appenders.
func New(cfg Config) *Submitter {
	if cfg.Lanes <= 0 {
		cfg.Lanes = 16
	}
	cfg.Lanes = min(cfg.Lanes, cfg.Log.Partitions())
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Submitter{cfg: cfg, logger: logger.With("component", "submit"), lanes: make([]chan queued, cfg.Lanes), waiting: map[string]*waiter{}}
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
func (s *Submitter) Submit(ctx context.Context, cmd *chat.Command, done func(chat.Result, error)) {
	s.inflight.Add(1)
	cmd.ID = chat.NewID("cmd")
	cmd.Gateway = s.cfg.Gateway
	cmd.At = time.Now().UTC()
	deadline, giveUp := Deadlines(cmd.At, s.cfg.Timeout)
	cmd.Deadline = deadline
	ctx, span := tracing.Tracer().Start(ctx, "submit", trace.WithSpanKind(trace.SpanKindProducer))
	cmd.Trace = tracing.Inject(ctx)
	w := &waiter{done: done, span: span}
	val, err := json.Marshal(cmd)
	if err != nil {
		s.finish(w, chat.Result{}, err)
		return
	}
	// Past giveUp the sequencer refuses the command if it has not applied
	// it, and the result of an applied one has come: "unavailable" is
	// then the truth.
	w.timer = time.AfterFunc(time.Until(giveUp), func() {
		s.fail(cmd.ID, "timed out waiting for the sequencer")
	})
	s.mu.Lock()
	s.waiting[cmd.ID] = w
	s.mu.Unlock()
	lane := s.lanes[chat.PartitionOf(cmd.ConversationID, s.cfg.Log.Partitions())%len(s.lanes)]
	q := queued{id: cmd.ID, rec: &chat.Record{Key: cmd.ConversationID, Value: val}, at: cmd.At}
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
		s.fail(cmd.ID, "the command log is too busy")
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
	s.mu.Unlock()
	if w != nil {
		w.timer.Stop()
		s.finish(w, r, r.Err())
	}
}

// fail answers a waiting command unavailable.
func (s *Submitter) fail(id, msg string) {
	s.mu.Lock()
	w := s.waiting[id]
	delete(s.waiting, id)
	s.mu.Unlock()
	if w != nil {
		w.timer.Stop()
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
// ctx is done.
//
// A failed Append does not answer its commands: the log may have taken
// them all the same (a lost acknowledgement), so they wait for their
// result like any other until the sequencer would refuse them.
func (s *Submitter) appender(ctx context.Context, lane chan queued) {
	batch := make([]queued, 0, maxAppendBatch)
	recs := make([]*chat.Record, 0, maxAppendBatch)
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
		for _, q := range batch {
			recs = append(recs, q.rec)
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		err := s.cfg.Log.Append(actx, chat.TopicCommands, recs...)
		cancel()
		if err != nil {
			s.logger.Warn("appending commands failed; they are answered once they can no longer be applied", "err", err, "commands", len(batch))
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
