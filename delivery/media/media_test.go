package media

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/memlog"
)

// getBlobs tells of each Get and answers not found (the attachment is then
// skipped as unusable).
type getBlobs struct {
	chat.Blobs
	got chan string
}

func (b getBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	select {
	case b.got <- key:
	default:
	}
	return nil, chat.ErrNotFound
}

// TestUndecodableRecordIsCountedAndSkipped: a record that does not decode
// is counted in parley_undecodable_records_total{consumer="media"} and the
// records after it are still handled.
func TestUndecodableRecordIsCountedAndSkipped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lg, err := memlog.Open(ctx, memlog.Config{Dir: t.TempDir(), Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	att := chat.Attachment{ID: "att_1", ContentType: "image/png", Size: 10}
	good, _ := record.EncodeSequenced(&chat.Sequenced{Events: []chat.Event{{Type: chat.EventMessageCreated, ConversationID: "cnv_1",
		Message: &chat.Message{ID: "msg_1", ConversationID: "cnv_1", Attachments: []chat.Attachment{att}}}}})
	if err := lg.Append(ctx, chat.TopicEvents, &chat.Record{Key: "cnv_1", Value: []byte("{not json"), Partition: 1},
		&chat.Record{Key: "cnv_1", Value: good, Partition: 1}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	blobs := getBlobs{got: make(chan string, 1)}
	w := New(lg, nil, blobs, slog.New(slog.NewTextHandler(io.Discard, nil)), WithRegisterer(reg))
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case <-blobs.got: // the good record's image was fetched
	case <-time.After(10 * time.Second):
		t.Fatal("the good record after the bad one was never handled")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "parley_undecodable_records_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "consumer" && l.GetValue() == Group {
						n = m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("parley_undecodable_records_total{consumer=%q} = %v, want 1", Group, n)
	}
}
