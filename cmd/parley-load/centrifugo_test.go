package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"
)

// fakeCentrifugo speaks the part of Centrifugo's JSON client protocol and
// HTTP API that the tool uses: connect with an HS256 token, subscribe,
// ping/pong, and publish to every subscriber.
type fakeCentrifugo struct {
	secret, key string
	mu          sync.Mutex
	subs        []*websocket.Conn
	pongs       atomic.Int64
	badTokens   atomic.Int64
}

func (f *fakeCentrifugo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/publish":
		if r.Header.Get("X-API-Key") != f.key {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var req struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		if json.Unmarshal(body, &req) != nil || req.Channel != cfChannel {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		push := []byte(`{"push":{"channel":"` + req.Channel + `","pub":{"data":` + string(req.Data) + `}}}`)
		f.mu.Lock()
		subs := append([]*websocket.Conn{}, f.subs...)
		f.mu.Unlock()
		for _, ws := range subs {
			_ = ws.Write(r.Context(), websocket.MessageText, push)
		}
		w.Write([]byte(`{"result":{}}`))
	case "/connection/websocket":
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			var cmd struct {
				ID      int `json:"id"`
				Connect *struct {
					Token string `json:"token"`
				} `json:"connect"`
				Subscribe *struct {
					Channel string `json:"channel"`
				} `json:"subscribe"`
			}
			_ = json.Unmarshal(data, &cmd)
			switch {
			case string(data) == "{}":
				f.pongs.Add(1)
			case cmd.Connect != nil:
				if !f.validToken(cmd.Connect.Token) {
					f.badTokens.Add(1)
					_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"id":1,"error":{"code":109,"message":"token expired"}}`))
					continue
				}
				// A ping rides in the same frame as the reply, as it may.
				_ = ws.Write(r.Context(), websocket.MessageText, []byte("{}\n"+`{"id":1,"connect":{"client":"c","version":"fake"}}`))
			case cmd.Subscribe != nil:
				f.mu.Lock()
				f.subs = append(f.subs, ws)
				f.mu.Unlock()
				_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"id":2,"subscribe":{}}`))
			}
		}
	}
}

func (f *fakeCentrifugo) validToken(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	mac := hmac.New(sha256.New, []byte(f.secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	return hmac.Equal(sig, mac.Sum(nil))
}

func TestCentrifugoBurstAndLatencyCountEveryPublication(t *testing.T) {
	f := &fakeCentrifugo{secret: "s3cret", key: "k3y"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cf := []string{"-target", "centrifugo", "-url", srv.URL, "-api-key", "k3y", "-hmac-secret", "s3cret", "-sources", "1"}
	// The fake serves from this process, whose write system calls are counted.
	r, out, err := runJSON(t, append(cf, "-mode", "burst", "-members", "10", "-messages", "20", "-pid", itoa(os.Getpid()))...)
	if err != nil || r.Target != "centrifugo" || r.Delivered != 200 || r.Missing != 0 || r.DeliveriesPer <= 0 || r.WriteSyscalls < 200 {
		t.Fatalf("burst: %v %+v\n%s", err, r, out)
	}
	if f.pongs.Load() < 10 || f.badTokens.Load() != 0 {
		t.Fatalf("%d pongs for 10 pinged connections, %d bad tokens", f.pongs.Load(), f.badTokens.Load())
	}
	f.mu.Lock()
	f.subs = nil
	f.mu.Unlock()
	r, out, err = runJSON(t, append(cf, "-mode", "latency", "-members", "5", "-rate", "250", "-duration", "1s")...)
	if err != nil || r.Delivered != 250 || r.Latency == nil || r.Latency.Count != 250 {
		t.Fatalf("latency: %v %+v\n%s", err, r, out)
	}
	// A wrong secret is refused by the server, and the tool says so.
	err = run(context.Background(), []string{"-target", "centrifugo", "-url", srv.URL, "-api-key", "k3y", "-hmac-secret", "wrong", "-mode", "burst", "-members", "1", "-messages", "1", "-quiet"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "refused command 1") {
		t.Fatalf("wrong secret: %v", err)
	}
}
