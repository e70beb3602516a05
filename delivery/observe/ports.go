package observe

import (
	"context"
	"io"
	"time"

	"github.com/parleychat/parley/chat"
)

// Store wraps s so every call is timed and its errors counted under
// port="store". Methods a later chat.Store gains pass through untimed
// until they are added here.
func (m *Metrics) Store(s chat.Store) chat.Store { return &store{Store: s, m: m} }

type store struct {
	chat.Store
	m *Metrics
}

func (s *store) Own(ctx context.Context, partition int) (e int64, err error) {
	defer func(t time.Time) { s.m.done("store", "own", t, err) }(time.Now())
	return s.Store.Own(ctx, partition)
}

func (s *store) Commit(ctx context.Context, partition int, epoch, head int64, changes []chat.Change) (err error) {
	defer func(t time.Time) { s.m.done("store", "commit", t, err) }(time.Now())
	return s.Store.Commit(ctx, partition, epoch, head, changes)
}

func (s *store) Conversation(ctx context.Context, id string) (c chat.Conversation, err error) {
	defer func(t time.Time) { s.m.done("store", "conversation", t, err) }(time.Now())
	return s.Store.Conversation(ctx, id)
}

func (s *store) Memberships(ctx context.Context, userID string) (ms []chat.Membership, err error) {
	defer func(t time.Time) { s.m.done("store", "memberships", t, err) }(time.Now())
	return s.Store.Memberships(ctx, userID)
}

func (s *store) Membership(ctx context.Context, conversationID, userID string) (ms chat.Membership, err error) {
	defer func(t time.Time) { s.m.done("store", "membership", t, err) }(time.Now())
	return s.Store.Membership(ctx, conversationID, userID)
}

func (s *store) Members(ctx context.Context, conversationID, after string, limit int) (ids []string, err error) {
	defer func(t time.Time) { s.m.done("store", "members", t, err) }(time.Now())
	return s.Store.Members(ctx, conversationID, after, limit)
}

func (s *store) Events(ctx context.Context, conversationID string, afterSeq int64, limit int) (es []chat.Event, err error) {
	defer func(t time.Time) { s.m.done("store", "events", t, err) }(time.Now())
	return s.Store.Events(ctx, conversationID, afterSeq, limit)
}

func (s *store) EventsAfter(ctx context.Context, conversationID string, afterPosition, upTo int64, limit int) (es []chat.Event, err error) {
	defer func(t time.Time) { s.m.done("store", "events_after", t, err) }(time.Now())
	return s.Store.EventsAfter(ctx, conversationID, afterPosition, upTo, limit)
}

func (s *store) Messages(ctx context.Context, conversationID string, page chat.MessagePage) (ms []chat.Message, more bool, err error) {
	defer func(t time.Time) { s.m.done("store", "messages", t, err) }(time.Now())
	return s.Store.Messages(ctx, conversationID, page)
}

func (s *store) Message(ctx context.Context, conversationID, messageID string) (msg chat.Message, err error) {
	defer func(t time.Time) { s.m.done("store", "message", t, err) }(time.Now())
	return s.Store.Message(ctx, conversationID, messageID)
}

func (s *store) Dedup(ctx context.Context, conversationID, senderID, clientID string) (id string, err error) {
	defer func(t time.Time) { s.m.done("store", "dedup", t, err) }(time.Now())
	return s.Store.Dedup(ctx, conversationID, senderID, clientID)
}

func (s *store) Dedups(ctx context.Context, conversationID, senderID string, clientIDs []string) (ids map[string]string, err error) {
	defer func(t time.Time) { s.m.done("store", "dedups", t, err) }(time.Now())
	return s.Store.Dedups(ctx, conversationID, senderID, clientIDs)
}

func (s *store) SenderDedups(ctx context.Context, conversationID, senderID string, limit int) (ids map[string]string, complete bool, err error) {
	defer func(t time.Time) { s.m.done("store", "sender_dedups", t, err) }(time.Now())
	return s.Store.SenderDedups(ctx, conversationID, senderID, limit)
}

func (s *store) PutAttachment(ctx context.Context, a chat.AttachmentRecord) (err error) {
	defer func(t time.Time) { s.m.done("store", "put_attachment", t, err) }(time.Now())
	return s.Store.PutAttachment(ctx, a)
}

func (s *store) Attachment(ctx context.Context, id string) (a chat.AttachmentRecord, err error) {
	defer func(t time.Time) { s.m.done("store", "attachment", t, err) }(time.Now())
	return s.Store.Attachment(ctx, id)
}

func (s *store) SetUserName(ctx context.Context, userID, name string, claimed bool) (err error) {
	defer func(t time.Time) { s.m.done("store", "set_user_name", t, err) }(time.Now())
	return s.Store.SetUserName(ctx, userID, name, claimed)
}

func (s *store) Users(ctx context.Context, ids []string) (us map[string]chat.User, err error) {
	defer func(t time.Time) { s.m.done("store", "users", t, err) }(time.Now())
	return s.Store.Users(ctx, ids)
}

func (s *store) PutSettings(ctx context.Context, userID, conversationID string, st chat.ConversationSettings) (err error) {
	defer func(t time.Time) { s.m.done("store", "put_settings", t, err) }(time.Now())
	return s.Store.PutSettings(ctx, userID, conversationID, st)
}

func (s *store) Settings(ctx context.Context, userID string) (st map[string]chat.ConversationSettings, err error) {
	defer func(t time.Time) { s.m.done("store", "settings", t, err) }(time.Now())
	return s.Store.Settings(ctx, userID)
}

