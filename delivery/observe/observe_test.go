package observe

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parleychat/parley/chat"
)

// failingStore answers Commit with unavailable and Conversation with
// not_found; other methods are not called.
type failingStore struct{ chat.Store }

func (failingStore) Commit(context.Context, int, int64, int64, []chat.Change) error {
	return chat.Errorf(chat.CodeUnavailable, "store down")
}

func (failingStore) Conversation(context.Context, string) (chat.Conversation, error) {
	return chat.Conversation{}, chat.ErrNotFound
}

// TestStoreErrorsByOperationAndCode: a failed call is counted under its
// operation and error code and timed; a not_found answer is timed but is
// not an error.
func TestStoreErrorsByOperationAndCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	s := m.Store(failingStore{})
	ctx := context.Background()
	for range 2 {
		if err := s.Commit(ctx, 0, 1, 1, nil); chat.ErrorCode(err) != chat.CodeUnavailable {
			t.Fatalf("Commit through the decorator: %v", err)
		}
	}
	if _, err := s.Conversation(ctx, "cnv"); !chat.IsNotFound(err) {
		t.Fatalf("Conversation through the decorator: %v", err)
	}
	var c dto.Metric
	if err := m.errors.WithLabelValues("store", "commit", chat.CodeUnavailable).Write(&c); err != nil || c.Counter.GetValue() != 2 {
		t.Fatalf("commit errors = %v, want 2", c.Counter.GetValue())
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range fams {
		series[f.GetName()] = len(f.Metric)
	}
	if series["parley_port_call_errors_total"] != 1 {
		t.Fatalf("%d error series, want 1 (not_found is no error)", series["parley_port_call_errors_total"])
	}
	if series["parley_port_call_seconds"] != 2 {
		t.Fatalf("%d latency series, want commit and conversation", series["parley_port_call_seconds"])
	}
}
