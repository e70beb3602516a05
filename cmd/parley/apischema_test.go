package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// The end-to-end tests hold the server to docs/api: every answer that
// server.do receives is validated against openapi.yaml (kin-openapi's
// openapi3filter, JSON Schema 2020-12 as OpenAPI 3.1 asks), and every
// realtime frame a test reads is validated against asyncapi.yaml's message
// payloads (santhosh-tekuri/jsonschema). For the check, every object schema
// that lists its properties is closed (additionalProperties: false, or
// unevaluatedProperties: false over an allOf), so a field the code adds
// without documenting it fails as surely as a documented field it drops.
// The files themselves stay open, so clients keep ignoring unknown fields.

// apiSchemas is the loaded reference, shared by every test in the package.
type apiSchemas struct {
	router routers.Router
	// frames maps a channel ("websocket", "sse", "poll") and a frame type
	// to the compiled payloads of the server messages with that type.
	frames map[string]map[string][]*jsonschema.Schema
}

var (
	apiOnce sync.Once
	apiRef  *apiSchemas
	apiErr  error
)

func loadAPISchemas(t *testing.T) *apiSchemas {
	t.Helper()
	apiOnce.Do(func() { apiRef, apiErr = buildAPISchemas() })
	if apiErr != nil {
		t.Fatalf("docs/api: %v", apiErr)
	}
	return apiRef
}

// readClosed reads docs/api/name as generic JSON with every object schema closed.
func readClosed(name string) (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "api", name))
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	open := map[string]bool{} // local schemas used as allOf branches
	allOfRefs(doc, open)
	closeObjects(doc, false)
	for ref := range open {
		if target, ok := resolveLocal(doc, ref).(map[string]any); ok {
			delete(target, "additionalProperties")
		}
	}
	return doc, nil
}

// allOfRefs collects the local $refs that appear as allOf branches: they
// must stay open like the branches written in place.
func allOfRefs(node any, out map[string]bool) {
	switch n := node.(type) {
	case map[string]any:
		if all, ok := n["allOf"].([]any); ok {
			for _, b := range all {
				if bm, ok := b.(map[string]any); ok {
					if ref, ok := bm["$ref"].(string); ok && strings.HasPrefix(ref, "#/") {
						out[ref] = true
					}
				}
			}
		}
		for _, v := range n {
			allOfRefs(v, out)
		}
	case []any:
		for _, v := range n {
			allOfRefs(v, out)
		}
	}
}

// resolveLocal follows a "#/a/b" reference inside doc (no escapes needed here).
func resolveLocal(doc map[string]any, ref string) any {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// closeObjects walks a decoded document and closes every object schema
// that lists properties and says nothing about others. A branch of an allOf
// stays open (each branch sees only its own properties); the allOf's owner
// is closed with unevaluatedProperties instead, which sees them all.
func closeObjects(node any, allOfBranch bool) {
	switch n := node.(type) {
	case map[string]any:
		_, hasProps := n["properties"]
		_, hasAdd := n["additionalProperties"]
		_, hasUneval := n["unevaluatedProperties"]
		if hasProps && !hasAdd && !hasUneval && !allOfBranch {
			n["additionalProperties"] = false
		}
		if all, ok := n["allOf"].([]any); ok {
			if !hasUneval {
				n["unevaluatedProperties"] = false
			}
			for _, b := range all {
				closeObjects(b, true)
			}
		}
		for k, v := range n {
			if k != "allOf" {
				closeObjects(v, false)
			}
		}
	case []any:
		for _, v := range n {
			closeObjects(v, false)
		}
	}
}

func buildAPISchemas() (*apiSchemas, error) {
	openDoc, err := readClosed("openapi.yaml")
	if err != nil {
		return nil, err
	}
	asyncDoc, err := readClosed("asyncapi.yaml")
	if err != nil {
		return nil, err
	}

	raw, err := json.Marshal(openDoc)
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi.yaml: version %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml does not validate: %w", err)
	}
	doc.Servers = nil // match any host: the tests listen on a random port
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}

	// asyncapi.yaml refers to openapi.yaml's Message and Conversation by
	// relative reference, so both are resources of one compiler.
	const base = "file:///parley/docs/api/"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(base+"openapi.yaml", jsonRoundTrip(openDoc)); err != nil {
		return nil, err
	}
	if err := c.AddResource(base+"asyncapi.yaml", jsonRoundTrip(asyncDoc)); err != nil {
		return nil, err
	}

	channels, _ := asyncDoc["channels"].(map[string]any)
	received := map[string]bool{} // "#/channels/x/messages/y" a client sends
	ops, _ := asyncDoc["operations"].(map[string]any)
	for _, o := range ops {
		op, _ := o.(map[string]any)
		if op["action"] != "receive" {
			continue
		}
		msgs, _ := op["messages"].([]any)
		for _, m := range msgs {
			ref, _ := m.(map[string]any)["$ref"].(string)
			received[ref] = true
		}
	}
	s := &apiSchemas{router: router, frames: map[string]map[string][]*jsonschema.Schema{}}
	for chName, ch := range channels {
		msgs, _ := ch.(map[string]any)["messages"].(map[string]any)
		byType := map[string][]*jsonschema.Schema{}
		for mName, m := range msgs {
			if received["#/channels/"+chName+"/messages/"+mName] {
				continue
			}
			ref, _ := m.(map[string]any)["$ref"].(string)
			if !strings.HasPrefix(ref, "#/components/messages/") {
				return nil, fmt.Errorf("asyncapi.yaml: channel %s message %s: $ref %q", chName, mName, ref)
			}
			name := strings.TrimPrefix(ref, "#/components/messages/")
			typ, err := payloadType(asyncDoc, name)
			if err != nil {
				return nil, err
			}
			sch, err := c.Compile(base + "asyncapi.yaml#/components/messages/" + name + "/payload")
			if err != nil {
				return nil, fmt.Errorf("asyncapi.yaml: message %s: %w", name, err)
			}
			byType[typ] = append(byType[typ], sch)
		}
		s.frames[chName] = byType
	}
	return s, nil
}

