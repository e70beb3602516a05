package main

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/delivery/auth"
)

// adminToken signs a token with the admin claim using the server's
// development secret (kept in its data folder).
func (s *server) adminToken(t *testing.T, user string) string {
	t.Helper()
	secret, err := auth.DevSecret(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(), auth.AdminClaim: true,
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAdminViewShowsTheNodeToAdminsOnly: a running server's /admin/status
// refuses a user's token (403) and none (401), and shows an admin this
// node with every role, its open connections and every partition owned.
func TestAdminViewShowsTheNodeToAdminsOnly(t *testing.T) {
	s := startServer(t, "--partitions", "8")
	alice := s.signIn(t, "alice")
	if r := s.do(t, "GET", "/admin/status", "", nil); r.status != 401 {
		t.Fatalf("no token: %d %s", r.status, r.body)
	}
	if r := s.do(t, "GET", "/admin/status", alice, nil); r.status != 403 {
		t.Fatalf("user token: %d %s", r.status, r.body)
	}
	s.connect(t, transportWS, alice, "")
	s.connect(t, transportSSE, alice, "")
	r := s.do(t, "GET", "/admin/status", s.adminToken(t, "ops"), nil)
	if r.status != 200 {
		t.Fatalf("admin token: %d %s", r.status, r.body)
	}
	st := r.json(t)
	node := st["node"].(map[string]any)
	if roles := node["roles"].([]any); len(roles) != len(allRoles) || node["partitions"].(float64) != 8 {
		t.Errorf("node %v", node)
	}
	conns := st["connections"].(map[string]any)
	if conns["websocket"] != 1.0 || conns["sse"] != 1.0 {
		t.Errorf("connections %v", conns)
	}
	if owners := st["partition_owners"].([]any); len(owners) != 8 {
		t.Errorf("%d partition owners, want 8", len(owners))
	}
	// The embedded log's consumer groups: one member each (this node),
	// and no lag once a send has been sequenced, indexed and looked at.
	cid := s.createGroup(t, alice, "ops", "bob")
	s.send(t, alice, cid, "hello", "c-admin")
	deadline := time.Now().Add(15 * time.Second)
	for {
		st = s.do(t, "GET", "/admin/status", s.adminToken(t, "ops"), nil).json(t)
		roles, lagging := map[string]bool{}, 0.0
		for _, g := range st["groups"].([]any) {
			g := g.(map[string]any)
			if len(g["members"].([]any)) == 1 {
				roles[g["role"].(string)] = true
			}
			lagging += g["total_lag"].(float64)
		}
		if roles["sequencer"] && roles["indexer"] && roles["media"] && lagging == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups never all had a member and no lag: %v", st["groups"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Another node told of this one (--admin.peers) shows its connections.
	other := startServer(t, "--admin.peers", strings.TrimPrefix(s.url, "http://"))
	peers := other.do(t, "GET", "/admin/status", other.adminToken(t, "ops"), nil).json(t)["peers"].([]any)
	if len(peers) != 1 {
		t.Fatalf("peers %v", peers)
	}
	if p := peers[0].(map[string]any); p["up"] != true || p["connections"].(map[string]any)["websocket"] != 1.0 {
		t.Errorf("peer %v", p)
	}
	if page := s.do(t, "GET", "/admin", "", nil); page.status != 200 {
		t.Errorf("page: %d", page.status)
	}
}
