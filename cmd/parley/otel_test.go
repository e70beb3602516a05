package main

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP traces receiver that decodes every
// request with the protocol's own ExportTraceServiceRequest type (the
// generated code of opentelemetry-proto, which Parley's exporter does not
// use) and answers with the statuses it is given, then 200.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
	paths    []string
	types    []string
	answers  []int  // statuses of the next requests, then 200
	answer   []byte // the body of a 200
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.paths = append(r.paths, req.Method+" "+req.URL.Path)
		r.types = append(r.types, req.Header.Get("Content-Type"))
		if len(r.answers) > 0 {
			status := r.answers[0]
			r.answers = r.answers[1:]
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			return
		}
		var m collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			t.Errorf("the receiver cannot decode an export request: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.requests = append(r.requests, &m)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(r.answer)
	}))
	t.Cleanup(r.Close)
	return r
}

// spans are every span received, with the attributes of its resource.
func (r *otlpReceiver) spans() (out []*tracepb.Span, resources []map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, req := range r.requests {
		for _, rs := range req.ResourceSpans {
			res := attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					out = append(out, sp)
					resources = append(resources, res)
				}
			}
		}
	}
	return out, resources
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.GetValue().GetStringValue()
	}
	return m
}

// TestTraceReachesAnOTLPReceiver: with --otel.endpoint naming a
// receiver's base URL, the server posts OTLP/protobuf to its /v1/traces,
// and the receiver, decoding with the protocol's own types, finds the
// whole trace of a WebSocket send: every span of it, each the child of
// the one before, under a resource naming Parley and its roles.
func TestTraceReachesAnOTLPReceiver(t *testing.T) {
	recv := newOTLPReceiver(t)
	s := startServer(t, "--otel.endpoint", recv.URL)
	bs, as := sendOverWebSocket(t, s, "exported", "c-exported", "to the collector")
	bs.close()
	as.close()
	s.stop() // flushes the batch

	spans, resources := recv.spans()
	recv.mu.Lock()
	for i, p := range recv.paths {
		if p != "POST /v1/traces" || recv.types[i] != "application/x-protobuf" {
			t.Errorf("request %d: %s as %q, want POST /v1/traces as application/x-protobuf", i, p, recv.types[i])
		}
	}
	recv.mu.Unlock()
	var send *tracepb.Span
	for i, sp := range spans {
		if sp.Name == "send" && attrs(sp.Attributes)["parley.transport"] == "ws" {
			send = sp
			if res := resources[i]; res["service.name"] != "parley" || res["parley.roles"] == "" || res["service.instance.id"] == "" {
				t.Errorf("the send's resource is %v, want service.name parley, its roles and instance", res)
			}
		}
	}
	if send == nil {
		t.Fatalf("no ws send span among the %d received", len(spans))
	}
	byName := map[string][]*tracepb.Span{}
	for _, sp := range spans {
		if string(sp.TraceId) == string(send.TraceId) {
			byName[sp.Name] = append(byName[sp.Name], sp)
		}
	}
	one := func(name string) *tracepb.Span {
		t.Helper()
		if len(byName[name]) != 1 {
			t.Fatalf("%d %q spans in the send's trace %s, want 1", len(byName[name]), name, hex.EncodeToString(send.TraceId))
		}
		return byName[name][0]
	}
	childOf := func(child, parent *tracepb.Span) {
		t.Helper()
		if string(child.ParentSpanId) != string(parent.SpanId) {
			t.Errorf("%s's parent is %x, want %s (%x)", child.Name, child.ParentSpanId, parent.Name, parent.SpanId)
		}
	}
	submit, apply, commit, result := one("submit"), one("sequencer.apply"), one("store.commit"), one("gateway.result")
	if len(send.ParentSpanId) != 0 {
		t.Errorf("the frame's send span has a parent: %x", send.ParentSpanId)
	}
	childOf(submit, send)
	childOf(apply, submit)
	childOf(commit, apply)
	childOf(result, apply)
	if len(byName["socket.write"]) < 2 {
		t.Errorf("%d socket writes in the trace, want the sender's and the recipient's", len(byName["socket.write"]))
	}
	for _, w := range byName["socket.write"] {
		childOf(w, apply)
	}
	if send.EndTimeUnixNano < result.StartTimeUnixNano || send.StartTimeUnixNano == 0 {
		t.Errorf("send span %d..%d, result read at %d: it does not last until the ack", send.StartTimeUnixNano, send.EndTimeUnixNano, result.StartTimeUnixNano)
	}
}