func (s *store) PutDevice(ctx context.Context, d chat.Device) (created bool, err error) {
	defer func(t time.Time) { s.m.done("store", "put_device", t, err) }(time.Now())
	return s.Store.PutDevice(ctx, d)
}

func (s *store) Devices(ctx context.Context, userID string) (ds []chat.Device, err error) {
	defer func(t time.Time) { s.m.done("store", "devices", t, err) }(time.Now())
	return s.Store.Devices(ctx, userID)
}

func (s *store) DeleteDevice(ctx context.Context, userID, deviceID string) (err error) {
	defer func(t time.Time) { s.m.done("store", "delete_device", t, err) }(time.Now())
	return s.Store.DeleteDevice(ctx, userID, deviceID)
}

func (s *store) Heads(ctx context.Context, partitions int) (hs []int64, err error) {
	defer func(t time.Time) { s.m.done("store", "heads", t, err) }(time.Now())
	return s.Store.Heads(ctx, partitions)
}

func (s *store) Meta(ctx context.Context, key, value string) (v string, err error) {
	defer func(t time.Time) { s.m.done("store", "meta", t, err) }(time.Now())
	return s.Store.Meta(ctx, key, value)
}

// Index wraps ix so every call is timed and its errors counted under
// port="index".
func (m *Metrics) Index(ix chat.Index) chat.Index { return &index{Index: ix, m: m} }

type index struct {
	chat.Index
	m *Metrics
}

func (x *index) Put(ctx context.Context, msgs []chat.Message) (err error) {
	defer func(t time.Time) { x.m.done("index", "put", t, err) }(time.Now())
	return x.Index.Put(ctx, msgs)
}

func (x *index) Delete(ctx context.Context, conversationID, messageID string) (err error) {
	defer func(t time.Time) { x.m.done("index", "delete", t, err) }(time.Now())
	return x.Index.Delete(ctx, conversationID, messageID)
}

func (x *index) Search(ctx context.Context, q chat.SearchQuery) (hits []chat.SearchHit, next string, err error) {
	defer func(t time.Time) { x.m.done("index", "search", t, err) }(time.Now())
	return x.Index.Search(ctx, q)
}

// Blobs wraps b so every call is timed and its errors counted under
// port="blobs". Get is timed until the reader is returned, not read.
func (m *Metrics) Blobs(b chat.Blobs) chat.Blobs { return &blobs{Blobs: b, m: m} }

type blobs struct {
	chat.Blobs
	m *Metrics
}

func (b *blobs) UploadURL(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (url string, headers map[string]string, err error) {
	defer func(t time.Time) { b.m.done("blobs", "upload_url", t, err) }(time.Now())
	return b.Blobs.UploadURL(ctx, key, contentType, size, ttl)
}

func (b *blobs) DownloadURL(ctx context.Context, key, name, contentType string, ttl time.Duration) (url string, err error) {
	defer func(t time.Time) { b.m.done("blobs", "download_url", t, err) }(time.Now())
	return b.Blobs.DownloadURL(ctx, key, name, contentType, ttl)
}

func (b *blobs) Put(ctx context.Context, key, contentType string, r io.Reader, size int64) (err error) {
	defer func(t time.Time) { b.m.done("blobs", "put", t, err) }(time.Now())
	return b.Blobs.Put(ctx, key, contentType, r, size)
}

func (b *blobs) Get(ctx context.Context, key string) (rc io.ReadCloser, err error) {
	defer func(t time.Time) { b.m.done("blobs", "get", t, err) }(time.Now())
	return b.Blobs.Get(ctx, key)
}

// Log wraps l: Append is timed (port="log", op="append") and its records
// counted by topic; Consume and Subscribe count the records they hand on
// and time each Consume batch's handler.
func (m *Metrics) Log(l chat.Log) chat.Log { return &log{Log: l, m: m} }

type log struct {
	chat.Log
	m *Metrics
}

func (l *log) Append(ctx context.Context, topic string, recs ...*chat.Record) (err error) {
	defer func(t time.Time) {
		l.m.done("log", "append", t, err)
		if err == nil {
			l.m.appended.WithLabelValues(topic).Add(float64(len(recs)))
		}
	}(time.Now())
	return l.Log.Append(ctx, topic, recs...)
}

func (l *log) Consume(ctx context.Context, topic, group string, handle func(ctx context.Context, partition int, recs []chat.Record) error) error {
	read := l.m.read.WithLabelValues(topic, group)
	took := l.m.handle.WithLabelValues(topic, group)
	return l.Log.Consume(ctx, topic, group, func(ctx context.Context, partition int, recs []chat.Record) error {
		read.Add(float64(len(recs)))
		start := time.Now()
		err := handle(ctx, partition, recs)
		took.Observe(time.Since(start).Seconds())
		return err
	})
}

func (l *log) Subscribe(ctx context.Context, topic string, ready func(), handle func(partition int, recs []chat.Record)) error {
	read := l.m.read.WithLabelValues(topic, "subscribe")
	return l.Log.Subscribe(ctx, topic, ready, func(partition int, recs []chat.Record) {
		read.Add(float64(len(recs)))
		handle(partition, recs)
	})
}

func (s *store) Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (passed bool, err error) {
	defer func(t time.Time) { s.m.done("store", "refuse", t, err) }(time.Now())
	return s.Store.Refuse(ctx, partition, gateway, deadline)
}

func (s *store) Refusals(ctx context.Context, partition int) (floors map[string]time.Time, err error) {
	defer func(t time.Time) { s.m.done("store", "refusals", t, err) }(time.Now())
	return s.Store.Refusals(ctx, partition)
}
