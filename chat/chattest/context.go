package chattest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// The context rule, which every port's suite pins: a call that would
// otherwise succeed, made with a context that is already cancelled or
// whose deadline has passed, fails with chat.CodeUnavailable (the caller gave up; nothing is wrong with the
// request), never with an unclassified error that would answer 500.

// doneContexts are the two ways a context is done: cancelled, and past
// its deadline.
func doneContexts(t *testing.T) map[string]context.Context {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	t.Cleanup(cancel2)
	return map[string]context.Context{"cancelled": cancelled, "past its deadline": expired}
}

// checkUnavailable fails unless err is classified unavailable.
func checkUnavailable(t *testing.T, how, call string, err error) {
	t.Helper()
	if code := chat.ErrorCode(err); code != chat.CodeUnavailable {
		t.Errorf("%s with a context %s: %v (code %s), want %s", call, how, err, code, chat.CodeUnavailable)
	}
}

func storeTestDoneContext(t *testing.T, s chat.Store, _ func() chat.Store) {
	// Commit is made with the partition's epoch, so that only the context
	// stands in its way.
	epoch, err := s.Own(t.Context(), 0)
	if err != nil {
		t.Fatalf("Own: %v", err)
	}
	for how, ctx := range doneContexts(t) {
		check := func(call string, err error) { t.Helper(); checkUnavailable(t, how, call, err) }
		_, err := s.Own(ctx, 1)
		check("Own", err)
		check("Commit", s.Commit(ctx, 0, epoch, 1, nil))
		_, err = s.Conversation(ctx, "cnv_ctx")
		check("Conversation", err)
		_, err = s.Memberships(ctx, "alice")
		check("Memberships", err)
		_, err = s.Events(ctx, "cnv_ctx", 0, 10)
		check("Events", err)
		_, _, err = s.Messages(ctx, "cnv_ctx", chat.MessagePage{Limit: 10})
		check("Messages", err)
		_, err = s.Dedups(ctx, "cnv_ctx", "alice", []string{"c1"})
		check("Dedups", err)
		check("PutAttachment", s.PutAttachment(ctx, chat.AttachmentRecord{Attachment: chat.Attachment{ID: "att_ctx"}, UploaderID: "alice", CreatedAt: storeEpoch}))
		_, err = s.Users(ctx, []string{"alice"})
		check("Users", err)
		_, err = s.Heads(ctx, 4)
		check("Heads", err)
		_, err = s.Meta(ctx, "ctx", "v")
		check("Meta", err)
		check("Ping", s.Ping(ctx))
	}
}

func indexTestDoneContext(t *testing.T, idx chat.Index) {
	for how, ctx := range doneContexts(t) {
		check := func(call string, err error) { t.Helper(); checkUnavailable(t, how, call, err) }
		check("Put", idx.Put(ctx, []chat.Message{indexMsg("cnv_ctx", "alice", "hello", 0)}))
		check("Delete", idx.Delete(ctx, "cnv_ctx", "msg_ctx"))
		_, _, err := idx.Search(ctx, indexQuery("hello", "cnv_ctx"))
		check("Search", err)
		check("Ping", idx.Ping(ctx))
	}
}

func blobsTestDoneContext(t *testing.T, b chat.Blobs) {
	for how, ctx := range doneContexts(t) {
		check := func(call string, err error) { t.Helper(); checkUnavailable(t, how, call, err) }
		_, _, err := b.UploadURL(ctx, blobsKey(), "image/png", 4, time.Minute)
		check("UploadURL", err)
		_, err = b.DownloadURL(ctx, blobsKey(), "a.png", "image/png", time.Minute)
		check("DownloadURL", err)
		check("Put", b.Put(ctx, blobsKey(), "image/png", bytes.NewReader([]byte("data")), 4))
		_, err = b.Get(ctx, blobsKey())
		check("Get", err)
		check("Ping", b.Ping(ctx))
	}
}

// blobsTestPutCancelledMidway cancels a Put while it reads the body: the
// failure is unavailable, and nothing is stored.
func blobsTestPutCancelledMidway(t *testing.T, b chat.Blobs) {
	ctx, cancel := context.WithCancel(t.Context())
	key := blobsKey()
	data := blobsData(64<<10, 7)
	r := &cancellingReader{data: data, at: 1 << 10, cancel: cancel}
	checkUnavailable(t, "cancelled while reading the body", "Put", b.Put(ctx, key, "application/octet-stream", r, int64(len(data))))
	if _, err := b.Get(t.Context(), key); !chat.IsNotFound(err) {
		t.Errorf("Get after a cancelled Put: %v, want not_found", err)
	}
}

// cancellingReader yields data, calling cancel once at bytes have been
// read and failing from then on as a request body does when its request
// is cancelled.
type cancellingReader struct {
	data   []byte
	at     int
	pos    int
	cancel context.CancelFunc
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	if r.pos >= r.at {
		r.cancel()
		return 0, context.Canceled
	}
	n := copy(p, r.data[r.pos:min(len(r.data), r.at)])
	r.pos += n
	return n, nil
}

func logTestDoneContext(t *testing.T, open func(*testing.T, int) chat.Log) {
	l := open(t, 2)
	for how, ctx := range doneContexts(t) {
		check := func(call string, err error) { t.Helper(); checkUnavailable(t, how, call, err) }
		check("Append", l.Append(ctx, chat.TopicEvents, &chat.Record{Key: "cnv_ctx", Value: []byte("x")}))
		check("Ping", l.Ping(ctx))
	}
}
