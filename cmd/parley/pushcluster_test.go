package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

// TestClusterPushNodeKnowsWhoIsOnlineOnEveryGateway: on the real engines,
// a push-only node (a process with no connections of its own) pushes to a
// member who is offline everywhere and not to one whose WebSocket is open
// on another gateway than the sender's.
func TestClusterPushNodeKnowsWhoIsOnlineOnEveryGateway(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	svc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got[r.URL.Path]++
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer svc.Close()
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return got[path]
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: svc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	vapid, _ := ecdh.P256().GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString

	c := newCluster(t, 8)
	c.args = append(c.args, "--push.vapid-public-key", b64(vapid.PublicKey().Bytes()), "--push.vapid-private-key", b64(vapid.Bytes()),
		"--push.allow-loopback", "--push.ca-file", ca)
	c.start("sequencer", "sequencer")
	a := c.start("gateway-a", "gateway")
	b := c.start("gateway-b", "gateway")
	pusher := c.start("push", "push")
	apiA, apiB := a.api(t), b.api(t)
	alice, bob, carol := apiA.signIn(t, "alice"), apiB.signIn(t, "bob"), apiA.signIn(t, "carol")
	for user, tok := range map[string]string{"bob": bob, "carol": carol} {
		sub, _ := ecdh.P256().GenerateKey(rand.Reader)
		auth := make([]byte, 16)
		_, _ = rand.Read(auth)
		r := apiA.do(t, "PUT", "/v1/devices/browser", tok, map[string]any{"kind": "webpush", "endpoint": svc.URL + "/push/" + user,
			"keys": map[string]string{"p256dh": b64(sub.PublicKey().Bytes()), "auth": b64(auth)}})
		if r.status != 201 {
			t.Fatalf("register %s: %d %s", user, r.status, r.body)
		}
	}
	cid := apiA.createGroup(t, alice, "cluster push", "bob", "carol")
	apiB.connect(t, transportWS, bob, "") // bob is online on gateway B only
	// Gateway A has read B's online record from the log, as the push
	// node does.
	testutil.Eventually(t, 30*time.Second, func() error {
		if on := fmt.Sprint(apiA.do(t, "GET", "/v1/conversations/"+cid+"/presence", alice, nil).json(t)["online"]); on != "[bob]" {
			return fmt.Errorf("gateway A never saw bob online: online %s", on)
		}
		return nil
	})

	apiA.send(t, alice, cid, "anyone?", "p1")
	// The skip counted for bob's online state is what proves his absence:
	// the push node has decided about him, so a push to him would have
	// been sent by now.
	testutil.Eventually(t, 60*time.Second, func() error {
		if count("/push/carol") < 1 || !pusher.api(t).metricAtLeast(t, `parley_push_skipped_total{reason="online"}`, 1) {
			return fmt.Errorf("carol got %d pushes; the push node's metrics:\n%s", count("/push/carol"), pusher.api(t).do(t, "GET", "/metrics", "", nil).body)
		}
		return nil
	})
	if n := count("/push/bob"); n != 0 {
		t.Fatalf("bob, online on gateway B, got %d pushes", n)
	}
}
