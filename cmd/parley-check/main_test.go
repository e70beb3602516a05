package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunReportsValidAndInvalidHistories(t *testing.T) {
	valid := `{"kind":"watch","receiver":"bob","conversation_id":"c1"}
{"kind":"op","process":"a","phase":"invoke","f":"send","conversation_id":"c1","client_id":"k1"}
{"kind":"op","process":"a","phase":"ok","f":"send","conversation_id":"c1","client_id":"k1","message_id":"m1","seq":1}
{"kind":"event","receiver":"bob","transport":"ws","conversation_id":"c1","seq":1,"type":"message.created","message_id":"m1"}
`
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-history", "-"}, strings.NewReader(valid), &out); err != nil {
		t.Fatalf("valid history: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "valid: every count is 0") {
		t.Errorf("output %q does not say valid", out.String())
	}
	lost := strings.Replace(valid, `"seq":1,"type"`, `"seq":2,"type"`, 1)
	out.Reset()
	err := run(t.Context(), []string{"-history", "-", "-json"}, strings.NewReader(lost), &out)
	if !errors.Is(err, errInvalid) {
		t.Fatalf("a history with a lost message: %v, want errInvalid", err)
	}
	if !strings.Contains(out.String(), `"class": "lost"`) || !strings.Contains(out.String(), "never delivered to bob") {
		t.Errorf("JSON report %s does not name the loss", out.String())
	}
	if err := run(t.Context(), nil, strings.NewReader(""), &out); err == nil {
		t.Error("no -history: no error")
	}
}

// TestParallelReadsSeveralConversationsAtOnce: -parallel N reads N
// conversations of the server at once, and the history read checks the
// same; -parallel below 1 is refused.
func TestParallelReadsSeveralConversationsAtOnce(t *testing.T) {
	var now, most atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/conversations/{cid}/events", func(w http.ResponseWriter, r *http.Request) {
		if in := now.Add(1); in > most.Load() {
			most.Store(in) // racy max, enough to see more than one at once
		}
		defer now.Add(-1)
		time.Sleep(20 * time.Millisecond)
		cid := r.PathValue("cid")
		var evs []map[string]any
		if r.URL.Query().Get("after") == "" || r.URL.Query().Get("after") == "0" {
			evs = append(evs, map[string]any{"type": "message.created", "conversation_id": cid, "seq": 1,
				"message": map[string]any{"id": "m_" + cid, "sender_id": "a", "client_id": "k_" + cid}})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"events": evs, "has_more": false})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var history strings.Builder
	for c := range 8 {
		fmt.Fprintf(&history, `{"kind":"op","process":"a","phase":"invoke","f":"send","conversation_id":"c%d","client_id":"k_c%d"}`+"\n", c, c)
		fmt.Fprintf(&history, `{"kind":"op","process":"a","phase":"ok","f":"send","conversation_id":"c%d","client_id":"k_c%d","message_id":"m_c%d","seq":1}`+"\n", c, c, c)
	}
	read := func(parallel string) (string, error) {
		most.Store(0)
		var out bytes.Buffer
		err := run(t.Context(), []string{"-history", "-", "-url", srv.URL, "-token", "t", "-parallel", parallel}, strings.NewReader(history.String()), &out)
		return out.String(), err
	}
	out, err := read("1")
	if err != nil || most.Load() != 1 {
		t.Fatalf("-parallel 1: %v, %d reads at once\n%s", err, most.Load(), out)
	}
	out, err = read("4")
	if err != nil || most.Load() < 2 {
		t.Fatalf("-parallel 4: %v, at most %d reads at once\n%s", err, most.Load(), out)
	}
	if !strings.Contains(out, "valid: every count is 0") {
		t.Errorf("-parallel 4: output %q does not say valid", out)
	}
	if _, err := read("0"); err == nil || !strings.Contains(err.Error(), "-parallel") {
		t.Errorf("-parallel 0: %v, want an error naming -parallel", err)
	}
}
