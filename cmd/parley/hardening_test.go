package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// putUpload PUTs body to an upload URL the server answered, with the
// headers it named.
func (s *server) putUpload(t *testing.T, slot map[string]any, body []byte) int {
	t.Helper()
	u := slot["upload_url"].(string)
	if strings.HasPrefix(u, "/") {
		u = s.url + u
	}
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(body))
	for k, v := range slot["headers"].(map[string]any) {
		if http.CanonicalHeaderKey(k) != "Content-Length" {
			req.Header.Set(k, v.(string))
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// download follows GET /v1/attachments/{id} to the bytes.
func (s *server) download(t *testing.T, token, id string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/v1/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req) // follows the 302
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("download of %s: %d", id, res.StatusCode)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The defect of issue 13: replaying an upload URL after its attachment was
// posted replaced the bytes members download (same size and type, no
// event). An upload URL writes once.
func TestUploadURLReplayAfterPostIsRefused(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "replay", "bob")
	st, _ := s.connect(t, transportWS, bob, "")

	good := []byte("the minutes as agreed")
	evil := []byte("the minutes as forged")
	r := s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "minutes.txt", "content_type": "text/plain", "size": len(good)})
	if r.status != 201 {
		t.Fatalf("create attachment: %d %s", r.status, r.body)
	}
	slot := r.json(t)
	id := slot["id"].(string)
	if status := s.putUpload(t, slot, good); status != 200 {
		t.Fatalf("upload: %d", status)
	}
	if status := s.putUpload(t, slot, evil); status != http.StatusConflict {
		t.Errorf("replay before posting: %d, want 409", status)
	}
	if p := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "minutes", "attachments": []string{id}}); p.status != 201 {
		t.Fatalf("post: %d %s", p.status, p.body)
	}
	collect(t, st, 1, "message.created")
	if status := s.putUpload(t, slot, evil); status != http.StatusConflict {
		t.Errorf("replay after posting: %d, want 409", status)
	}
	if got := s.download(t, bob, id); !bytes.Equal(got, good) {
		t.Fatalf("bob downloads %q, want %q", got, good)
	}
}

// The defect of issue 13: a text frame with invalid UTF-8 inside a JSON
// string was answered with a pong echoing the bytes. RFC 6455 fails the
// connection with 1007; the server writes no invalid UTF-8.
func TestWebSocketTextFrameWithInvalidUTF8Closes1007(t *testing.T) {
	s := startServer(t)
	tok := s.signIn(t, "alice")
	for _, tc := range []struct {
		name  string
		first bool // sent as the very first frame, before the session opened
	}{{"after ready", false}, {"as the first frame", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ws, err := dialWS(s.url, tok, "")
			if err != nil {
				t.Fatal(err)
			}
			defer ws.close()
			if !tc.first {
				if m, err := ws.next(10 * time.Second); err != nil || m["type"] != "ready" {
					t.Fatalf("ready: %v %v", m, err)
				}
			}
			if err := ws.c.Write(ws.ctx, websocket.MessageText, []byte("{\"type\":\"ping\",\"ref\":\"\xff\xfe\"}")); err != nil {
				t.Fatal(err)
			}
			for {
				ctx, cancel := context.WithTimeout(ws.ctx, 10*time.Second)
				typ, data, err := ws.c.Read(ctx)
				cancel()
				if err != nil {
					if got := websocket.CloseStatus(err); got != websocket.StatusInvalidFramePayloadData {
						t.Fatalf("the connection ended with %v (status %d), want close 1007", err, got)
					}
					return
				}
				if typ == websocket.MessageText && !utf8.Valid(data) {
					t.Fatalf("the server wrote a text frame that is not UTF-8: %q", data)
				}
				if bytes.Contains(data, []byte(`"pong"`)) {
					t.Fatalf("the frame was answered: %q", data)
				}
			}
		})
	}
}

// Client data the server echoes (a WebSocket frame's ref, text sent over
// REST with invalid UTF-8 or lone surrogate escapes) comes back, on every
// transport, as valid UTF-8.
func TestServerWritesOnlyValidUTF8(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "utf8", "bob")
	ws, err := dialWS(s.url, bob, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.close()
	// Raw SSE and long-poll bodies, read as bytes.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sseReq, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/events", nil)
	sseReq.Header.Set("Authorization", "Bearer "+bob)
	sse, err := http.DefaultClient.Do(sseReq)
	if err != nil {
		t.Fatal(err)
	}
	defer sse.Body.Close()
	poll := s.do(t, "GET", "/v1/poll?wait=0", bob, nil)
	cursor := poll.json(t)["cursor"].(string)

	for _, frame := range []string{
		`{"type":"ping","ref":"\ud800"}`,
		`{"type":"ping","ref":{"nested":"\udfff\u0000"}}`,
		`{"type":"nonsense\ud83d","ref":"x"}`,
		"{\"type\":\"send\",\"ref\":\"s\",\"conversation_id\":\"" + cid + "\",\"client_id\":\"\\ud800\",\"text\":\"hi \\udc00\"}",
	} {
		if err := ws.write(json.RawMessage(frame)); err != nil {
			t.Fatal(err)
		}
	}
	for _, body := range []string{
		"{\"text\":\"bad \xff\xfe bytes\",\"client_id\":\"c\xc3\"}",
		`{"text":"lone \ud800 surrogate"}`,
	} {
		r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, body)
		if !utf8.Valid(r.body) {
			t.Fatalf("POST message answered %d with invalid UTF-8: %q", r.status, r.body)
		}
	}
	for range 7 { // ready, 2 pongs, an error, an ack, 2 message.created (more may be batched)
		ctx, cancel := context.WithTimeout(ws.ctx, 5*time.Second)
		_, data, err := ws.c.Read(ctx)
		cancel()
		if err != nil {
			break
		}
		if !utf8.Valid(data) {
			t.Fatalf("WebSocket frame not UTF-8: %q", data)
		}
	}
	p := s.do(t, "GET", "/v1/poll?wait=5&cursor="+url.QueryEscape(cursor), bob, nil)
	if !utf8.Valid(p.body) || !bytes.Contains(p.body, []byte("message.created")) {
		t.Fatalf("long-poll body (valid UTF-8: %v): %q", utf8.Valid(p.body), p.body)
	}
	buf := make([]byte, 64<<10)
	var got []byte
	for !bytes.Contains(got, []byte("surrogate")) {
		n, err := sse.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("SSE: %v after %q", err, got)
		}
	}
	if !utf8.Valid(got) {
		t.Fatalf("SSE stream not UTF-8: %q", got)
	}
}
