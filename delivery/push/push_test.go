package push

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/memlog"
	"github.com/parleychat/parley/delivery/presence"
	parleytest "github.com/parleychat/parley/internal/testutil"
	"github.com/parleychat/parley/storage/pebble"
)

// received is one request a test server got.
type received struct {
	path    string
	header  http.Header
	body    []byte
	arrived time.Time
}

// pushService is a push service on loopback that speaks RFC 8030's
// receiving side: POST /push/{id} with an encrypted body, answered 201
// with a Location, or with the status set for the path.
type pushService struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status map[string]int
	// answer, when set, picks the status of each request before it is
	// taken (0: take it); hold, when set, is waited for first.
	answer func() int
	hold   chan struct{}
}

func newPushService(t *testing.T) *pushService {
	s := &pushService{status: map[string]int{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/push/") {
			http.Error(w, "not a push resource", http.StatusNotFound)
			return
		}
		// RFC 8030 §5: TTL is required; RFC 8291: aes128gcm.
		if r.Header.Get("TTL") == "" || r.Header.Get("Content-Encoding") != "aes128gcm" {
			http.Error(w, "missing TTL or not aes128gcm", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		hold := s.hold
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		st := s.status[r.URL.Path]
		if s.answer != nil {
			if a := s.answer(); a != 0 {
				s.mu.Unlock()
				w.WriteHeader(a)
				return
			}
		}
		s.got = append(s.got, received{path: r.URL.Path, header: r.Header.Clone(), body: body, arrived: time.Now()})
		s.mu.Unlock()
		if st != 0 {
			w.WriteHeader(st)
			return
		}
		w.Header().Set("Location", "/message/"+strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *pushService) received(path string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, r := range s.got {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// caFile writes the service's certificate as a PEM file for Config.CAFile.
func (s *pushService) caFile(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// subscription is a browser's side of a Web Push subscription.
type subscription struct {
	endpoint string
	priv     *ecdh.PrivateKey
	auth     []byte
}

type nopDir struct{}

func (nopDir) Conversations(context.Context, string) ([]string, error) { return nil, nil }
func (nopDir) Room(context.Context, string, int) (presence.Room, error) {
	return presence.Room{}, chat.ErrNotFound
}
func (nopDir) IsMember(context.Context, string, string) (bool, error) { return false, nil }
func (nopDir) Members(context.Context, string, string, int) ([]string, error) {
	return nil, nil
}

type nopOut struct{}

func (nopOut) Ephemeral([]string, chat.Ephemeral) {}

// env is a push role on the embedded log and store, with a gateway's
// presence Tracker to say who is online, a push service and a webhook
// receiver.
type env struct {
	t         *testing.T
	ctx       context.Context
	log       *memlog.Log
	store     *pebble.Store
	tracker   *presence.Tracker
	pusher    *Pusher
	svc       *pushService
	hook      *hookReceiver
	vapidPub  string
	reg       *prometheus.Registry
	webSecret string
}

func newEnv(t *testing.T, tune func(*Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	st, err := pebble.Open(ctx, pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	e := &env{t: t, ctx: ctx, log: lg, store: st, svc: newPushService(t), reg: prometheus.NewRegistry()}
	e.webSecret = "whsec_" + base64.StdEncoding.EncodeToString(randomBytes(32))
	e.hook = newHookReceiver(t, e.webSecret)

	vapid, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.vapidPub = base64.RawURLEncoding.EncodeToString(vapid.PublicKey().Bytes())
	cfg := Config{
		WebhookURL: e.hook.srv.URL + "/hook", WebhookSecret: e.webSecret,
		Subject: "mailto:ops@example.com", CAFile: e.svc.caFile(t), Workers: 4,
		VAPIDPublicKey: e.vapidPub, VAPIDPrivateKey: base64.RawURLEncoding.EncodeToString(vapid.Bytes()),
		AllowLoopback: true,
		Delay:         50 * time.Millisecond, Settle: 100 * time.Millisecond, RetryBase: 20 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e.tracker = presence.New(presence.Config{Grace: 200 * time.Millisecond}, "gw-test", lg, nopDir{}, nopOut{}, logger)
	view := presence.NewView("push-test", lg, cfg.Settle, logger)
	e.pusher, err = New(cfg, Deps{Log: lg, Store: st, Presence: view, Logger: logger, Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{e.tracker.Run, view.Run, e.pusher.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		st.Close()
		lg.Close()
	})
	waitFor(t, "the presence view to be ready", func() bool {
		select {
		case <-view.Ready():
			return true
		default:
			return false
		}
	})
	return e
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// waitFor polls cond until it holds; the deadline only bounds a failing
// test, it asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	parleytest.Eventually(t, 20*time.Second, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}

// subscribe registers a Web Push device of user whose endpoint is
// /push/{device} on the test's push service.
func (e *env) subscribe(user, device string) subscription {
	e.t.Helper()
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	s := subscription{endpoint: e.svc.srv.URL + "/push/" + device, priv: priv, auth: randomBytes(16)}
	now := time.Now()
	if _, err := e.store.PutDevice(e.ctx, chat.Device{ID: device, UserID: user, Kind: chat.DeviceWebPush, Endpoint: s.endpoint,
		Keys: &chat.WebPushKeys{
			P256DH: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(s.auth),
		}, CreatedAt: now, UpdatedAt: now}); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// post appends a sequenced message.created as the sequencer would.
func (e *env) post(cid string, seq int64, sender, text string, recipients ...string) {
	e.t.Helper()
	now := time.Now().UTC()
	s := chat.Sequenced{CommandID: chat.NewID("cmd"), Recipients: recipients, Events: []chat.Event{{
		Type: chat.EventMessageCreated, ConversationID: cid, Seq: seq, EventID: chat.NewID("evt"), At: now, Actor: sender,
		Message: &chat.Message{ID: chat.NewID("msg"), ConversationID: cid, Seq: seq, SenderID: sender, Text: text, CreatedAt: now},
	}}}
	b, _ := record.EncodeSequenced(&s)
	if err := e.log.Append(e.ctx, chat.TopicEvents, &chat.Record{Key: cid, Value: b}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) counter(name string, labels ...string) float64 {
	switch name {
	case "deliveries":
		return testutil.ToFloat64(e.pusher.deliveries.WithLabelValues(labels...))
	case "failures":
		return testutil.ToFloat64(e.pusher.failures.WithLabelValues(labels...))
	case "skipped":
		return testutil.ToFloat64(e.pusher.skipped.WithLabelValues(labels...))
	}
	panic(name)
}

// decrypt has the independent implementations (http_ece and
// cryptography, in Python) decrypt what the push service received for
// sub and verify its VAPID token against the server's public key.
func (e *env) decrypt(sub subscription, got []received) []Notification {
	e.t.Helper()
	type req struct {
		Body           string `json:"body"`
		Authorization  string `json:"authorization"`
		Endpoint       string `json:"endpoint"`
		PrivateKey     string `json:"private_key"`
		Auth           string `json:"auth"`
		VAPIDPublicKey string `json:"vapid_public_key"`
	}
	var in []req
	for _, r := range got {
		in = append(in, req{
			Body: base64.StdEncoding.EncodeToString(r.body), Authorization: r.header.Get("Authorization"),
			Endpoint: sub.endpoint, PrivateKey: base64.RawURLEncoding.EncodeToString(sub.priv.Bytes()),
			Auth: base64.RawURLEncoding.EncodeToString(sub.auth), VAPIDPublicKey: e.vapidPub,
		})
	}
	var out []struct {
		Plaintext string         `json:"plaintext"`
		Claims    map[string]any `json:"claims"`
	}
	parleytest.RunPython(e.t, parleytest.Python(e.t), filepath.Join("testdata", "webpush_check.py"), in, &out)
	var ns []Notification
	for _, o := range out {
		if o.Claims["sub"] != "mailto:ops@example.com" {
			e.t.Errorf("VAPID sub = %v, want mailto:ops@example.com", o.Claims["sub"])
		}
		var n Notification
		if err := json.Unmarshal([]byte(o.Plaintext), &n); err != nil {
			e.t.Fatalf("plaintext %q: %v", o.Plaintext, err)
		}
		ns = append(ns, n)
	}
	return ns
}

// TestOfflineRecipientGetsOnePushThatOthersCanDecrypt: a recipient with no
// connection gets one push per message on its device, the sender none;
// what arrives decrypts with the subscription's private key in http_ece,
// carries a VAPID token that verifies against the server's key, and says
// conversation, seq and sender, without the text (previews are off).
func TestOfflineRecipientGetsOnePushThatOthersCanDecrypt(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.subscribe("bob", "bob-phone")
	e.subscribe("alice", "alice-phone")
	if err := e.store.SetUserName(e.ctx, "alice", "Alice A.", false); err != nil {
		t.Fatal(err)
	}
	e.post("cnv_1", 7, "alice", "secret plans", "alice", "bob")
	waitFor(t, "a push to bob", func() bool { return e.counter("deliveries", "webpush") == 1 })

	got := e.svc.received("/push/bob-phone")
	if len(got) != 1 {
		t.Fatalf("bob's device got %d pushes, want 1", len(got))
	}
	if n := len(e.svc.received("/push/alice-phone")); n != 0 {
		t.Fatalf("the sender got %d pushes", n)
	}
	h := got[0].header
	if h.Get("Topic") != topic("cnv_1") || len(h.Get("Topic")) > 32 || strings.Contains(h.Get("Topic"), "cnv_1") {
		t.Errorf("Topic = %q, want an opaque collapse key of at most 32 characters", h.Get("Topic"))
	}
	if h.Get("Urgency") != "high" || h.Get("TTL") == "" {
		t.Errorf("Urgency %q TTL %q", h.Get("Urgency"), h.Get("TTL"))
	}
	ns := e.decrypt(bob, got)
	want := Notification{Type: "message", ConversationID: "cnv_1", Seq: 7, SenderID: "alice", SenderName: "Alice A."}
	if ns[0] != want {
		t.Fatalf("push = %+v, want %+v", ns[0], want)
	}
}

// TestPreviewOnlyWhenEnabled: with --push.preview the payload carries the
// text's first 100 characters.
func TestPreviewOnlyWhenEnabled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Preview = true })
	bob := e.subscribe("bob", "bob-phone")
	text := strings.Repeat("é", 150)
	e.post("cnv_1", 1, "alice", text, "alice", "bob")
	waitFor(t, "a push", func() bool { return e.counter("deliveries", "webpush") == 1 })
	ns := e.decrypt(bob, e.svc.received("/push/bob-phone"))
	if ns[0].Preview != strings.Repeat("é", 100) {
		t.Fatalf("preview = %q (%d runes), want the first 100 characters", ns[0].Preview, len([]rune(ns[0].Preview)))
	}
}

// TestOnlineRecipientGetsNoPush: a recipient with a connection open on a
// gateway gets nothing, while an offline one in the same message does.
func TestOnlineRecipientGetsNoPush(t *testing.T) {
	e := newEnv(t, nil)
	e.subscribe("bob", "bob-phone")
	e.subscribe("carol", "carol-phone")
	e.tracker.Connected("bob")
	e.post("cnv_1", 1, "alice", "hi", "alice", "bob", "carol")
	waitFor(t, "bob to be skipped as online", func() bool { return e.counter("skipped", "online") == 1 })
	waitFor(t, "carol's push", func() bool { return e.counter("deliveries", "webpush") == 1 })
	if n := len(e.svc.received("/push/bob-phone")); n != 0 {
		t.Fatalf("online bob got %d pushes", n)
	}

	// Once bob's last connection closed and the grace passed, he is
	// offline everywhere and gets pushes again.
	e.tracker.Disconnected("bob")
	waitFor(t, "bob to go offline", func() bool { return !e.pusher.presence.Online("bob") })
	e.post("cnv_1", 2, "alice", "still there?", "alice", "bob")
	waitFor(t, "bob's push", func() bool { return len(e.svc.received("/push/bob-phone")) == 1 })
}

// TestMutedConversationGetsNoPush: muting one conversation stops its
// pushes and no other's.
func TestMutedConversationGetsNoPush(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.subscribe("bob", "bob-phone")
	if err := e.store.PutSettings(e.ctx, "bob", "cnv_muted", chat.ConversationSettings{Muted: true}); err != nil {
		t.Fatal(err)
	}
	e.post("cnv_muted", 1, "alice", "noise", "alice", "bob")
	waitFor(t, "the muted skip", func() bool { return e.counter("skipped", "muted") == 1 })
	e.post("cnv_other", 1, "alice", "signal", "alice", "bob")
	waitFor(t, "the other conversation's push", func() bool { return e.counter("deliveries", "webpush") == 1 })
	ns := e.decrypt(bob, e.svc.received("/push/bob-phone"))
	if len(ns) != 1 || ns[0].ConversationID != "cnv_other" {
		t.Fatalf("pushes = %+v, want one, of cnv_other", ns)
	}
}

// TestGoneSubscriptionIsRemoved: a 410 (and a 404) from the push service
// removes that device and leaves the user's others.
func TestGoneSubscriptionIsRemoved(t *testing.T) {
	e := newEnv(t, nil)
	e.subscribe("bob", "old-laptop")
	e.subscribe("bob", "lost-tablet")
	e.subscribe("bob", "phone")
	e.svc.mu.Lock()
	e.svc.status["/push/old-laptop"] = http.StatusGone
	e.svc.status["/push/lost-tablet"] = http.StatusNotFound
	e.svc.mu.Unlock()
	e.post("cnv_1", 1, "alice", "hi", "alice", "bob")
	waitFor(t, "two gone subscriptions", func() bool { return e.counter("failures", "webpush", "gone") == 2 })
	waitFor(t, "the phone's push", func() bool { return e.counter("deliveries", "webpush") == 1 })
	ds, err := e.store.Devices(e.ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].ID != "phone" {
		t.Fatalf("bob's devices = %+v, want only phone", ds)
	}
	if n := len(e.svc.received("/push/old-laptop")); n != 1 {
		t.Fatalf("a gone subscription was tried %d times, want 1 (no retry)", n)
	}
}

// TestServerErrorsAreRetried: a 503 and a 429 are tried again with
// backoff until the service takes the push.
func TestServerErrorsAreRetried(t *testing.T) {
	e := newEnv(t, nil)
	e.subscribe("bob", "phone")
	var calls int
	e.svc.mu.Lock()
	e.svc.answer = func() int {
		calls++
		switch calls {
		case 1:
			return http.StatusServiceUnavailable
		case 2:
			return http.StatusTooManyRequests
		}
		return 0
	}
	e.svc.mu.Unlock()
	e.post("cnv_1", 1, "alice", "hi", "alice", "bob")
	waitFor(t, "the push after two retries", func() bool { return e.counter("deliveries", "webpush") == 1 })
	e.svc.mu.Lock()
	defer e.svc.mu.Unlock()
	if calls != 3 {
		t.Fatalf("%d attempts, want 3", calls)
	}
}

// TestPushesCollapsePerConversation: messages to an offline device within
// the collapse window make one push; what comes during the window is sent
// as one push, naming the newest message, when the window ends, never
// sooner. Another conversation has a window of its own.
func TestPushesCollapsePerConversation(t *testing.T) {
	const window = 1500 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.Collapse = window })
	bob := e.subscribe("bob", "phone")
	e.post("cnv_1", 1, "alice", "one", "alice", "bob")
	waitFor(t, "the first push", func() bool { return len(e.svc.received("/push/phone")) == 1 })
	for seq := int64(2); seq <= 4; seq++ {
		e.post("cnv_1", seq, "alice", "more", "alice", "bob")
	}
	e.post("cnv_2", 1, "alice", "elsewhere", "alice", "bob")
	waitFor(t, "three pushes", func() bool { return len(e.svc.received("/push/phone")) == 3 })
	got := e.svc.received("/push/phone")
	ns := e.decrypt(bob, got)
	var first, trailing received
	var other bool
	for i, n := range ns {
		switch {
		case n.ConversationID == "cnv_2":
			other = true
		case n.Seq == 1:
			first = got[i]
		case n.Seq == 4:
			trailing = got[i]
		default:
			t.Fatalf("unexpected push %+v", n)
		}
	}
	if !other || first.body == nil || trailing.body == nil {
		t.Fatalf("pushes = %+v, want seq 1 and seq 4 of cnv_1 and one of cnv_2", ns)
	}
	if gap := trailing.arrived.Sub(first.arrived); gap < window {
		t.Fatalf("second push of cnv_1 came %v after the first, inside the %v window", gap, window)
	}
	// Nothing more is pending: no fourth push once the window ran out.
	waitFor(t, "the pair to be forgotten", func() bool {
		e.pusher.mu.Lock()
		defer e.pusher.mu.Unlock()
		return len(e.pusher.slots) == 0
	})
	if n := len(e.svc.received("/push/phone")); n != 3 {
		t.Fatalf("%d pushes, want 3", n)
	}
}

// TestEndpointsOnPrivateAddressesAreRefusedAtSendTime: a device whose
// endpoint reaches a loopback (or private) address is not called when
// loopback is not allowed, even though it is in the Store, as after a
// DNS change; the check is made on the address dialled.
func TestEndpointsOnPrivateAddressesAreRefusedAtSendTime(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowLoopback = false })
	e.subscribe("bob", "phone")
	// A name that resolves to loopback: only the dial-time check sees it.
	u := strings.Replace(e.svc.srv.URL, "127.0.0.1", "localhost", 1)
	ds, _ := e.store.Devices(e.ctx, "bob")
	d := ds[0]
	d.ID, d.Endpoint = "by-name", u+"/push/by-name"
	if _, err := e.store.PutDevice(e.ctx, d); err != nil {
		t.Fatal(err)
	}
	e.post("cnv_1", 1, "alice", "hi", "alice", "bob")
	waitFor(t, "two blocked pushes", func() bool { return e.counter("failures", "webpush", "blocked") == 2 })
	if n := len(e.svc.received("/push/phone")) + len(e.svc.received("/push/by-name")); n != 0 {
		t.Fatalf("the push service on loopback got %d requests", n)
	}
}

// hookReceiver is the operator's push gateway: it verifies each webhook's
// signature itself (answering 401 when it does not verify) and keeps them.
type hookReceiver struct {
	srv    *httptest.Server
	key    []byte
	mu     sync.Mutex
	got    []received
	status int
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{key: key}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		mac := hmac.New(sha256.New, h.key)
		fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		ok := false
		for _, sig := range strings.Fields(r.Header.Get("webhook-signature")) {
			if hmac.Equal([]byte(sig), []byte(want)) {
				ok = true
			}
		}
		if !ok || id == "" {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, received{path: r.URL.Path, header: r.Header.Clone(), body: body, arrived: time.Now()})
		st := h.status
		h.mu.Unlock()
		if st != 0 {
			w.WriteHeader(st)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// TestWebhookDevicesGetSignedWebhooks: a webhook device's push is POSTed
// to --push.webhook-url with the Standard Webhooks headers; the receiver
// checks the signature, and so does the Standard Webhooks reference
// library (Python); a 410 removes the device.
func TestWebhookDevicesGetSignedWebhooks(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	for _, d := range []chat.Device{
		{ID: "android", UserID: "bob", Kind: chat.DeviceWebhook, Platform: chat.PlatformFCM, Token: "fcm-token-1", CreatedAt: now, UpdatedAt: now},
		{ID: "iphone", UserID: "carol", Kind: chat.DeviceWebhook, Platform: chat.PlatformAPNs, Token: "apns-token-2", CreatedAt: now, UpdatedAt: now},
	} {
		if _, err := e.store.PutDevice(e.ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	e.post("cnv_1", 3, "alice", "hello", "alice", "bob", "carol")
	waitFor(t, "two webhooks", func() bool { return e.counter("deliveries", "webhook") == 2 })

	type hook struct {
		Body    string            `json:"body"`
		Headers map[string]string `json:"headers"`
	}
	var hooks []hook
	for _, r := range e.hook.received() {
		hooks = append(hooks, hook{Body: string(r.body), Headers: map[string]string{
			"webhook-id": r.header.Get("webhook-id"), "webhook-timestamp": r.header.Get("webhook-timestamp"),
			"webhook-signature": r.header.Get("webhook-signature"),
		}})
	}
	var verified []webhookBody
	parleytest.RunPython(t, parleytest.Python(t), filepath.Join("testdata", "webhook_check.py"), map[string]any{"secret": e.webSecret, "webhooks": hooks}, &verified)
	byUser := map[string]webhookBody{}
	for _, v := range verified {
		byUser[v.UserID] = v
	}
	if b := byUser["bob"]; b.Device.ID != "android" || b.Device.Platform != "fcm" || b.Device.Token != "fcm-token-1" ||
		b.Notification != (Notification{Type: "message", ConversationID: "cnv_1", Seq: 3, SenderID: "alice", SenderName: "alice"}) {
		t.Fatalf("bob's webhook = %+v", b)
	}
	if c := byUser["carol"]; c.Device.ID != "iphone" || c.Device.Platform != "apns" {
		t.Fatalf("carol's webhook = %+v", c)
	}

	// The gateway says a token is dead: the device goes.
	e.hook.mu.Lock()
	e.hook.status = http.StatusGone
	e.hook.mu.Unlock()
	e.post("cnv_2", 1, "alice", "again", "alice", "bob")
	waitFor(t, "the gone webhook device", func() bool { return e.counter("failures", "webhook", "gone") == 1 })
	if ds, _ := e.store.Devices(e.ctx, "bob"); len(ds) != 0 {
		t.Fatalf("bob's devices = %+v, want none", ds)
	}
}

// TestSlowPushServiceDoesNotHoldTheConsumer: while every push hangs, the
// role still reads the events log: its handler only queues.
func TestSlowPushServiceDoesNotHoldTheConsumer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers = 1 })
	release := make(chan struct{})
	e.svc.mu.Lock()
	e.svc.hold = release
	e.svc.mu.Unlock()
	defer close(release)
	e.subscribe("bob", "phone")
	for i := 1; i <= 50; i++ {
		e.post(fmt.Sprintf("cnv_%d", i), 1, "alice", "hi", "alice", "bob")
	}
	// Every message was read and queued although no push finished.
	waitFor(t, "50 queued pairs", func() bool {
		e.pusher.mu.Lock()
		defer e.pusher.mu.Unlock()
		return len(e.pusher.slots) == 50
	})
	if d := e.counter("deliveries", "webpush"); d != 0 {
		t.Fatalf("%v deliveries while the service hangs", d)
	}
}

// switchPresence is a ready Presence whose online users the test sets.
type switchPresence struct {
	mu     sync.Mutex
	online map[string]bool
}

func (*switchPresence) Ready() <-chan struct{} { return closedReady }
func (s *switchPresence) Online(u string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online[u]
}
func (s *switchPresence) set(u string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.online[u] = on
}

// TestRecipientWhoComesOnlineWithinTheDelayGetsNoPush: a recipient offline
// when the message is read, whose online record arrives within Delay, is
// looked at again then and gets no push; one who stays offline gets it.
func TestRecipientWhoComesOnlineWithinTheDelayGetsNoPush(t *testing.T) {
	e := newEnv(t, nil)
	e.subscribe("bob", "bob-phone")
	e.subscribe("carol", "carol-phone")
	pres := &switchPresence{online: map[string]bool{}}
	cfg := e.pusher.cfg
	cfg.Delay = 300 * time.Millisecond
	p, err := New(cfg, Deps{Store: e.store, Presence: pres, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.schedule(ctx) }()
	go func() { defer wg.Done(); p.worker(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	b, _ := record.EncodeSequenced(&chat.Sequenced{Recipients: []string{"alice", "bob", "carol"}, Events: []chat.Event{{
		Type: chat.EventMessageCreated, ConversationID: "cnv_1", Seq: 1, At: time.Now(),
		Message: &chat.Message{ConversationID: "cnv_1", Seq: 1, SenderID: "alice", Text: "hi"},
	}}})
	if err := p.handle(ctx, 0, []chat.Record{{Value: b}}); err != nil {
		t.Fatal(err)
	}
	pres.set("bob", true) // bob's online record, just behind the message
	waitFor(t, "carol's push", func() bool { return testutil.ToFloat64(p.deliveries.WithLabelValues("webpush")) == 1 })
	waitFor(t, "bob skipped as online", func() bool { return testutil.ToFloat64(p.skipped.WithLabelValues("online")) == 1 })
	if n := len(e.svc.received("/push/bob-phone")); n != 0 {
		t.Fatalf("bob got %d pushes", n)
	}
}