// payloadType returns the const of a message payload's "type" property,
// looking into allOf branches.
func payloadType(doc map[string]any, name string) (string, error) {
	msgs := doc["components"].(map[string]any)["messages"].(map[string]any)
	m, _ := msgs[name].(map[string]any)
	p, _ := m["payload"].(map[string]any)
	var find func(s map[string]any) string
	find = func(s map[string]any) string {
		if props, ok := s["properties"].(map[string]any); ok {
			if ty, ok := props["type"].(map[string]any); ok {
				if c, ok := ty["const"].(string); ok {
					return c
				}
			}
		}
		all, _ := s["allOf"].([]any)
		for _, b := range all {
			bm, _ := b.(map[string]any)
			if c := find(bm); c != "" {
				return c
			}
		}
		return ""
	}
	if typ := find(p); typ != "" {
		return typ, nil
	}
	return "", fmt.Errorf("asyncapi.yaml: message %s has no const type", name)
}

// jsonRoundTrip turns YAML-decoded values into what encoding/json gives
// (float64 numbers), the form the jsonschema compiler expects.
func jsonRoundTrip(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	return out
}

// checkResponse validates one answer of the server against openapi.yaml.
// Requests to paths the file leaves out on purpose (/blobs/, unknown paths)
// and HEAD requests are not checked. A status the operation does not
// document is an error.
func checkResponse(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	if err := validateResponse(loadAPISchemas(t), req, status, header, body); err != nil {
		t.Errorf("%s %s answered %d, not as docs/api/openapi.yaml says: %v\nbody: %.600s", req.Method, req.URL.Path, status, err, body)
	}
}

func validateResponse(s *apiSchemas, req *http.Request, status int, header http.Header, body []byte) error {
	if req.Method == http.MethodHead {
		return nil
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return nil // not a documented path or method; apiref_test covers routes
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	in.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), in)
}

// checkFrame validates one server frame read on channel ("websocket",
// "sse" or "poll") against the asyncapi.yaml messages of that channel
// with the frame's type. Keys the test harness adds start with "_".
func checkFrame(t *testing.T, channel string, frame map[string]any) {
	t.Helper()
	if err := validateFrame(loadAPISchemas(t), channel, frame); err != nil {
		b, _ := json.Marshal(frame)
		t.Errorf("%s frame not as docs/api/asyncapi.yaml says: %v\nframe: %.600s", channel, err, b)
	}
}

