package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	parleyv1 "github.com/parleychat/parley/parley/v1"
)

// docs/mobile.md is tested here: every `http` block (a request, then the
// answer) and every `websocket` block (an upgrade request, then frames:
// "> " sent, "< " expected, "< close N") is replayed against a real
// server, and its Go client is the code below, kept identical by
// TestMobileGuideGoIsTheTestedCode and run by TestMobileGuideProtoClient.
// In expected JSON, "…" matches any value, and only the fields shown are
// compared; an expected array's elements match the answer's first ones.

const mobileGuide = "../../docs/mobile.md"

// docBlock is one fenced block of the guide.
type docBlock struct {
	lang string
	line int // of the opening fence
	text string
}

func guideBlocks(t *testing.T) []docBlock {
	t.Helper()
	raw, err := os.ReadFile(mobileGuide)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	for i, line := range strings.Split(string(raw), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```") && len(line) > 3:
			cur = &docBlock{lang: strings.TrimSpace(line[3:]), line: i + 1}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}

// guideEnv is the world the guide's placeholders name.
type guideEnv struct {
	s    *server
	vars map[string]string
}

func newGuideEnv(t *testing.T) *guideEnv {
	s := startServer(t, "--auth-secret", testSecret)
	alice := hs256(t, testSecret, "alice", time.Now().Add(time.Hour))
	bob := hs256(t, testSecret, "bob", time.Now().Add(time.Hour))
	e := &guideEnv{s: s, vars: map[string]string{
		"$TOKEN":        alice,
		"$NEW_TOKEN":    hs256(t, testSecret, "alice", time.Now().Add(2*time.Hour)),
		"$SHORT_TOKEN":  hs256(t, testSecret, "alice", time.Now().Add(62*time.Second)), // token.expiring after ~2 s
		"$BOB_TOKEN":    bob,
		"$DEVICE_TOKEN": "apns-device-token-0f3c9a",
	}}
	cid := s.createGroup(t, alice, "Lunch", "bob")
	e.vars["$CID"] = cid
	// alice's cursor before bob's message (what she kept on disk): after
	// every event so far.
	cursor := ""
	for {
		r := s.do(t, "GET", "/v1/poll?wait=1&cursor="+url.QueryEscape(cursor), alice, nil)
		if r.status != 200 {
			t.Fatalf("poll: %d %s", r.status, r.body)
		}
		page := r.json(t)
		cursor = page["cursor"].(string)
		if evs, _ := page["events"].([]any); len(evs) == 0 && e.vars["$CURSOR"] == cursor {
			break
		}
		e.vars["$CURSOR"] = cursor
	}
	s.send(t, bob, cid, "Lunch at noon?", "bob-1")
	att, st := s.upload(t, alice, "menu.txt", "text/plain", 5, []byte("soup\n"))
	if st/100 != 2 {
		t.Fatalf("upload: %d", st)
	}
	if r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "menu", "attachments": []string{att}}); r.status != 201 {
		t.Fatalf("send with attachment: %d %s", r.status, r.body)
	}
	e.vars["$ATTACHMENT_ID"] = att
	return e
}

// expand replaces the placeholders in s.
func (e *guideEnv) expand(s string) string {
	keys := make([]string, 0, len(e.vars))
	for k := range e.vars {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) }) // $TOKEN after $NEW_TOKEN
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, e.vars[k])
	}
	return s
}

// TestMobileGuideExamples replays the guide's HTTP and WebSocket examples.
func TestMobileGuideExamples(t *testing.T) {
	blocks := guideBlocks(t)
	e := newGuideEnv(t)
	var ran, pending int
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		switch b.lang {
		case "http":
			if strings.HasPrefix(b.text, "HTTP/") {
				t.Errorf("line %d: an answer without its request", b.line)
				continue
			}
			if i+1 >= len(blocks) || blocks[i+1].lang != "http" || !strings.HasPrefix(blocks[i+1].text, "HTTP/") {
				t.Errorf("line %d: a request without its answer", b.line)
				continue
			}
			t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) { e.runHTTP(t, b.text, blocks[i+1].text) })
			i++
			ran++
		case "websocket":
			t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) { e.runWebSocket(t, b.text) })
			ran++
		case "json", "go":
		default:
			pending++
			t.Errorf("line %d: a %q block this test does not know how to check", b.line, b.lang)
		}
	}
	if ran < 12 {
		t.Fatalf("only %d examples ran; is the guide's format still the one this test reads?", ran)
	}
}

// splitHead splits a block into its first line, header lines and the rest.
func splitHead(text string) (first string, hdr http.Header, body string) {
	head, body, _ := strings.Cut(text, "\n\n")
	lines := strings.Split(strings.TrimRight(head, "\n"), "\n")
	hdr = http.Header{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return lines[0], hdr, strings.TrimSpace(body)
}

func (e *guideEnv) runHTTP(t *testing.T, reqText, wantText string) {
	first, hdr, body := splitHead(e.expand(reqText))
	parts := strings.Fields(first)
	req, err := http.NewRequest(parts[0], e.s.url+parts[1], strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	got, _ := io.ReadAll(res.Body)

	wfirst, whdr, wbody := splitHead(e.expand(wantText))
	status, _ := strconv.Atoi(strings.Fields(wfirst)[1])
	if res.StatusCode != status {
		t.Fatalf("%s: status %d, the guide says %d (body %s)", first, res.StatusCode, status, got)
	}
	for k := range whdr {
		want := whdr.Get(k)
		have := res.Header.Get(k)
		if have == "" || (want != "…" && !strings.HasPrefix(have, want)) {
			t.Errorf("%s: header %s %q, the guide says %q", first, k, have, want)
		}
	}
	if wbody == "" {
		return
	}
	var v any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("%s: answer is not JSON: %s", first, got)
	}
	if why := matchJSON(t, wbody, v); why != "" {
		t.Errorf("%s: %s\n got %s\nguide %s", first, why, got, wbody)
	}
}

// matchJSON reports how got fails the guide's expected JSON, "" if not.
func matchJSON(t *testing.T, want string, got any) string {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("the guide's JSON does not parse: %v\n%s", err, want)
	}
	return match("", w, got)
}

func match(path string, want, got any) string {
	if s, ok := want.(string); ok && s == "…" {
		if got == nil {
			return path + " is missing"
		}
		return ""
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path + " is not an object"
		}
		for k, wv := range w {
			gv, present := g[k]
			if !present {
				return path + "." + k + " is missing"
			}
			if why := match(path+"."+k, wv, gv); why != "" {
				return why
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) < len(w) {
			return path + " has fewer elements than the guide shows"
		}
		for i := range w {
			if why := match(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); why != "" {
				return why
			}
		}
		return ""
	}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		return fmt.Sprintf("%s is %v, the guide says %v", path, got, want)
	}
	return ""
}

var closeLine = regexp.MustCompile(`^close (\d+)$`)

func (e *guideEnv) runWebSocket(t *testing.T, text string) {
	first, hdr, frames := splitHead(e.expand(text))
	parts := strings.Fields(first)
	u := strings.Replace(e.s.url, "http://", "ws://", 1) + parts[1]
	var subs []string
	for _, p := range strings.Split(hdr.Get("Sec-WebSocket-Protocol"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			subs = append(subs, p)
		}
	}
	hdr.Del("Sec-WebSocket-Protocol")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: subs})
	if err != nil {
		t.Fatalf("%s: %v", first, err)
	}
	defer ws.CloseNow()
	var pending []any
	for _, line := range strings.Split(frames, "\n") {
		switch {
		case strings.HasPrefix(line, "> "):
			if err := ws.Write(ctx, websocket.MessageText, []byte(line[2:])); err != nil {
				t.Fatalf("send %s: %v", line[2:], err)
			}
		case closeLine.MatchString(line[min(2, len(line)):]):
			want, _ := strconv.Atoi(closeLine.FindStringSubmatch(line[2:])[1])
			for {
				_, _, err := ws.Read(ctx)
				if err != nil {
					if got := websocket.CloseStatus(err); int(got) != want {
						t.Fatalf("closed with %v, the guide says %d", err, want)
					}
					break
				}
			}
		case strings.HasPrefix(line, "< "):
			want := line[2:]
			for {
				for len(pending) == 0 {
					_, data, err := ws.Read(ctx)
					if err != nil {
						t.Fatalf("waiting for %s: %v", want, err)
					}
					for _, obj := range strings.Split(string(data), "\n") {
						var v any
						if err := json.Unmarshal([]byte(obj), &v); err != nil {
							t.Fatalf("a server frame line is not JSON: %q", obj)
						}
						pending = append(pending, v)
					}
				}
				got := pending[0]
				pending = pending[1:]
				if matchJSON(t, want, got) == "" {
					break // frames the guide does not show are skipped
				}
			}
		case strings.TrimSpace(line) == "":
		default:
			t.Fatalf("a websocket block line that is neither > nor <: %q", line)
		}
	}
}

// TestMobileGuideGoIsTheTestedCode: the guide's Go blocks are, verbatim,
// the code between the doc markers in this file.
func TestMobileGuideGoIsTheTestedCode(t *testing.T) {
	src, err := os.ReadFile("mobiledoc_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, part := range strings.Split(string(src), "// doc:begin\n")[1:] {
		code, _, ok := strings.Cut(part, "// doc:end\n")
		if !ok {
			t.Fatal("doc:begin without doc:end")
		}
		want = append(want, strings.TrimRight(unindent(code), "\n")+"\n")
	}
	var got []string
	for _, b := range guideBlocks(t) {
		if b.lang == "go" {
			got = append(got, b.text)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("the guide has %d Go blocks, this file %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("Go block %d differs from the tested code:\n--- guide\n%s--- test\n%s", i+1, got[i], want[i])
		}
	}
}

// unindent removes the one tab a snippet inside a function has.
func unindent(code string) string {
	lines := strings.Split(code, "\n")
	indented := true
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "\t") {
			indented = false
		}
	}
	if !indented {
		return code
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// doc:begin
// protoClient speaks parley.v1+proto on one WebSocket: it keeps the
// newest cursor and hands every message of every frame to the app, in
// order.
type protoClient struct {
	ws *websocket.Conn
	// The newest cursor in its string form, as URLs and the JSON transports
	// take it (the binary protocol carries its bytes): save this on disk
	// after handling the events before it.
	cursor string
}

// dialProto connects with the cursor kept on disk ("" for none),
// offering the binary subprotocol first and JSON second.
func dialProto(ctx context.Context, base, token, cursor string) (*protoClient, error) {
	u := strings.Replace(base, "http", "ws", 1) + "/v1/ws"
	if cursor != "" {
		u += "?cursor=" + url.QueryEscape(cursor)
	}
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		Subprotocols: []string{"parley.v1+proto", "parley.v1"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		return nil, err
	}
	if ws.Subprotocol() != "parley.v1+proto" {
		ws.Close(websocket.StatusNormalClosure, "")
		return nil, fmt.Errorf("server speaks %q only", ws.Subprotocol())
	}
	return &protoClient{ws: ws, cursor: cursor}, nil
}

// next reads one frame and returns its messages, in order.
func (c *protoClient) next(ctx context.Context) ([]*parleyv1.ServerMessage, error) {
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err // websocket.CloseStatus(err) is the close code
	}
	var frame parleyv1.ServerFrame
	if err := proto.Unmarshal(data, &frame); err != nil {
		return nil, err
	}
	for _, m := range frame.GetMessages() {
		switch {
		case m.GetReady() != nil && c.cursor == "":
			c.cursor = base64.RawURLEncoding.EncodeToString(m.GetReady().GetCursor())
		case m.GetEvent() != nil:
			c.cursor = base64.RawURLEncoding.EncodeToString(m.GetEvent().GetCursor())
		}
	}
	return frame.GetMessages(), nil
}

// eventMessage is an event's message, completed: inside an Event, a
// Message leaves out the conversation_id, and the seq, sender_id and
// created_at_ns the Event already carries.
func eventMessage(ev *parleyv1.Event) *parleyv1.Message {
	if ev.GetMessage() == nil {
		return nil
	}
	m := proto.Clone(ev.GetMessage()).(*parleyv1.Message)
	if m.ConversationId == "" {
		m.ConversationId = ev.GetConversationId()
	}
	if m.Seq == 0 {
		m.Seq = ev.GetSeq()
	}
	if m.SenderId == "" {
		m.SenderId = ev.GetActor()
	}
	if m.CreatedAtNs == 0 {
		m.CreatedAtNs = ev.GetAtNs()
	}
	return m
}

// send sends one client frame, e.g. a message with its client_id.
func (c *protoClient) send(ctx context.Context, f *parleyv1.ClientFrame) error {
	data, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageBinary, data)
}

// doc:end

// sendRunningLate is the guide's example of a send.
func sendRunningLate(ctx context.Context, c *protoClient, cid string) error {
	// doc:begin
	err := c.send(ctx, &parleyv1.ClientFrame{Ref: "r1", Kind: &parleyv1.ClientFrame_Send{Send: &parleyv1.Send{
		ConversationId: cid, ClientId: "9b1d4c1e-draft-18", Text: "Running late",
	}}})
	// doc:end
	return err
}

// nextUntil reads messages until one satisfies ok.
func (c *protoClient) nextUntil(t *testing.T, ctx context.Context, what string, ok func(*parleyv1.ServerMessage) bool) *parleyv1.ServerMessage {
	t.Helper()
	for {
		msgs, err := c.next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		for _, m := range msgs {
			if ok(m) {
				return m
			}
		}
	}
}

// TestMobileGuideProtoClient runs the guide's Go client against a real
// server over parley.v1+proto: ready, a send answered by an ack and its
// event (with a cursor), a resume on long-poll from the binary client's
// cursor, token refresh, an invalid frame, and the subprotocol order.
func TestMobileGuideProtoClient(t *testing.T) {
	s := startServer(t, "--auth-secret", testSecret)
	token := hs256(t, testSecret, "alice", time.Now().Add(time.Hour))
	bob := hs256(t, testSecret, "bob", time.Now().Add(time.Hour))
	cid := s.createGroup(t, token, "Lunch", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := dialProto(ctx, s.url, token, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ws.CloseNow()
	msgs, err := c.next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ready := msgs[0].GetReady()
	if ready == nil || ready.GetUserId() != "alice" || len(ready.GetCursor()) == 0 || ready.GetExpiresAtNs() == 0 {
		t.Fatalf("first message %v, want ready with a cursor and expires_at_ns", msgs[0])
	}
	start := c.cursor

	if err := sendRunningLate(ctx, c, cid); err != nil {
		t.Fatal(err)
	}
	// The ack and the event come in either order.
	var ack *parleyv1.Ack
	var created *parleyv1.Event
	var cursorAfter string
	c.nextUntil(t, ctx, "ack and message.created", func(m *parleyv1.ServerMessage) bool {
		if m.GetAck() != nil {
			ack = m.GetAck()
		}
		if m.GetEvent().GetType() == parleyv1.EventType_EVENT_TYPE_MESSAGE_CREATED {
			created, cursorAfter = m.GetEvent(), c.cursor
		}
		return ack != nil && created != nil
	})
	if ack.GetRef() != "r1" || ack.GetMessage().GetText() != "Running late" || ack.GetMessage().GetClientId() != "9b1d4c1e-draft-18" {
		t.Fatalf("ack %v", ack)
	}
	createdCursor := base64.RawURLEncoding.EncodeToString(created.GetCursor())
	if created.GetMessage().GetId() != ack.GetMessage().GetId() || len(created.GetCursor()) == 0 || createdCursor != cursorAfter || created.GetAtNs() == 0 {
		t.Fatalf("event %v (client cursor %q)", created, c.cursor)
	}
	// The event's message leaves out what the event says; completed, it is
	// the message the ack carries.
	if msg := created.GetMessage(); msg.GetConversationId() != "" || msg.GetSenderId() != "" {
		t.Fatalf("the event's message repeats the event: %v", msg)
	}
	if msg := eventMessage(created); !proto.Equal(msg, ack.GetMessage()) {
		t.Fatalf("completed message %v, the ack's %v", msg, ack.GetMessage())
	}

	// The binary client's cursors are the JSON transports' cursors.
	r := s.do(t, "GET", "/v1/poll?wait=0&cursor="+url.QueryEscape(start), token, nil)
	if r.status != 200 {
		t.Fatalf("poll from the ready cursor: %d %s", r.status, r.body)
	}
	var page struct {
		Events []struct {
			Type    string
			Message struct{ ID string }
			Cursor  string
		}
	}
	_ = json.Unmarshal(r.body, &page)
	if len(page.Events) == 0 || page.Events[len(page.Events)-1].Message.ID != created.GetMessage().GetId() || page.Events[len(page.Events)-1].Cursor != createdCursor {
		t.Fatalf("long-poll from the binary ready cursor: %s", r.body)
	}
	r = s.do(t, "GET", "/v1/poll?wait=0&cursor="+url.QueryEscape(c.cursor), token, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"events":[]`) {
		t.Fatalf("long-poll from the binary event cursor: %d %s", r.status, r.body)
	}

	// Another member's send arrives as a binary event.
	s.send(t, bob, cid, "No problem", "bob-1")
	ev := c.nextUntil(t, ctx, "bob's message", func(m *parleyv1.ServerMessage) bool {
		return m.GetEvent().GetMessage().GetText() == "No problem"
	}).GetEvent()
	if m := eventMessage(ev); ev.GetActor() != "bob" || ev.GetConversationId() != cid || m.GetSeq() != ev.GetSeq() || m.GetSenderId() != "bob" || m.GetConversationId() != cid {
		t.Fatalf("bob's event %v", ev)
	}

	// Token refresh and ping, binary.
	if err := c.send(ctx, &parleyv1.ClientFrame{Ref: "a1", Kind: &parleyv1.ClientFrame_Auth{Auth: &parleyv1.Auth{
		Token: hs256(t, testSecret, "alice", time.Now().Add(2*time.Hour))}}}); err != nil {
		t.Fatal(err)
	}
	ok := c.nextUntil(t, ctx, "auth.ok", func(m *parleyv1.ServerMessage) bool { return m.GetAuthOk() != nil }).GetAuthOk()
	if ok.GetRef() != "a1" || time.Until(time.Unix(0, ok.GetExpiresAtNs())) < 90*time.Minute {
		t.Fatalf("auth.ok %v", ok)
	}
	// A text frame on a binary connection is invalid, not fatal.
	if err := c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","ref":"p"}`)); err != nil {
		t.Fatal(err)
	}
	bad := c.nextUntil(t, ctx, "error", func(m *parleyv1.ServerMessage) bool { return m.GetError() != nil }).GetError()
	if bad.GetCode() != "invalid_request" {
		t.Fatalf("error %v", bad)
	}
	if err := c.send(ctx, &parleyv1.ClientFrame{Ref: "p2", Kind: &parleyv1.ClientFrame_Ping{Ping: &parleyv1.Ping{}}}); err != nil {
		t.Fatal(err)
	}
	if p := c.nextUntil(t, ctx, "pong", func(m *parleyv1.ServerMessage) bool { return m.GetPong() != nil }).GetPong(); p.GetRef() != "p2" {
		t.Fatalf("pong %v", p)
	}
	// An empty ClientFrame names no kind: unknown frame type.
	if err := c.send(ctx, &parleyv1.ClientFrame{Ref: "x"}); err != nil {
		t.Fatal(err)
	}
	if e := c.nextUntil(t, ctx, "error", func(m *parleyv1.ServerMessage) bool { return m.GetError() != nil }).GetError(); e.GetRef() != "x" || e.GetCode() != "invalid_request" {
		t.Fatalf("unknown kind: %v", e)
	}
	// Resuming with the binary cursor replays nothing already seen.
	c.ws.Close(websocket.StatusNormalClosure, "")
	s.send(t, bob, cid, "While you were away", "bob-2")
	c2, err := dialProto(ctx, s.url, token, c.cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.ws.CloseNow()
	first := c2.nextUntil(t, ctx, "replayed event", func(m *parleyv1.ServerMessage) bool { return m.GetEvent() != nil }).GetEvent()
	if first.GetMessage().GetText() != "While you were away" {
		t.Fatalf("first event after resume: %v", first)
	}

	// A cursor the server cannot read: a binary error frame, then 4410.
	c3, err := dialProto(ctx, s.url, token, "AQAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	defer c3.ws.CloseNow()
	msgs, err = c3.next(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].GetError().GetCode() != "cursor_expired" {
		t.Fatalf("expired cursor: %v %v", msgs, err)
	}
	if _, err := c3.next(ctx); websocket.CloseStatus(err) != 4410 {
		t.Fatalf("expired cursor: closed with %v, want 4410", err)
	}

	// A client that lists JSON first gets JSON.
	ws, _, err := websocket.Dial(ctx, strings.Replace(s.url, "http", "ws", 1)+"/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{"parley.v1", "parley.v1+proto"},
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	typ, data, err := ws.Read(ctx)
	if err != nil || ws.Subprotocol() != "parley.v1" || typ != websocket.MessageText || !strings.Contains(string(data), `"type":"ready"`) {
		t.Fatalf("JSON first: subprotocol %q, %v %s %v", ws.Subprotocol(), typ, data, err)
	}
}
