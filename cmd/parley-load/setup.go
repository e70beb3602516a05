package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// parallel runs fn(0) … fn(n-1) on at most conc goroutines and returns the
// first error (the rest are skipped once one fails).
func parallel(ctx context.Context, n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < min(conc, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

func userNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return names
}

func signInAll(ctx context.Context, c config, names []string) ([]string, error) {
	tokens := make([]string, len(names))
	var done atomic.Int64
	c.prog.set("signing in", func() string { return fmt.Sprintf("%d/%d", done.Load(), len(names)) })
	err := parallel(ctx, len(names), c.Conc, func(i int) error {
		t, err := signIn(ctx, c.URL, names[i])
		tokens[i] = t
		done.Add(1)
		return err
	})
	return tokens, err
}

// makeRoom creates a group conversation of names, owned by the first, and
// returns its id.
func makeRoom(ctx context.Context, c config, token string, names []string) (string, error) {
	var conv struct {
		ID string `json:"id"`
	}
	const atCreate = 249 // chat.MaxCreateMembers less the creator
	first := names[1:min(len(names), atCreate+1)]
	if err := call(ctx, c.URL, "POST", "/v1/conversations", token, map[string]any{"kind": "group", "title": "load", "members": first}, &conv); err != nil {
		return "", err
	}
	rest := names[min(len(names), atCreate+1):]
	var done atomic.Int64
	c.prog.set("adding members", func() string { return fmt.Sprintf("%d/%d", done.Load(), len(rest)) })
	err := parallel(ctx, len(rest), c.Conc, func(i int) error {
		done.Add(1)
		return callIdempotent(ctx, c.URL, "PUT", "/v1/conversations/"+conv.ID+"/members/"+rest[i], token)
	})
	return conv.ID, err
}

// connectAll opens one connection per token over --transport.
func connectAll(ctx context.Context, c config, tokens []string) ([]*client, error) {
	conns := make([]*client, len(tokens))
	var done atomic.Int64
	c.prog.set("connecting "+c.Transport, func() string { return fmt.Sprintf("%d/%d", done.Load(), len(tokens)) })
	err := parallel(ctx, len(tokens), c.Conc, func(i int) error {
		cl, err := connect(ctx, c.Transport, c.URL, tokens[i], "")
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = cl
		done.Add(1)
		return nil
	})
	if err != nil {
		closeAll(conns)
	}
	return conns, err
}

func closeAll(conns []*client) {
	for _, cl := range conns {
		if cl != nil {
			cl.Close()
		}
	}
}

// sender is a WebSocket connection that sends messages and counts the
// answers: acks, error frames, and the ref of each refused send.
type sender struct {
	cl      *client
	acked   atomic.Int64
	refused atomic.Int64
	done    chan struct{}

	mu          sync.Mutex
	unavailable []string // refs of sends answered unavailable, for again
}

func newSender(ctx context.Context, c config, token string) (*sender, error) {
	cl, err := connect(ctx, "ws", c.URL, token, "")
	if err != nil {
		return nil, err
	}
	s := &sender{cl: cl, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			lines, err := cl.Next(ctx)
			if err != nil {
				return
			}
			for _, l := range lines {
				switch {
				case bytes.Contains(l, []byte(`"type":"ack"`)):
					s.acked.Add(1)
				case bytes.Contains(l, []byte(`"type":"error"`)):
					s.noteRefused(l)
					s.refused.Add(1)
				}
			}
		}
	}()
	return s, nil
}

func (s *sender) send(ctx context.Context, cid, ref, text string) error {
	f, _ := json.Marshal(map[string]any{"type": "send", "ref": ref, "conversation_id": cid, "client_id": "c" + ref, "text": text})
	return s.cl.Send(ctx, f)
}

// waitAcks waits until n answers came or d passed.
func (s *sender) waitAcks(n int64, d time.Duration) {
	deadline := time.Now().Add(d)
	for s.acked.Load()+s.refused.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *sender) Close() { s.cl.Close(); <-s.done }

