package fanout

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// TestUndecodableRecordsAreCountedAndSkipped: a record that does not
// decode, or whose recipients do not, is counted in
// parley_undecodable_records_total{consumer="fanout"}, and the records
// after it in the same read are still handled.
func TestUndecodableRecordsAreCountedAndSkipped(t *testing.T) {
	reg := prometheus.NewRegistry()
	lg := &fakeLog{parts: 4, reads: make(chan fakeRead)}
	h := NewHub(Config{ID: "gw1", Log: lg, Store: fakeStore{}, Deployment: 7, Registerer: reg})
	results := make(chan string, 10)
	h.OnResult = func(id string, _ chat.Result) { results <- id }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-h.Ready()

	m := message(1, "gw1", "cmd_after", "bob")
	good, err := record.EncodeSequenced(&m)
	if err != nil {
		t.Fatal(err)
	}
	var badRecipients map[string]any
	if err := json.Unmarshal(good, &badRecipients); err != nil {
		t.Fatal(err)
	}
	badRecipients["recipients"] = 42
	bad, _ := json.Marshal(badRecipients)
	r := fakeRead{partition: 1, handled: make(chan struct{}), recs: []chat.Record{
		{Partition: 1, Offset: 0, Value: []byte("{not json")},
		{Partition: 1, Offset: 1, Value: bad},
		{Partition: 1, Offset: 2, Value: good},
	}}
	lg.reads <- r
	<-r.handled
	select {
	case id := <-results:
		if id != "cmd_after" {
			t.Fatalf("result of %s, want cmd_after", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the record after the undecodable ones was not handled")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "parley_undecodable_records_total" {
			for _, m := range mf.GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "fanout" {
					counted = m.GetCounter().GetValue()
				}
			}
		}
	}
	if counted != 2 {
		t.Errorf("parley_undecodable_records_total{consumer=\"fanout\"} = %v, want 2", counted)
	}
}