func validateFrame(s *apiSchemas, channel string, frame map[string]any) error {
	byType, ok := s.frames[channel]
	if !ok {
		return fmt.Errorf("no channel %q", channel)
	}
	v := map[string]any{}
	for k, x := range frame {
		if !strings.HasPrefix(k, "_") {
			v[k] = x
		}
	}
	v = jsonRoundTrip(v).(map[string]any)
	typ, _ := v["type"].(string)
	schemas := byType[typ]
	if len(schemas) == 0 {
		known := make([]string, 0, len(byType))
		for k := range byType {
			known = append(known, k)
		}
		sort.Strings(known)
		return fmt.Errorf("type %q is not a server frame of this channel (documented: %s)", typ, strings.Join(known, ", "))
	}
	var errs []string
	for _, sch := range schemas {
		err := sch.Validate(v)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

// readBody reads and closes a response body, leaving a fresh reader in its
// place so the caller can still read it.
func readBody(res *http.Response) []byte {
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

// TestAPIReferenceRefusesDrift: the checks the end-to-end tests run fail
// on an added field, a dropped field, an undocumented status and an
// undocumented frame type, and pass on what the reference says.
func TestAPIReferenceRefusesDrift(t *testing.T) {
	s := loadAPISchemas(t)
	get := func(path string) *http.Request {
		r, _ := http.NewRequest("GET", "http://127.0.0.1:1"+path, nil)
		return r
	}
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	responses := []struct {
		name   string
		path   string
		status int
		body   string
		ok     bool
	}{
		{"as documented", "/healthz", 200, `{"status":"ok"}`, true},
		{"added field", "/healthz", 200, `{"status":"ok","uptime":3}`, false},
		{"dropped field", "/v1/conversations/cnv_1/presence", 200, `{"online":["a"]}`, false},
		{"null page token", "/v1/conversations/cnv_1/presence", 200, `{"online":["a"],"next_after":null}`, true},
		{"undocumented status", "/healthz", 418, `{"status":"ok"}`, false},
		{"error body", "/v1/conversations/cnv_1", 404, `{"error":{"code":"not_found","message":"no","request_id":"r1"}}`, true},
		{"error body with a new field", "/v1/conversations/cnv_1", 404, `{"error":{"code":"not_found","message":"no","request_id":"r1","hint":"x"}}`, false},
	}
	for _, c := range responses {
		err := validateResponse(s, get(c.path), c.status, jsonHdr, []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: GET %s %d %s: err %v, want ok=%v", c.name, c.path, c.status, c.body, err, c.ok)
		}
	}

	msg := `{"id":"msg_1","conversation_id":"cnv_1","seq":3,"sender_id":"a","text":"hi","client_id":"c","reply_to":null,"attachments":[],"reactions":{},"created_at":"2026-01-01T00:00:00Z","edited_at":null,"deleted":false,"version":1}`
	event := func(extra, message string) string {
		return `{"type":"message.created","conversation_id":"cnv_1","seq":3,"event_id":"evt_1","at":"2026-01-01T00:00:00Z","actor":"a","cursor":"AQ"` + extra + `,"message":` + message + `}`
	}
	frames := []struct {
		name    string
		channel string
		frame   string
		ok      bool
	}{
		{"ready", "websocket", `{"type":"ready","user_id":"a","cursor":"AQ","session_id":"s"}`, true},
		{"ready with a new field", "websocket", `{"type":"ready","user_id":"a","cursor":"AQ","session_id":"s","node":"n1"}`, false},
		{"event", "sse", event("", msg), true},
		{"event with a new field", "sse", event(`,"origin":"x"`, msg), false},
		{"event whose message lost a field", "poll", event("", strings.Replace(msg, `,"version":1`, "", 1)), false},
		{"event whose message gained a field", "websocket", event("", strings.Replace(msg, `"version":1`, `"version":1,"pinned":true`, 1)), false},
		{"typing without user", "websocket", `{"type":"typing","conversation_id":"cnv_1"}`, false},
		{"undocumented type", "websocket", `{"type":"message.pinned"}`, false},
		{"ack is WebSocket only", "sse", `{"type":"ack","ref":"r","message":` + msg + `}`, false},
	}
	for _, c := range frames {
		var m map[string]any
		if err := json.Unmarshal([]byte(c.frame), &m); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		err := validateFrame(s, c.channel, m)
		if (err == nil) != c.ok {
			t.Errorf("%s on %s: err %v, want ok=%v", c.name, c.channel, err, c.ok)
		}
	}
}

// TestServerServesTheReferencePage: a running server answers /docs with
// the page built from the files in docs/api, and serves the files as built in.
func TestServerServesTheReferencePage(t *testing.T) {
	s := startServer(t)
	r := s.do(t, "GET", "/docs", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "/v1/conversations/{cid}/messages") {
		t.Fatalf("GET /docs: %d %s %.200s", r.status, r.header.Get("Content-Type"), r.body)
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "api", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, "GET", "/docs/openapi.yaml", "", nil); r.status != 200 || !bytes.Equal(r.body, want) {
		t.Fatalf("GET /docs/openapi.yaml: %d, %d bytes, want the file's %d", r.status, len(r.body), len(want))
	}
}
