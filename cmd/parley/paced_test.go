package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// pacedLoad offers sends at a fixed rate over WebSocket connections, each
// connection behaving like a chat client's outbox: up to pacedWindow sends
// in flight, acknowledged by ref, the rest queued in order. A send
// refused as unavailable (503's twin) keeps its place and is sent again
// with the same client_id after a backoff (1 s, doubling up to 8 s), so it
// is stored once whatever became of the first try. New sends queue meanwhile instead of piling
// retries onto a server that is catching up. It runs until stop is
// closed, then waits for every send to be acknowledged.
type pacedLoad struct {
	t *testing.T

	mu       sync.Mutex
	acked    map[string]map[string]bool // conversation -> message ids
	ackTimes []time.Time
	offered  int
	retries  int
	refs     map[string]*pacedSend // in flight, by ref
	conns    []*pacedConn
	closed   bool
	failed   bool
}

// pacedWindow is how many sends a connection has in flight at most.
const pacedWindow = 512

// pacedRetryAfter is how long a refused send waits before its second
// try; each later try waits twice as long, up to pacedRetryMax, as a
// client backs off from a server that is catching up.
const (
	pacedRetryAfter = time.Second
	pacedRetryMax   = 8 * time.Second
)

type pacedSend struct {
	cid, clientID string
	attempt       int
	conn          *pacedConn
}

type pacedConn struct {
	ws       *websocket.Conn
	out      chan []byte
	queue    []*pacedSend
	inFlight int
}

// startPacedLoad connects conns connections per token (token k to
// bases[k]) and offers rate sends a second round robin over convs.
func startPacedLoad(t *testing.T, bases, tokens, convs []string, conns, rate int, stop <-chan struct{}) (*pacedLoad, <-chan struct{}) {
	t.Helper()
	if rate < 1 || conns < 1 || len(convs) == 0 || len(bases) != len(tokens) {
		t.Fatalf("startPacedLoad: rate %d, %d connections per token, %d conversations, %d bases for %d tokens", rate, conns, len(convs), len(bases), len(tokens))
	}
	l := &pacedLoad{t: t, acked: map[string]map[string]bool{}, refs: map[string]*pacedSend{}}
	for _, c := range convs {
		l.acked[c] = map[string]bool{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for k := range tokens {
		for range conns {
			u := strings.Replace(bases[k], "http://", "ws://", 1) + "/v1/ws?access_token=" + tokens[k]
			ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"parley.v1"}})
			if err != nil {
				cancel()
				t.Fatalf("load connection: %v", err)
			}
			ws.SetReadLimit(16 << 20)
			pc := &pacedConn{ws: ws, out: make(chan []byte, 2*pacedWindow)}
			l.conns = append(l.conns, pc)
			workers.Add(2)
			go func() {
				defer workers.Done()
				for {
					select {
					case <-ctx.Done():
						return
					case f := <-pc.out:
						if err := ws.Write(ctx, websocket.MessageText, f); err != nil {
							return
						}
					}
				}
			}()
			go func() {
				defer workers.Done()
				l.read(ctx, pc)
			}()
		}
	}
	done := make(chan struct{})
	// A test that fails before it closes stop still stops the load, before
	// the cluster's nodes go (cleanups run last-registered first): the load
	// must not report into a test that has ended.
	quit := make(chan struct{})
	t.Cleanup(func() {
		close(quit)
		<-done
	})
	go func() {
		defer close(done)
		defer func() {
			l.mu.Lock()
			l.closed = true
			l.mu.Unlock()
			cancel()
			for _, pc := range l.conns {
				pc.ws.CloseNow()
			}
			workers.Wait()
		}()
		start := time.Now()
		for n := 0; ; n++ {
			select {
			case <-stop:
				l.finish()
				return
			case <-quit:
				return
			default:
			}
			if d := time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
			s := &pacedSend{cid: convs[n%len(convs)], clientID: fmt.Sprintf("p%d", n), conn: l.conns[n%len(l.conns)]}
			l.mu.Lock()
			l.offered++
			s.conn.queue = append(s.conn.queue, s)
			l.pump(s.conn)
			l.mu.Unlock()
		}
	}()
	return l, done
}

// pump sends queued sends while the window allows; l.mu is held.
func (l *pacedLoad) pump(pc *pacedConn) {
	for len(pc.queue) > 0 && pc.inFlight < pacedWindow {
		s := pc.queue[0]
		pc.queue = pc.queue[1:]
		pc.inFlight++
		l.transmit(s)
	}
}

// transmit sends s (again); l.mu is held.
func (l *pacedLoad) transmit(s *pacedSend) {
	if l.closed {
		return
	}
	s.attempt++
	ref := fmt.Sprintf("%s#%d", s.clientID, s.attempt)
	f, _ := json.Marshal(map[string]any{"type": "send", "ref": ref, "conversation_id": s.cid, "client_id": s.clientID, "text": "load " + s.clientID})
	l.refs[ref] = s
	select {
	case s.conn.out <- f:
	default:
		l.failLocked("load connection backed up: the gateway stopped reading")
	}
}

func (l *pacedLoad) failLocked(format string, args ...any) {
	if !l.failed {
		l.failed = true
		l.t.Errorf(format, args...)
	}
}

// read handles a connection's acks and errors; events are skipped
// without decoding (the watchers check those).
func (l *pacedLoad) read(ctx context.Context, pc *pacedConn) {
	for {
		_, data, err := pc.ws.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.mu.Lock()
				l.failLocked("load connection closed: %v", err)
				l.mu.Unlock()
			}
			return
		}
		if !bytes.Contains(data, []byte(`"ref"`)) {
			continue
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f struct {
				Type    string `json:"type"`
				Ref     string `json:"ref"`
				Message struct {
					ID string `json:"id"`
				} `json:"message"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if json.Unmarshal(line, &f) != nil || f.Ref == "" {
				continue
			}
			l.mu.Lock()
			s := l.refs[f.Ref]
			delete(l.refs, f.Ref)
			switch {
			case s == nil:
			case f.Type == "ack":
				l.acked[s.cid][f.Message.ID] = true
				l.ackTimes = append(l.ackTimes, time.Now())
				pc.inFlight--
				l.pump(pc)
			case f.Error.Code == "unavailable" || f.Error.Code == "rate_limited":
				l.retries++
				wait := pacedRetryAfter << min(s.attempt-1, 3)
				time.AfterFunc(min(wait, pacedRetryMax), func() {
					l.mu.Lock()
					l.transmit(s)
					l.mu.Unlock()
				})
			default:
				l.failLocked("send %s refused: %s", f.Ref, line)
			}
			l.mu.Unlock()
		}
	}
}

// finish waits up to two minutes for every queued and open send to be
// acknowledged.
func (l *pacedLoad) finish() {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		l.mu.Lock()
		left := 0
		for _, pc := range l.conns {
			left += len(pc.queue) + pc.inFlight
		}
		if left == 0 {
			l.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			l.failLocked("%d sends still unacknowledged two minutes after the load stopped", left)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}
