package main

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

// pushInbox is an RFC 8030 push service on loopback (https, as endpoints
// must be) plus the operator's webhook receiver, which checks signatures.
type pushInbox struct {
	mu       sync.Mutex
	webpush  map[string][]pushReq // path -> requests
	webhooks []pushReq
}

type pushReq struct {
	header http.Header
	body   []byte
}

func (b *pushInbox) count(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if path == "webhook" {
		return len(b.webhooks)
	}
	return len(b.webpush[path])
}

// TestPushReachesOfflineMembersOnly: through a whole server, one message
// to a group reaches, as one push each, the offline member's browser
// (Web Push, decrypted by http_ece with the subscription's key, VAPID
// verified against GET /v1/push/vapid-public-key) and the offline member's
// phone (a webhook signed with the secret); the member with a WebSocket
// open, the one who muted the conversation and the sender get none.
func TestPushReachesOfflineMembersOnly(t *testing.T) {
	inbox := &pushInbox{webpush: map[string][]pushReq{}}
	svc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		inbox.mu.Lock()
		inbox.webpush[r.URL.Path] = append(inbox.webpush[r.URL.Path], pushReq{r.Header.Clone(), body})
		inbox.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer svc.Close()
	secretKey := make([]byte, 32)
	_, _ = rand.Read(secretKey)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(secretKey)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, secretKey)
		fmt.Fprintf(mac, "%s.%s.%s", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), body)
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		inbox.mu.Lock()
		inbox.webhooks = append(inbox.webhooks, pushReq{r.Header.Clone(), body})
		inbox.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer hook.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	vapid, _ := ecdh.P256().GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString
	s := startServer(t,
		"--push.vapid-public-key", b64(vapid.PublicKey().Bytes()), "--push.vapid-private-key", b64(vapid.Bytes()),
		"--push.allow-loopback", "--push.ca-file", ca, "--push.preview",
		"--push.webhook-url", hook.URL+"/parley", "--push.webhook-secret", secret)

	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		tokens[u] = s.signIn(t, u)
	}
	r := s.do(t, "GET", "/v1/push/vapid-public-key", tokens["bob"], nil)
	if r.status != 200 {
		t.Fatalf("vapid key: %d %s", r.status, r.body)
	}
	serverKey := r.json(t)["key"].(string)

	// bob, dave and erin subscribe browsers; carol's phone goes through
	// the operator's gateway.
	subs := map[string]*ecdh.PrivateKey{}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	for _, u := range []string{"bob", "dave", "erin"} {
		subs[u], _ = ecdh.P256().GenerateKey(rand.Reader)
		r := s.do(t, "PUT", "/v1/devices/browser", tokens[u], map[string]any{"kind": "webpush", "endpoint": svc.URL + "/push/" + u,
			"keys": map[string]string{"p256dh": b64(subs[u].PublicKey().Bytes()), "auth": b64(auth)}})
		if r.status != 201 {
			t.Fatalf("register %s: %d %s", u, r.status, r.body)
		}
	}
	if r := s.do(t, "PUT", "/v1/devices/phone", tokens["carol"], map[string]any{"kind": "webhook", "platform": "fcm", "token": "fcm-carol"}); r.status != 201 {
		t.Fatalf("register carol: %d %s", r.status, r.body)
	}
	cid := s.createGroup(t, tokens["alice"], "team", "bob", "carol", "dave", "erin")
	if r := s.do(t, "PUT", "/v1/conversations/"+cid+"/settings", tokens["erin"], map[string]bool{"muted": true}); r.status != 200 {
		t.Fatalf("mute: %d %s", r.status, r.body)
	}
	s.connect(t, transportWS, tokens["dave"], "") // closed when the test ends

	s.send(t, tokens["alice"], cid, "lunch at noon?", "c1")
	// The skips counted for online dave and muted erin prove their
	// absence below: the push role has decided about both.
	testutil.Eventually(t, 30*time.Second, func() error {
		if inbox.count("/push/bob") < 1 || inbox.count("webhook") < 1 || !s.metricAtLeast(t, `parley_push_skipped_total{reason="online"}`, 1) ||
			!s.metricAtLeast(t, `parley_push_skipped_total{reason="muted"}`, 1) {
			return fmt.Errorf("pushes: bob %d, carol %d; metrics:\n%s", inbox.count("/push/bob"), inbox.count("webhook"), s.do(t, "GET", "/metrics", "", nil).body)
		}
		return nil
	})
	if n := inbox.count("/push/dave") + inbox.count("/push/erin"); n != 0 {
		t.Fatalf("online dave and muted erin got %d pushes", n)
	}

	// Decrypted and verified by the independent implementations.
	inbox.mu.Lock()
	got := inbox.webpush["/push/bob"][0]
	hooks := inbox.webhooks
	inbox.mu.Unlock()
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks, want 1 (carol's)", len(hooks))
	}
	py := testutil.Python(t)
	in := []map[string]string{{
		"body": base64.StdEncoding.EncodeToString(got.body), "authorization": got.header.Get("Authorization"),
		"endpoint": svc.URL + "/push/bob", "private_key": b64(subs["bob"].Bytes()), "auth": b64(auth), "vapid_public_key": serverKey,
	}}
	var out []struct {
		Plaintext string `json:"plaintext"`
	}
	testutil.RunPython(t, py, "../../delivery/push/testdata/webpush_check.py", in, &out)
	var n map[string]any
	if err := json.Unmarshal([]byte(out[0].Plaintext), &n); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "message", "conversation_id": cid, "seq": n["seq"], "sender_id": "alice", "sender_name": "ALICE", "preview": "lunch at noon?"}
	if fmt.Sprint(n) != fmt.Sprint(want) || n["seq"] == nil {
		t.Fatalf("bob's push = %v, want %v", n, want)
	}
	hin := map[string]any{"secret": secret, "webhooks": []map[string]any{{"body": string(hooks[0].body), "headers": map[string]string{
		"webhook-id": hooks[0].header.Get("webhook-id"), "webhook-timestamp": hooks[0].header.Get("webhook-timestamp"),
		"webhook-signature": hooks[0].header.Get("webhook-signature")}}}}
	var verified []struct {
		Device struct{ ID, Platform, Token string } `json:"device"`
		UserID string                               `json:"user_id"`
	}
	testutil.RunPython(t, py, "../../delivery/push/testdata/webhook_check.py", hin, &verified)
	if v := verified[0]; v.UserID != "carol" || v.Device.ID != "phone" || v.Device.Platform != "fcm" || v.Device.Token != "fcm-carol" {
		t.Fatalf("carol's webhook = %+v", v)
	}
}

// metricAtLeast reports whether the /metrics line of series is >= v.
func (s *server) metricAtLeast(t *testing.T, series string, v float64) bool {
	for _, line := range strings.Split(string(s.do(t, "GET", "/metrics", "", nil).body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var got float64
			fmt.Sscan(rest, &got)
			return got >= v
		}
	}
	return false
}

// TestPushKeysPrintsAConfigurationTheServerTakes: `parley push-keys`
// prints a VAPID pair and a webhook secret that serve accepts from the
// environment, and a new set each time.
func TestPushKeysPrintsAConfigurationTheServerTakes(t *testing.T) {
	keys := func() map[string]string {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"push-keys"}, func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
		return env
	}
	env := keys()
	if len(env) != 3 || env["PARLEY_PUSH_VAPID_PUBLIC_KEY"] == keys()["PARLEY_PUSH_VAPID_PUBLIC_KEY"] {
		t.Fatalf("push-keys printed %v", env)
	}
	var cfg config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.registerFlags(fs)
	env["PARLEY_PUSH_WEBHOOK_URL"] = "https://push.example.com/parley"
	if err := applyEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("serve refuses what push-keys printed: %v", err)
	}
}
