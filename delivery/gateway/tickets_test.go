package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/delivery/auth"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/storage/pebble"
)

// TestTicketsWithoutASecretWorkAcrossGateways: a deployment that verifies
// tokens with public keys only has no secret to derive the ticket key
// from; its gateways share one through the Store, so a ticket issued by
// one gateway opens a long-poll on another.
func TestTicketsWithoutASecretWorkAcrossGateways(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	keyFile := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.Open(auth.Config{PublicKeys: []string{keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if v.TicketKey() != nil {
		t.Fatal("a verifier without a secret derived a ticket key")
	}
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second}
	var urls []string
	done := make(chan struct{}, 2)
	for i := 0; i < 2; i++ {
		g := New(cfg, Deps{Log: lg, Store: st, Verifier: v, Logger: logger})
		go func() { _ = g.Run(ctx); done <- struct{}{} }()
		<-g.Hub().Ready()
		srv := httptest.NewServer(g.Handler())
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		st.Close()
		lg.Close()
	})

	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "dana", "name": "Dana", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", urls[0]+"/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var issued struct{ Ticket string }
	_ = json.NewDecoder(res.Body).Decode(&issued)
	res.Body.Close()
	if res.StatusCode != 201 || issued.Ticket == "" {
		t.Fatalf("POST /v1/tickets: %d", res.StatusCode)
	}
	for i, want := range []int{200, 401} {
		res, err := http.Get(urls[1] + "/v1/poll?wait=0&ticket=" + issued.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || strings.Contains(string(body), issued.Ticket) {
			t.Errorf("poll %d with the ticket on the other gateway: %d %s, want %d", i+1, res.StatusCode, body, want)
		}
	}
}