// noteRefused remembers the ref of a send answered unavailable (the
// server was too busy to sequence it in time; it was not applied).
func (s *sender) noteRefused(line []byte) {
	var f struct {
		Ref   string `json:"ref"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(line, &f) != nil || f.Error.Code != "unavailable" || f.Ref == "" {
		return
	}
	s.mu.Lock()
	s.unavailable = append(s.unavailable, f.Ref)
	s.mu.Unlock()
}

// takeUnavailable returns the refs answered unavailable so far and forgets
// them.
func (s *sender) takeUnavailable() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := s.unavailable
	s.unavailable = nil
	return refs
}

var marker = []byte(`"type":"message.created"`)

// stamp is a message text that carries the time it was due to be sent, so
// that each receiver can time its delivery without asking anyone.
func stamp(due time.Time, size int) string {
	s := "t" + strconv.FormatInt(due.UnixNano(), 10) + "-"
	return s + strings.Repeat("x", max(0, size-len(s)))
}

// stamped finds a stamp in a delivered object.
func stamped(line []byte) (time.Time, bool) {
	i := bytes.Index(line, []byte(`"t`))
	for i >= 0 {
		rest := line[i+2:]
		j := bytes.IndexByte(rest, '-')
		if j > 0 {
			if ns, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil && ns > 1e18 {
				return time.Unix(0, ns), true
			}
		}
		k := bytes.Index(rest, []byte(`"t`))
		if k < 0 {
			break
		}
		i += 2 + k
	}
	return time.Time{}, false
}

// waitDelivered waits until got reaches want, or nothing arrived for
// --stall, or ctx ends.
func waitDelivered(ctx context.Context, c config, got *atomic.Int64, want int64) {
	last, lastAt := got.Load(), time.Now()
	for got.Load() < want && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := got.Load(); n != last {
			last, lastAt = n, time.Now()
		} else if time.Since(lastAt) > c.Stall {
			return
		}
	}
}

func rssKiB(pid int) (int, error) {
	b, err := readProc(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// syscalls reads the read and write system calls a process has made so far
// from /proc/<pid>/io (every file and socket of the process counts).
func syscalls(pid int) (reads, writes int64, err error) {
	b, err := readProc(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes, nil
}

// syscallMeter counts a server's system calls over a phase, when --pid is
// given.
type syscallMeter struct {
	pid           int
	reads, writes int64
}

func startSyscalls(pid int) *syscallMeter {
	m := &syscallMeter{pid: pid}
	if pid != 0 {
		m.reads, m.writes, _ = syscalls(pid)
	}
	return m
}

// stop puts the phase's write system calls, and their number per delivery,
// into r.
func (m *syscallMeter) stop(r *Result) {
	if m.pid == 0 {
		return
	}
	_, w, err := syscalls(m.pid)
	if err != nil {
		return
	}
	r.WriteSyscalls = w - m.writes
	if r.Delivered > 0 {
		r.WritesPerDelivery = float64(r.WriteSyscalls) / float64(r.Delivered)
	}
}

// procFiles are the /proc files read so far, kept open: the idle scenario
// reads them while it holds as many sockets as the file limit allows, when
// opening one more file fails (EMFILE).
var procFiles struct {
	sync.Mutex
	open map[string]*os.File
}

// readProc reads a /proc file through a descriptor opened on first use
// and kept (each read from offset 0 is a fresh reading).
func readProc(path string) ([]byte, error) {
	procFiles.Lock()
	defer procFiles.Unlock()
	f := procFiles.open[path]
	if f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		if procFiles.open == nil {
			procFiles.open = map[string]*os.File{}
		}
		procFiles.open[path] = f
	}
	buf := make([]byte, 16<<10)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// setupRetries bounds the attempts of an idempotent setup request.
const setupRetries = 6

// callIdempotent makes an idempotent setup request (adding a member), again
// after a 503 (unavailable: the server was too busy to sequence it in time,
// as on a loaded machine), with a growing pause; any other answer is final.
// Only setup retries: what a scenario measures never does.
func callIdempotent(ctx context.Context, base, method, path, token string) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := call(ctx, base, method, path, token, nil, nil)
		var he *httpError
		if err == nil || attempt == setupRetries || !errors.As(err, &he) || he.Status != 503 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
