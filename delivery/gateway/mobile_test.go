package gateway

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/rest"
)

func mobileHarness(t *testing.T, cfg Config) *restHarness {
	t.Helper()
	if cfg.MaxConnsPerUser == 0 {
		cfg.MaxConnsPerUser, cfg.SendRate, cfg.SendBurst, cfg.QueueSize, cfg.CommandTimeout = 5, 1e6, 1e6, 64, 10*time.Second
	}
	srv, v, _ := startGateway(t, cfg)
	return &restHarness{t: t, url: srv.URL, v: v}
}

// TestMutedIsTheCallersOwnAndShowsInConversations: PUT …/settings
// answers the setting, a non-member gets 404, a body without a boolean
// muted gets 400, and the caller's conversation objects (list and single)
// then show muted while other members' do not; the setting survives the
// sends and reads that rewrite the caller's membership row.
func TestMutedIsTheCallersOwnAndShowsInConversations(t *testing.T) {
	h := mobileHarness(t, Config{})
	var c chat.Conversation
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Ops", "members": []string{"bob"}}, &c); st != 201 {
		t.Fatalf("create: %d", st)
	}
	settings := "/v1/conversations/" + c.ID + "/settings"
	var got map[string]any
	if st := h.call("alice", "PUT", settings, map[string]bool{"muted": true}, &got); st != 200 || got["muted"] != true || len(got) != 1 {
		t.Fatalf("PUT settings: %d %v; want 200 {muted:true}", st, got)
	}
	for _, body := range []any{map[string]any{}, map[string]any{"muted": "yes"}, map[string]any{"muted": nil}, json.RawMessage(`[true]`), json.RawMessage(`{"muted":`)} {
		if st := h.call("alice", "PUT", settings, body, nil); st != 400 {
			t.Errorf("PUT settings %v: %d, want 400", body, st)
		}
	}
	if st := h.call("carol", "PUT", settings, map[string]bool{"muted": true}, nil); st != 404 {
		t.Errorf("PUT settings by a non-member: %d, want 404", st)
	}
	if st := h.call("alice", "PUT", "/v1/conversations/cnv_nope/settings", map[string]bool{"muted": true}, nil); st != 404 {
		t.Errorf("PUT settings of an unknown conversation: %d, want 404", st)
	}
	// Sends and reads rewrite alice's membership row in the sequencer.
	h.send("alice", c.ID, "one")
	m := h.send("bob", c.ID, "two")
	if st := h.call("alice", "POST", "/v1/conversations/"+c.ID+"/read", map[string]int64{"seq": m.Seq}, nil); st != 204 {
		t.Fatalf("read: %d", st)
	}
	muted := func(user string) (list, single bool) {
		var l struct{ Conversations []chat.Conversation }
		if st := h.call(user, "GET", "/v1/conversations", nil, &l); st != 200 || len(l.Conversations) != 1 {
			t.Fatalf("list as %s: %d %+v", user, st, l)
		}
		var one chat.Conversation
		if st := h.call(user, "GET", "/v1/conversations/"+c.ID, nil, &one); st != 200 {
			t.Fatalf("get as %s: %d", user, st)
		}
		return l.Conversations[0].Muted, one.Muted
	}
	if l, s := muted("alice"); !l || !s {
		t.Errorf("alice's conversation muted: list %v, single %v; want true", l, s)
	}
	if l, s := muted("bob"); l || s {
		t.Errorf("bob's conversation muted: list %v, single %v; want false (alice's setting is hers)", l, s)
	}
	if st := h.call("alice", "GET", settings, nil, &got); st != 200 || got["muted"] != true {
		t.Errorf("GET settings: %d %v", st, got)
	}
	if st := h.call("alice", "PUT", settings, map[string]bool{"muted": false}, &got); st != 200 || got["muted"] != false {
		t.Fatalf("unmute: %d %v", st, got)
	}
	if l, s := muted("alice"); l || s {
		t.Errorf("after unmuting: list %v, single %v; want false", l, s)
	}
}

func testP256DH(t *testing.T) string {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes())
}