// testSpans is one resource with one span, as the SDK hands the client.
func testSpans() []*tracepb.ResourceSpans {
	return []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
		TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "probe", StartTimeUnixNano: 1, EndTimeUnixNano: 2,
	}}}}}}
}

// TestOTLPClientRetriesOnlyWhatOTLPSaysToRetry: 429, 502, 503 and 504
// are tried again (up to three attempts), any other failure is not, and
// a 200 whose answer names rejected spans is an error (one that rejects
// none is a warning, not an error).
func TestOTLPClientRetriesOnlyWhatOTLPSaysToRetry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  []int
		partial  *collectortrace.ExportTracePartialSuccess
		wantErr  string
		attempts int
	}{
		{"ok", nil, nil, "", 1},
		{"busy, then ok", []int{503, 429}, nil, "", 3},
		{"gateway errors, then ok", []int{502, 504}, nil, "", 3},
		{"busy three times", []int{503, 503, 503}, nil, "503", 3},
		{"a bad request is not retried", []int{400}, nil, "400", 1},
		{"not found is not retried", []int{404}, nil, "404", 1},
		{"rejected spans", nil, &collectortrace.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "too old"}, "rejected 2 spans: too old", 1},
		{"a warning rejects nothing", nil, &collectortrace.ExportTracePartialSuccess{ErrorMessage: "slow down a little"}, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv := newOTLPReceiver(t)
			recv.answers = tc.answers
			if tc.partial != nil {
				recv.answer, _ = proto.Marshal(&collectortrace.ExportTraceServiceResponse{PartialSuccess: tc.partial})
			}
			c, err := newOTLPClient(recv.URL)
			if err != nil {
				t.Fatal(err)
			}
			c.backoff = time.Millisecond
			err = c.UploadTraces(context.Background(), testSpans())
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("upload: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("upload: %v, want an error with %q", err, tc.wantErr)
			}
			recv.mu.Lock()
			attempts := len(recv.paths)
			recv.mu.Unlock()
			if attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
			if tc.wantErr == "" {
				spans, _ := recv.spans()
				if len(spans) != 1 || spans[0].Name != "probe" {
					t.Errorf("the receiver decoded %v", spans)
				}
			}
		})
	}
}

// TestOTLPClientStopsRetryingWithItsContext: a receiver that stays busy
// holds an upload no longer than the exporter's deadline.
func TestOTLPClientStopsRetryingWithItsContext(t *testing.T) {
	recv := newOTLPReceiver(t)
	recv.answers = []int{503, 503, 503}
	c, err := newOTLPClient(recv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.UploadTraces(ctx, testSpans()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "deadline") {
			t.Fatalf("upload: %v, want the deadline's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upload outlived its context")
	}
}

// TestOTLPEndpointIsABaseURL: --otel.endpoint is read as
// OTEL_EXPORTER_OTLP_ENDPOINT is, a base URL the traces path is appended
// to, unless it names that path already.
func TestOTLPEndpointIsABaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://collector:4318":                       "http://collector:4318/v1/traces",
		"http://collector:4318/":                      "http://collector:4318/v1/traces",
		"https://otlp.example.com/v1/traces":          "https://otlp.example.com/v1/traces",
		"https://gw.example.com/otlp":                 "https://gw.example.com/otlp/v1/traces",
		"https://user:secret@gw.example.com/otlp/":    "https://user:secret@gw.example.com/otlp/v1/traces",
		"http://collector:4318/v1/traces?tenant=a&b=": "http://collector:4318/v1/traces?tenant=a&b=",
	} {
		c, err := newOTLPClient(in)
		if err != nil || c.url != want {
			t.Errorf("%s: posts to %q (%v), want %q", in, c.url, err, want)
		}
	}
	for _, bad := range []string{"collector:4318", "grpc://collector:4317", "http:///v1/traces"} {
		if _, err := newOTLPClient(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestBinaryLinksNoGRPC: tracing posts OTLP over HTTP without gRPC, which
// otlptracehttp's configuration would link (140 packages, 5 MB); only
// tests may use gRPC's packages (the receiver above decodes with them).
func TestBinaryLinksNoGRPC(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "google.golang.org/grpc") || strings.HasPrefix(p, "github.com/grpc-ecosystem/") ||
			strings.HasPrefix(p, "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp") {
			t.Errorf("cmd/parley links %s", p)
		}
	}
}
