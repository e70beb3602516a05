package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

const (
	wsSubprotocol     = "parley.v1"
	wsWriteTimeout    = 10 * time.Second
	wsMaxInvalidInRow = 20
	wsHelloWait       = 500 * time.Millisecond
	wsSendBuffer      = 128 << 10
)

type connKey struct{}

var keyConn connKey

// ConnContext, set as http.Server.ConnContext, lets the gateway tune the
// TCP connection under a WebSocket.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, keyConn, c)
}

// originAllowed implements the cross-site WebSocket hijacking check: no
// Origin (native clients), the server's own origin, or an allowed one.
func (t *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, pat := range t.origins {
		target := u.Host
		if strings.Contains(pat, "://") {
			target = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		if ok, _ := path.Match(strings.ToLower(pat), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// wsClientFrame is any frame a client sends.
type wsClientFrame struct {
	Type           string          `json:"type"`
	Ref            json.RawMessage `json:"ref,omitempty"`
	Cursor         string          `json:"cursor,omitempty"`
	ConversationID string          `json:"conversation_id"`
	ClientID       string          `json:"client_id"`
	Text           string          `json:"text"`
	Attachments    []string        `json:"attachments"`
	ReplyTo        *string         `json:"reply_to"`
	Seq            *int64          `json:"seq"`
	UserIDs        []string        `json:"user_ids"`
	Token          string          `json:"token"`
}

func (t *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !t.originAllowed(r) {
		t.writeCode(w, r, chat.CodeForbidden, "origin not allowed")
		return
	}
	u := httpx.User(r)
	t.makeRoom(u.ID)
	if t.hub.Connections(u.ID) >= t.cfg.MaxConnsPerUser {
		t.metrics.limited.Inc()
		t.writeCode(w, r, chat.CodeRateLimited, "too many connections for this user")
		return
	}
	release, ok := t.admit()
	if !ok {
		t.writeBusy(w, r)
		return
	}
	cursor := r.URL.Query().Get("cursor") // checked after the upgrade: browsers see 4410, not a bare failure
	// A small kernel send buffer keeps what a slow client can pile up on
	// the server small; the bounded queue then notices it is slow.
	if tc, ok := r.Context().Value(keyConn).(interface{ SetWriteBuffer(int) error }); ok { // a *net.TCPConn, or one a parked long-poll handed back
		_ = tc.SetWriteBuffer(wsSendBuffer)
	}
	var subs []string // none offered that the server speaks: no subprotocol, JSON
	sub := negotiateSubprotocol(r)
	if sub != "" {
		subs = []string{sub}
	}
	hj := &smallHijacker{ResponseWriter: w}
	ws, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		Subprotocols:       subs,
		InsecureSkipVerify: true, // origin checked above, with our own error body
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		release()
		return
	}
	ws.SetReadLimit(t.cfg.MaxBody)
	s := &wsSession{t: t, ws: ws, out: hj.out, user: u, expires: httpx.Expiry(r), conn: t.newConn(u.ID, "websocket"), binary: isBinary(sub)}
	s.conn.Keepalive = s.keepalive
	if !t.spawn(func() { defer release(); s.run(cursor) }) { // run returns once the connection is open (or failed to)
		release()
		ws.Close(websocket.StatusGoingAway, "server going away")
	}
}

// wsSession is one WebSocket. Its reader goroutine lives as long as the
// socket; a writer runs only while something waits to be written (the
// connection starts it), so an idle WebSocket holds one goroutine and no
// write buffer.
type wsSession struct {
	t    *Server
	ws   *websocket.Conn
	out  *frameConn // under ws's write buffer: corked around each data frame
	user chat.User
	conn *fanout.Conn
	// tokenMu guards the token's expiry and its timer: the reader sets
	// them on an auth frame, the timer and the keepalive read them.
	tokenMu    sync.Mutex
	expires    time.Time
	tokenTimer *time.Timer
	// watching: a presence.watch ends with the session (read loop only).
	watching bool
	// binary: the session speaks parley.v1+proto (wsproto.go).
	binary bool
}

// wsInvalidUTF8 is the reason of a 1007 close.
const wsInvalidUTF8 = "text frame is not valid UTF-8"

// control queues a non-event frame (ack, pong, error) ahead of queued
// events. Such frames echo a client's ref (raw JSON): the reader refuses
// frames that are not UTF-8, and this makes sure, so the server never
// writes a text frame that is not UTF-8.
func (s *wsSession) control(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	s.conn.Control(b)
}

// run opens the connection and returns; the reader it starts lives as
// long as the socket and closes the connection when it ends.
func (s *wsSession) run(cursor string) {
	t := s.t
	ctx, cancel := context.WithCancel(t.sessions)
	t.metrics.connections.WithLabelValues("websocket").Inc()
	// The reader starts at once; an optional hello frame may carry the
	// cursor instead of the query. (A read with a deadline would close the
	// socket when it expires, so the wait is on a channel.)
	// hello carries the hello frame's cursor, and is closed when the
	// reader ends.
	hello := make(chan string, 1)
	reader := func() {
		defer func() {
			cancel()
			s.stopTokenTimer()
			s.conn.CloseWith(int(websocket.StatusNormalClosure), "")
			t.hub.Unregister(s.conn)
			t.metrics.connections.WithLabelValues("websocket").Dec()
		}()
		defer close(hello)
		s.readLoop(ctx, hello)
	}
	if !t.spawn(reader) {
		cancel()
		t.metrics.connections.WithLabelValues("websocket").Dec()
		s.ws.Close(websocket.StatusGoingAway, "server going away")
		return
	}
	if cursor == "" {
		t := time.NewTimer(wsHelloWait)
		select {
		case c, ok := <-hello:
			if !ok { // the reader ended
				t.Stop()
				return
			}
			cursor = c
		case <-t.C:
		}
		t.Stop()
	}
	s.open(ctx, cursor)
}

// open opens the connection with cursor and writes ready; on failure it
// closes the socket with the error's code and reports false.
func (s *wsSession) open(ctx context.Context, cursor string) bool {
	t := s.t
	err := t.hub.Open(ctx, s.conn, cursor, t.cfg.MaxConnsPerUser)
	if err == nil && ctx.Err() != nil {
		t.hub.Unregister(s.conn) // the client left while it opened
		err = ctx.Err()
	}
	if err != nil {
		code := chat.ErrorCode(err)
		if code == chat.CodeCursorExpired {
			b := httpx.ErrorJSON(code, chat.ErrorMessage(err), "")
			if f := s.frameOf(append([]byte(`{"type":"error",`), b[1:]...)); f != nil {
				_ = s.writeNow(f)
			}
		}
		s.ws.Close(httpx.CloseCode(code), chat.ErrorMessage(err))
		return false
	}
	if err := s.writeNow(s.frameOf(s.readyFrame())); err != nil {
		s.ws.CloseNow()
		return false
	}
	s.conn.StartWriter(func() { t.spawnWriter(s.write, s.goingAway) })
	s.tokenMu.Lock()
	s.armTokenTimer()
	s.tokenMu.Unlock()
	return true
}

// wsBuffers are the write buffers of running writers: an idle connection
// holds none.
var wsBuffers = sync.Pool{New: func() any { return new(wsBuffer) }}

type wsBuffer struct {
	items []*fanout.Item
	frame []byte // the rendered events
	wire  []byte // the frame as written, header included
}

// write writes everything queued, each take in one frame, until nothing
// waits; the connection starts it again when something does.
func (s *wsSession) write() {
	t := s.t
	b := wsBuffers.Get().(*wsBuffer)
	defer func() {
		clear(b.items)
		if cap(b.frame) > 256<<10 {
			b.frame, b.wire = nil, nil
		}
		wsBuffers.Put(b)
	}()
	for {
		items, err := s.conn.Take(b.items)
		switch {
		case errors.Is(err, fanout.ErrTooSlow):
			t.metrics.slowClosed.Inc()
			s.ws.Close(websocket.StatusTryAgainLater, "too slow to keep up; resume with your cursor")
			return
		case errors.Is(err, fanout.ErrClosed):
			s.ws.Close(websocket.StatusCode(s.conn.CloseCode()), s.conn.CloseReason())
			return
		case err != nil:
			s.ws.CloseNow()
			return
		case len(items) == 0:
			return
		}
		b.items = items
		if s.binary {
			b.frame = s.conn.RenderBatchProto(b.frame[:0], items)
		} else {
			b.frame = s.conn.RenderBatch(b.frame[:0], items)
		}
		if len(b.frame) == 0 {
			continue
		}
		if err := s.writeFrame(b); err != nil {
			t.metrics.writeFailed(s.conn)
			s.conn.CloseWith(int(websocket.StatusGoingAway), "")
			s.ws.CloseNow()
			return
		}
		t.metrics.wrote("websocket", items, len(items))
	}
}

// writeNow writes one frame before the writer runs, within
// wsWriteTimeout. Its context is not the session's: the library closes
// the socket, with no close frame, when a write's context ends, and the
// sessions' context ends as the server stops, while the closes with 1001
// may wait behind this write.
func (s *wsSession) writeNow(frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), wsWriteTimeout)
	defer cancel()
	return s.ws.Write(ctx, s.messageType(), frame)
}

// goingAway closes the socket with 1001 when no writer will: the server
// stopped while the connection opened.
func (s *wsSession) goingAway() {
	s.ws.Close(websocket.StatusGoingAway, "server going away; resume with your cursor")
}

// writeFrame writes b.frame as one text frame in one write. While corked,
// the library's Write only fills memory, so it needs no deadline of its
// own (a concurrent ping that holds the frame lock has one); the socket
// write on uncork has wsWriteTimeout.
func (s *wsSession) writeFrame(b *wsBuffer) error {
	if s.out == nil { // not hijacked through smallHijacker
		ctx, cancel := context.WithTimeout(context.Background(), wsWriteTimeout)
		defer cancel()
		return s.ws.Write(ctx, s.messageType(), b.frame)
	}
	s.out.cork(b.wire)
	err := s.ws.Write(context.Background(), s.messageType(), b.frame)
	wire, uerr := s.out.uncork(wsWriteTimeout)
	b.wire = wire[:0]
	if err != nil {
		return err
	}
	return uerr
}

// keepalive pings the session and closes it with 4401 once its token has
// expired. The gateway calls it for every WebSocket from one ticker, so an
// idle connection costs no goroutine of its own for this.
func (s *wsSession) keepalive() {
	s.tokenMu.Lock()
	expires := s.expires
	s.tokenMu.Unlock()
	if !expires.IsZero() && time.Now().After(expires) {
		s.conn.CloseWith(int(httpx.CloseCode(chat.CodeUnauthorized)), "token expired")
		return
	}
	ctx, cancel := context.WithTimeout(s.t.sessions, wsWriteTimeout)
	defer cancel()
	if err := s.ws.Ping(ctx); err != nil {
		s.t.metrics.dropped.WithLabelValues("ping_timeout").Inc()
		s.conn.Close()
	}
}

// readLoop reads client frames until the socket closes. The first frame,
// if it is a hello, hands its cursor to the session's setup.
func (s *wsSession) readLoop(ctx context.Context, hello chan<- string) {
	st := readState{first: true}
	for {
		if !s.readFrame(ctx, &st, hello) {
			return
		}
	}
}

// readState is what the reader keeps between frames.
type readState struct {
	first   bool // no frame read yet
	invalid int  // invalid frames in a row
}

// readFrame reads and handles one client frame; it reports false once the
// socket is closed.
func (s *wsSession) readFrame(ctx context.Context, st *readState, hello chan<- string) bool {
	// Read's context stays Background: a cancelable one costs every idle
	// connection a Done channel and an AfterFunc registration, and the
	// reader ends anyway when the socket closes.
	typ, data, err := s.ws.Read(context.Background())
	if err != nil {
		return false
	}
	f, fail := s.decodeFrame(typ, data)
	if fail {
		s.conn.CloseWith(int(websocket.StatusInvalidFramePayloadData), wsInvalidUTF8)
		s.ws.Close(websocket.StatusInvalidFramePayloadData, wsInvalidUTF8)
		return false
	}
	if st.first {
		st.first = false
		if f.Type == "hello" {
			hello <- f.Cursor
			return true
		}
	}
	if s.handleFrame(ctx, &f) {
		st.invalid = 0
		return true
	}
	st.invalid++
	if st.invalid > wsMaxInvalidInRow {
		s.conn.CloseWith(int(websocket.StatusPolicyViolation), "too many invalid frames")
	}
	return true
}

// decodeClientFrame decodes one client frame. fail reports a frame that
// fails the connection with 1007: RFC 6455 §8.1, a text frame that is
// not UTF-8 (answering it would echo the bytes). Any other frame that is
// not one JSON object in a text frame decodes as the "\x00invalid" type,
// answered with an error frame.
func decodeClientFrame(typ websocket.MessageType, data []byte) (f wsClientFrame, fail bool) {
	if typ == websocket.MessageText && !utf8.Valid(data) {
		return wsClientFrame{}, true
	}
	if typ != websocket.MessageText || json.Unmarshal(data, &f) != nil {
		return wsClientFrame{Type: "\x00invalid"}, false
	}
	return f, false
}

func (s *wsSession) frameError(ref json.RawMessage, code, msg string) {
	type errFrame struct {
		Type  string            `json:"type"`
		Ref   json.RawMessage   `json:"ref,omitempty"`
		Error httpx.ErrorDetail `json:"error"`
	}
	s.control(errFrame{Type: "error", Ref: ref, Error: httpx.ErrorDetail{Code: code, Message: msg}})
}

// handleFrame acts on one client frame; it reports whether it was valid.
func (s *wsSession) handleFrame(ctx context.Context, f *wsClientFrame) bool {
	t := s.t
	switch f.Type {
	case "ping":
		s.control(map[string]any{"type": "pong", "ref": f.Ref})
	case "hello":
		// Only meaningful as the first frame; later ones are harmless.
	case "send":
		req := httpx.SendRequest{ConversationID: f.ConversationID, ClientID: f.ClientID, Text: f.Text, Attachments: f.Attachments, ReplyTo: f.ReplyTo}
		ref := f.Ref
		t.actions.Send(ctx, s.user, req, func(msg *chat.Message, err error) {
			if err != nil {
				s.sendFailed(ref, err)
				return
			}
			s.control(map[string]any{"type": "ack", "ref": ref, "message": msg})
		})
	case "typing":
		if err := t.actions.Typing(ctx, s.user, f.ConversationID); err != nil {
			s.frameError(f.Ref, chat.ErrorCode(err), chat.ErrorMessage(err))
		}
	case "read":
		if f.Seq == nil || *f.Seq < 0 {
			s.frameError(f.Ref, chat.CodeInvalid, "seq must be a non-negative integer")
			return false
		}
		cid, seq, ref := f.ConversationID, *f.Seq, f.Ref
		t.spawn(func() {
			if err := t.actions.Read(ctx, s.user, cid, seq); err != nil {
				s.frameError(ref, chat.ErrorCode(err), chat.ErrorMessage(err))
			}
		})
	case "auth":
		return s.refreshToken(f.Ref, f.Token)
	case "presence.watch":
		if err := s.watchPresence(ctx, f.UserIDs); err != nil {
			s.frameError(f.Ref, chat.ErrorCode(err), chat.ErrorMessage(err))
			return chat.ErrorCode(err) != chat.CodeInvalid
		}
	case "\x00invalid":
		s.frameError(nil, chat.CodeInvalid, s.invalidFrameMessage())
		return false
	default:
		s.frameError(f.Ref, chat.CodeInvalid, "unknown frame type")
		return false
	}
	return true
}

func (s *wsSession) sendFailed(ref json.RawMessage, err error) {
	if code := chat.ErrorCode(err); code == chat.CodeRateLimited {
		// The WebSocket twin of 429: an error frame for the send, then
		// close 4429; the client reconnects later with its cursor.
		s.frameError(ref, code, chat.ErrorMessage(err))
		s.conn.CloseWith(int(httpx.CloseCode(code)), "rate limited")
		return
	}
	s.frameError(ref, chat.ErrorCode(err), chat.ErrorMessage(err))
}