// TestDeviceRegistry: PUT /v1/devices/{id} answers 201 then 200 with the
// device (keys and tokens never returned), GET lists only the caller's,
// DELETE answers 204 then 404, and another user's device id is a 404 for
// them (ids are per user); bad ids, kinds, endpoints and keys are 400.
func TestDeviceRegistry(t *testing.T) {
	h := mobileHarness(t, Config{})
	auth := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	p256dh := testP256DH(t)
	web := map[string]any{"kind": "webpush", "endpoint": "https://8.8.8.8/push/abc", "keys": map[string]string{"p256dh": p256dh, "auth": auth}}
	hook := map[string]any{"kind": "webhook", "platform": "fcm", "token": "fcm-token-1"}

	var d map[string]any
	if st := h.call("alice", "PUT", "/v1/devices/phone", web, &d); st != 201 {
		t.Fatalf("PUT new webpush device: %d, want 201", st)
	}
	if d["id"] != "phone" || d["kind"] != "webpush" || d["endpoint"] != "https://8.8.8.8/push/abc" || d["keys"] != nil || d["created_at"] == nil {
		t.Errorf("new device answer: %v", d)
	}
	created := d["created_at"]
	web["endpoint"] = "https://8.8.4.4/push/def"
	if st := h.call("alice", "PUT", "/v1/devices/phone", web, &d); st != 200 || d["endpoint"] != "https://8.8.4.4/push/def" || d["created_at"] != created {
		t.Errorf("PUT replacing: %d %v; want 200 with the new endpoint and the first created_at %v", st, d, created)
	}
	if st := h.call("alice", "PUT", "/v1/devices/laptop.work_1-a", hook, &d); st != 201 || d["platform"] != "fcm" || d["token"] != nil {
		t.Errorf("PUT webhook device: %d %v", st, d)
	}
	if st := h.call("bob", "PUT", "/v1/devices/phone", hook, nil); st != 201 {
		t.Errorf("bob's own phone: %d, want 201 (ids are per user)", st)
	}

	var list struct{ Devices []map[string]any }
	if st := h.call("alice", "GET", "/v1/devices", nil, &list); st != 200 || len(list.Devices) != 2 {
		t.Fatalf("GET devices: %d %v", st, list)
	}
	if list.Devices[0]["id"] != "laptop.work_1-a" || list.Devices[1]["id"] != "phone" {
		t.Errorf("devices not in id order: %v", list.Devices)
	}
	for _, x := range list.Devices {
		if x["keys"] != nil || x["token"] != nil || x["user_id"] != nil {
			t.Errorf("a listed device shows secrets: %v", x)
		}
	}
	if st := h.call("carol", "GET", "/v1/devices", nil, &list); st != 200 || list.Devices == nil || len(list.Devices) != 0 {
		t.Errorf("carol's devices: %d %v; want 200 []", st, list.Devices)
	}
	if st := h.call("carol", "DELETE", "/v1/devices/laptop.work_1-a", nil, nil); st != 404 {
		t.Errorf("DELETE of another user's device: %d, want 404", st)
	}
	if st := h.call("alice", "DELETE", "/v1/devices/phone", nil, nil); st != 204 {
		t.Errorf("DELETE: %d, want 204", st)
	}
	if st := h.call("alice", "DELETE", "/v1/devices/phone", nil, nil); st != 404 {
		t.Errorf("DELETE again: %d, want 404", st)
	}
	if st := h.call("bob", "GET", "/v1/devices", nil, &list); st != 200 || len(list.Devices) != 1 {
		t.Errorf("bob's phone after alice deleted hers: %v", list.Devices)
	}

	long := make([]byte, 65)
	for i := range long {
		long[i] = 'a'
	}
	with := func(base map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range base {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name, id string
		body     any
	}{
		{"id too long", string(long), hook},
		{"id with a bad character", "ph%40ne", hook},
		{"no kind", "x", with(hook, "kind", nil)},
		{"unknown kind", "x", with(hook, "kind", "sms")},
		{"unknown platform", "x", with(hook, "platform", "windows")},
		{"no token", "x", with(hook, "token", nil)},
		{"token with spaces", "x", with(hook, "token", "a b")},
		{"http endpoint", "x", with(web, "endpoint", "http://8.8.8.8/push")},
		{"no endpoint", "x", with(web, "endpoint", nil)},
		{"loopback endpoint", "x", with(web, "endpoint", "https://127.0.0.1/push")},
		{"localhost endpoint", "x", with(web, "endpoint", "https://localhost:8443/push")},
		{"ipv6 loopback endpoint", "x", with(web, "endpoint", "https://[::1]/push")},
		{"mapped loopback endpoint", "x", with(web, "endpoint", "https://[::ffff:127.0.0.1]/push")},
		{"private endpoint", "x", with(web, "endpoint", "https://10.1.2.3/push")},
		{"link-local endpoint", "x", with(web, "endpoint", "https://169.254.169.254/latest")},
		{"unspecified endpoint", "x", with(web, "endpoint", "https://0.0.0.0/push")},
		{"endpoint with credentials", "x", with(web, "endpoint", "https://u:p@8.8.8.8/push")},
		{"no keys", "x", with(web, "keys", nil)},
		{"short auth", "x", with(web, "keys", map[string]string{"p256dh": p256dh, "auth": "AAAA"})},
		{"p256dh not base64url", "x", with(web, "keys", map[string]string{"p256dh": "!!" + p256dh[2:], "auth": auth})},
		{"p256dh off the curve", "x", with(web, "keys", map[string]string{"p256dh": base64.RawURLEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...)), "auth": auth})},
		{"keys not an object", "x", with(web, "keys", "k")},
	} {
		if st := h.call("alice", "PUT", "/v1/devices/"+tc.id, tc.body, nil); st != 400 {
			t.Errorf("%s: %d, want 400", tc.name, st)
		}
	}
	if st := h.call("alice", "DELETE", "/v1/devices/"+string(long), nil, nil); st != 400 {
		t.Errorf("DELETE with an invalid id: %d, want 400", st)
	}
	if st := h.call("alice", "GET", "/v1/push/vapid-public-key", nil, nil); st != 404 {
		t.Errorf("vapid key without Web Push configured: %d, want 404", st)
	}
}

