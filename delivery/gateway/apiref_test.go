package gateway

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// The API reference in docs/api is held to the server here: a route added
// without documenting it, or documented without being served, fails.

func loadYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

// documentedRoutes returns "METHOD /path" for every operation in openapi.yaml.
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.yaml has no paths")
	}
	var out []string
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for m := range ops {
			switch m {
			case "get", "post", "put", "patch", "delete", "head", "options":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPICoversEveryRoute: the set of method+path pairs the gateway
// registers equals the set openapi.yaml documents, both ways.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	_, _, g := startGateway(t, Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 4 * time.Second})
	served := g.routeTable()
	if len(served) < 40 {
		t.Fatalf("routeTable lists only %d routes: %v", len(served), served)
	}
	documented := documentedRoutes(t, loadYAML(t, "openapi.yaml"))
	in := func(list []string, s string) bool {
		i := sort.SearchStrings(list, s)
		return i < len(list) && list[i] == s
	}
	for _, r := range served {
		if !in(documented, r) {
			t.Errorf("served but not in docs/api/openapi.yaml: %s", r)
		}
	}
	for _, r := range documented {
		if !in(served, r) {
			t.Errorf("in docs/api/openapi.yaml but not served: %s", r)
		}
	}
}

// TestOpenAPIOperationsAnswerErrors: every operation documents the error
// body for the statuses every route can give (405 from the method table,
// 500 from the recoverer), and every $ref resolves.
func TestOpenAPIOperationsAnswerErrors(t *testing.T) {
	doc := loadYAML(t, "openapi.yaml")
	for p, item := range doc["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			rs, _ := op.(map[string]any)["responses"].(map[string]any)
			for _, code := range []string{"405", "500"} {
				if _, ok := rs[code]; !ok {
					t.Errorf("%s %s: no %s response", strings.ToUpper(m), p, code)
				}
			}
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(doc, ref) == nil {
					t.Errorf("dangling $ref %s", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	for _, code := range httpx.Codes() {
		if !strings.Contains(mustRead(t, "openapi.yaml"), code) {
			t.Errorf("error code %s (HTTP %d) missing from openapi.yaml", code, httpx.Status(code))
		}
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// resolve follows a local "#/a/b" reference, nil when it does not exist.
func resolve(doc map[string]any, ref string) map[string]any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

// TestAsyncAPINamesEveryEventAndCloseCode: every event type in chat and
// every close code the gateway sends is described in asyncapi.yaml.
func TestAsyncAPINamesEveryEventAndCloseCode(t *testing.T) {
	doc := loadYAML(t, "asyncapi.yaml")
	if v, _ := doc["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Fatalf("asyncapi.yaml: version %q, want 3.x", v)
	}
	consts := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if c, ok := v["const"].(string); ok {
				consts[c] = true
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc["components"].(map[string]any)["messages"])
	for _, ev := range []string{
		chat.EventMessageCreated, chat.EventMessageUpdated, chat.EventMessageDeleted,
		chat.EventReactionAdded, chat.EventReactionRemoved, chat.EventMemberAdded,
		chat.EventMemberRemoved, chat.EventConversationUpdated, chat.EventReadUpdated,
		chat.EventTyping, chat.EventPresence, chat.EventUserUpdated,
	} {
		if !consts[ev] {
			t.Errorf("event type %s has no message in asyncapi.yaml", ev)
		}
	}
	for _, frame := range []string{"hello", "send", "typing", "read", "ping", "presence.watch", "auth",
		"ready", "ack", "pong", "error", "token.expiring", "auth.ok"} {
		if !consts[frame] {
			t.Errorf("frame %s has no message in asyncapi.yaml", frame)
		}
	}
	documented := map[int]bool{}
	table, _ := doc["components"].(map[string]any)["x-websocket-close-codes"].(map[string]any)
	list, _ := table["codes"].([]any)
	for _, e := range list {
		if c, ok := e.(map[string]any)["code"].(int); ok {
			documented[c] = true
		}
	}
	// The codes sent by name (normal, going away, policy, too big, try
	// again) and every code an error maps to.
	codes := []int{1000, 1001, 1008, 1009, 1013}
	for _, cc := range httpx.CloseCodes() {
		codes = append(codes, int(cc))
	}
	for _, cc := range codes {
		if !documented[cc] {
			t.Errorf("close code %d not in asyncapi.yaml's x-websocket-close-codes", cc)
		}
	}
}

// TestOpenAPIRequiredFieldsInRealAnswers: a few real answers carry every
// field their schema marks required.
func TestOpenAPIRequiredFieldsInRealAnswers(t *testing.T) {
	doc := loadYAML(t, "openapi.yaml")
	h := newRESTHarness(t)
	var conv map[string]any
	if st := h.call("alice", "POST", "/v1/conversations", map[string]any{"kind": "group", "title": "t", "members": []string{"bob"}}, &conv); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	cid, _ := conv["id"].(string)
	checkRequired(t, doc, "POST /v1/conversations 201", schemaOf(t, doc, "/v1/conversations", "post", "201"), conv)
	var msg map[string]any
	if st := h.call("alice", "POST", "/v1/conversations/"+cid+"/messages", map[string]any{"client_id": "c1", "text": "hi"}, &msg); st != http.StatusCreated {
		t.Fatalf("send: %d", st)
	}
	checkRequired(t, doc, "message", schemaOf(t, doc, "/v1/conversations/{cid}/messages", "post", "201"), msg)
	for _, c := range []struct{ path, tmpl string }{
		{"/v1/conversations", "/v1/conversations"},
		{"/v1/conversations/" + cid, "/v1/conversations/{cid}"},
		{"/v1/conversations/" + cid + "/messages", "/v1/conversations/{cid}/messages"},
		{"/v1/conversations/" + cid + "/members", "/v1/conversations/{cid}/members"},
		{"/v1/me", "/v1/me"},
	} {
		var got map[string]any
		deadline := time.Now().Add(5 * time.Second)
		for {
			got = nil
			if st := h.call("alice", "GET", c.path, nil, &got); st != http.StatusOK {
				t.Fatalf("GET %s: %d", c.path, st)
			}
			if c.tmpl != "/v1/conversations/{cid}/messages" || len(got["messages"].([]any)) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		checkRequired(t, doc, "GET "+c.path, schemaOf(t, doc, c.tmpl, "get", "200"), got)
	}
	// An error answer, read directly (call decodes only successes).
	res, err := http.Get(h.url + "/v1/conversations/" + cid)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var e map[string]any
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %d %v", res.StatusCode, err)
	}
	checkRequired(t, doc, "error", schemaOf(t, doc, "/v1/conversations/{cid}", "get", "401"), e)
}

func schemaOf(t *testing.T, doc map[string]any, path, method, status string) map[string]any {
	t.Helper()
	op, _ := doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
	r, _ := op["responses"].(map[string]any)[status].(map[string]any)
	if ref, ok := r["$ref"].(string); ok {
		r = resolve(doc, ref)
	}
	c, _ := r["content"].(map[string]any)["application/json"].(map[string]any)
	s, _ := c["schema"].(map[string]any)
	if s == nil {
		t.Fatalf("no schema for %s %s %s", method, path, status)
	}
	return s
}

// checkRequired checks that v has every required property of schema,
// recursing into objects and arrays the schema describes.
func checkRequired(t *testing.T, doc map[string]any, where string, schema map[string]any, v any) {
	t.Helper()
	if ref, ok := schema["$ref"].(string); ok {
		schema = resolve(doc, ref)
	}
	switch v := v.(type) {
	case map[string]any:
		req, _ := schema["required"].([]any)
		for _, f := range req {
			if _, ok := v[f.(string)]; !ok {
				b, _ := json.Marshal(v)
				t.Errorf("%s: required field %q missing in %s", where, f, b)
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, sub := range props {
			if s, ok := sub.(map[string]any); ok && v[k] != nil {
				checkRequired(t, doc, where+"."+k, s, v[k])
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for _, x := range v {
				checkRequired(t, doc, where+"[]", items, x)
			}
		}
	}
}