// TestLoopbackEndpointsOnlyWhenAllowed: with --push.allow-loopback a
// loopback endpoint is taken (tests run their push service in-process),
// private ones still are not; the configured VAPID key is served.
func TestLoopbackEndpointsOnlyWhenAllowed(t *testing.T) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	push := rest.PushConfig{
		VAPIDPublicKey:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		VAPIDPrivateKey: base64.RawURLEncoding.EncodeToString(k.Bytes()),
		AllowLoopback:   true,
	}
	if err := push.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	h := mobileHarness(t, Config{Push: push})
	keys := map[string]string{"p256dh": testP256DH(t), "auth": base64.RawURLEncoding.EncodeToString(make([]byte, 16))}
	if st := h.call("alice", "PUT", "/v1/devices/b1", map[string]any{"kind": "webpush", "endpoint": "https://127.0.0.1:8443/push/1", "keys": keys}, nil); st != 201 {
		t.Errorf("loopback endpoint with allow-loopback: %d, want 201", st)
	}
	if st := h.call("alice", "PUT", "/v1/devices/b2", map[string]any{"kind": "webpush", "endpoint": "https://192.168.1.1/push/1", "keys": keys}, nil); st != 400 {
		t.Errorf("private endpoint with allow-loopback: %d, want 400", st)
	}
	var got map[string]string
	if st := h.call("alice", "GET", "/v1/push/vapid-public-key", nil, &got); st != 200 || got["key"] != push.VAPIDPublicKey {
		t.Errorf("vapid key: %d %v", st, got)
	}
}

func TestPushConfigRefusesHalfOrMismatchedKeys(t *testing.T) {
	a, _ := ecdh.P256().GenerateKey(rand.Reader)
	b, _ := ecdh.P256().GenerateKey(rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	for name, c := range map[string]rest.PushConfig{
		"public only":  {VAPIDPublicKey: enc(a.PublicKey().Bytes())},
		"private only": {VAPIDPrivateKey: enc(a.Bytes())},
		"mismatched":   {VAPIDPublicKey: enc(a.PublicKey().Bytes()), VAPIDPrivateKey: enc(b.Bytes())},
		"short":        {VAPIDPublicKey: enc(a.PublicKey().Bytes()), VAPIDPrivateKey: enc(a.Bytes()[:16])},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
}
