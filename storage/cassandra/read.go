package cassandra

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gocql/gocql"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

func notFound(op, what string) error {
	return &chat.Error{Code: chat.CodeNotFound, Op: op, Message: what + " not found", Err: gocql.ErrNotFound}
}

func checkLimit(op string, limit int) error {
	if limit <= 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("limit %d is not positive", limit)}
	}
	return nil
}

// Conversation returns the committed state of a conversation with its
// internal LastPosition and LastActivity.
func (s *Store) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	const op = "cassandra: conversation"
	var state *string
	err := s.q(ctx, `SELECT state FROM {conversations} WHERE id = ?`, id).Scan(&state)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return chat.Conversation{}, classify(op, err)
	}
	if errors.Is(err, gocql.ErrNotFound) || state == nil || *state == "" {
		return chat.Conversation{}, notFound(op, "conversation")
	}
	var c chat.Conversation
	if err := record.DecodeRow([]byte(*state), &c); err != nil {
		return chat.Conversation{}, fmt.Errorf("%s %s: %w", op, id, err)
	}
	return c, nil
}

// lastSeq is the highest seq committed in a conversation (0 if unknown): the
// bound of the buckets a read visits.
func (s *Store) lastSeq(ctx context.Context, cid string) (int64, error) {
	var seq *int64
	err := s.q(ctx, `SELECT last_seq FROM {conversations} WHERE id = ?`, cid).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && seq == nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return *seq, nil
}

// Memberships returns every membership of userID, active or left, in
// conversation id order.
func (s *Store) Memberships(ctx context.Context, userID string) ([]chat.Membership, error) {
	const op = "cassandra: memberships"
	iter := s.q(ctx, `SELECT data FROM {memberships} WHERE user_id = ?`, userID).Iter()
	var out []chat.Membership
	var data string
	for iter.Scan(&data) {
		var m chat.Membership
		if err := record.DecodeRow([]byte(data), &m); err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("%s of %s: %w", op, userID, err)
		}
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// Membership returns the membership of userID in conversationID.
func (s *Store) Membership(ctx context.Context, conversationID, userID string) (chat.Membership, error) {
	const op = "cassandra: membership"
	var data string
	err := s.q(ctx, `SELECT data FROM {memberships} WHERE user_id = ? AND conversation_id = ?`, userID, conversationID).Scan(&data)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Membership{}, notFound(op, "membership")
	}
	if err != nil {
		return chat.Membership{}, classify(op, err)
	}
	var m chat.Membership
	if err := record.DecodeRow([]byte(data), &m); err != nil {
		return chat.Membership{}, fmt.Errorf("%s: %w", op, err)
	}
	return m, nil
}

// Events returns up to limit events of a conversation with seq > afterSeq,
// in seq order.
func (s *Store) Events(ctx context.Context, conversationID string, afterSeq int64, limit int) ([]chat.Event, error) {
	const op = "cassandra: events"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	evs, err := s.scanEvents(ctx, conversationID, max(afterSeq, 0)+1, limit, -1)
	if err != nil {
		return nil, classify(op, fmt.Errorf("of %s: %w", conversationID, err))
	}
	return evs, nil
}

// scanEvents reads up to limit events from seq from on, ascending, bucket
// by bucket, stopping at the first whose position is above upTo (unless
// upTo is negative). Seqs are gap-free, so the first bucket without an
// event at or after from ends the log.
func (s *Store) scanEvents(ctx context.Context, cid string, from int64, limit int, upTo int64) ([]chat.Event, error) {
	var out []chat.Event
	for bucket := bucketOf(from); len(out) < limit; bucket++ {
		iter := s.q(ctx, `SELECT data FROM {events} WHERE conversation_id = ? AND bucket = ? AND seq >= ? ORDER BY seq ASC LIMIT ?`,
			cid, bucket, from, limit-len(out)).Iter()
		n := 0
		var data string
		stop := false
		for !stop && iter.Scan(&data) {
			n++
			var ev chat.Event
			if err := record.DecodeRow([]byte(data), &ev); err != nil {
				_ = iter.Close()
				return nil, fmt.Errorf("decode event: %w", err)
			}
			if upTo >= 0 && ev.Position > upTo {
				stop = true
				break
			}
			out = append(out, ev)
			from = ev.Seq + 1
		}
		if err := iter.Close(); err != nil {
			return nil, err
		}
		if stop || n == 0 || from < (bucket+1)*bucketSize {
			break
		}
	}
	return out, nil
}

// EventsAfter returns up to limit events of a conversation with
// afterPosition < position <= upTo, in seq order. Positions grow with seq
// within a conversation, so the window is one run of seqs: the
// event_positions index, searched from the newest bucket back, finds its
// first seq, and one scan of the events reads the run.
func (s *Store) EventsAfter(ctx context.Context, conversationID string, afterPosition, upTo int64, limit int) ([]chat.Event, error) {
	const op = "cassandra: events after"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	if upTo <= afterPosition || upTo <= 0 {
		return nil, nil
	}
	last, err := s.lastSeq(ctx, conversationID)
	if err != nil {
		return nil, classify(op, err)
	}
	var first int64
	for bucket := bucketOf(last); bucket >= 0; bucket-- {
		var seq int64
		err := s.q(ctx, `SELECT seq FROM {event_positions} WHERE conversation_id = ? AND bucket = ? AND position > ? ORDER BY position ASC LIMIT 1`,
			conversationID, bucket, afterPosition).Scan(&seq)
		if errors.Is(err, gocql.ErrNotFound) {
			break // this bucket is entirely at or before afterPosition
		}
		if err != nil {
			return nil, classify(op, err)
		}
		first = seq
	}
	if first == 0 {
		return nil, nil
	}
	evs, err := s.scanEvents(ctx, conversationID, first, limit, upTo)
	if err != nil {
		return nil, classify(op, fmt.Errorf("of %s: %w", conversationID, err))
	}
	return evs, nil
}

// Messages returns a page of messages (tombstones included) in ascending
// seq order and whether more exist in the paging direction: with
// page.After set (or page.Forward), the oldest page.Limit messages after
// it (bounded by page.Before when that is set too); otherwise the newest
// page.Limit messages before page.Before, or of all.
func (s *Store) Messages(ctx context.Context, conversationID string, page chat.MessagePage) ([]chat.Message, bool, error) {
	const op = "cassandra: messages"
	if err := checkLimit(op, page.Limit); err != nil {
		return nil, false, err
	}
	last, err := s.lastSeq(ctx, conversationID)
	if err != nil {
		return nil, false, classify(op, err)
	}
	lo, hi := int64(1), last // inclusive seq bounds
	if page.After > 0 {
		lo = page.After + 1
	}
	if page.Before > 0 {
		hi = min(hi, page.Before-1)
	}
	if lo > hi {
		return nil, false, nil
	}
	forward := page.After > 0 || page.Forward
	// Read one more than asked: its presence is has_more.
	want := page.Limit + 1
	var out []chat.Message
	scanBucket := func(bucket int64) error {
		stmt := `SELECT data FROM {messages} WHERE conversation_id = ? AND bucket = ? AND seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT ?`
		if forward {
			stmt = `SELECT data FROM {messages} WHERE conversation_id = ? AND bucket = ? AND seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT ?`
		}
		iter := s.q(ctx, stmt, conversationID, bucket, lo, hi, want-len(out)).Iter()
		var data string
		for iter.Scan(&data) {
			var m chat.Message
			if err := record.DecodeRow([]byte(data), &m); err != nil {
				_ = iter.Close()
				return fmt.Errorf("decode message: %w", err)
			}
			out = append(out, m)
		}
		return iter.Close()
	}
	if forward {
		for b := bucketOf(lo); b <= bucketOf(hi) && len(out) < want; b++ {
			if err := scanBucket(b); err != nil {
				return nil, false, classify(op, err)
			}
		}
	} else {
		for b := bucketOf(hi); b >= bucketOf(lo) && len(out) < want; b-- {
			if err := scanBucket(b); err != nil {
				return nil, false, classify(op, err)
			}
		}
	}
	more := len(out) > page.Limit
	if more {
		out = out[:page.Limit]
	}
	if !forward {
		slices.Reverse(out)
	}
	return out, more, nil
}

// Message returns one message by id, through the message id → seq table.
func (s *Store) Message(ctx context.Context, conversationID, messageID string) (chat.Message, error) {
	const op = "cassandra: message"
	var seq int64
	err := s.q(ctx, `SELECT seq FROM {message_ids} WHERE conversation_id = ? AND message_id = ?`, conversationID, messageID).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Message{}, notFound(op, "message")
	}
	if err != nil {
		return chat.Message{}, classify(op, err)
	}
	var data string
	err = s.q(ctx, `SELECT data FROM {messages} WHERE conversation_id = ? AND bucket = ? AND seq = ?`, conversationID, bucketOf(seq), seq).Scan(&data)
	if errors.Is(err, gocql.ErrNotFound) {
		return chat.Message{}, notFound(op, "message")
	}
	if err != nil {
		return chat.Message{}, classify(op, err)
	}
	var m chat.Message
	if err := record.DecodeRow([]byte(data), &m); err != nil {
		return chat.Message{}, fmt.Errorf("%s %s: %w", op, messageID, err)
	}
	return m, nil
}

// Dedup returns the message id recorded for a client_id.
func (s *Store) Dedup(ctx context.Context, conversationID, senderID, clientID string) (string, error) {
	const op = "cassandra: dedup"
	var mid string
	err := s.q(ctx, `SELECT message_id FROM {send_dedups} WHERE conversation_id = ? AND sender_id = ? AND client_id = ?`,
		conversationID, senderID, clientID).Scan(&mid)
	if errors.Is(err, gocql.ErrNotFound) {
		return "", notFound(op, "client_id")
	}
	if err != nil {
		return "", classify(op, err)
	}
	return mid, nil
}

// maxDedupsPerQuery bounds the client_ids of one IN query.
const maxDedupsPerQuery = 100

// Dedups returns the message ids recorded for several client_ids of one
// sender: one query per 100, as they share a partition (the sequencer
// looked them up one by one before, a round trip per send).
func (s *Store) Dedups(ctx context.Context, conversationID, senderID string, clientIDs []string) (map[string]string, error) {
	const op = "cassandra: dedups"
	out := make(map[string]string, len(clientIDs))
	for len(clientIDs) > 0 {
		chunk := clientIDs[:min(len(clientIDs), maxDedupsPerQuery)]
		clientIDs = clientIDs[len(chunk):]
		iter := s.q(ctx, `SELECT client_id, message_id FROM {send_dedups} WHERE conversation_id = ? AND sender_id = ? AND client_id IN ?`,
			conversationID, senderID, chunk).Iter()
		var cid, mid string
		for iter.Scan(&cid, &mid) {
			out[cid] = mid
		}
		if err := iter.Close(); err != nil {
			return nil, classify(op, err)
		}
	}
	return out, nil
}

// SenderDedups reads a sender's dedup records of a conversation: one
// Cassandra partition (send_dedups is keyed by conversation and sender),
// at most limit+1 rows.
func (s *Store) SenderDedups(ctx context.Context, conversationID, senderID string, limit int) (map[string]string, bool, error) {
	const op = "cassandra: sender dedups"
	if limit <= 0 {
		return nil, false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "limit must be positive"}
	}
	out := map[string]string{}
	iter := s.q(ctx, `SELECT client_id, message_id FROM {send_dedups} WHERE conversation_id = ? AND sender_id = ? LIMIT ?`,
		conversationID, senderID, limit+1).Iter()
	var cid, mid string
	complete := true
	for iter.Scan(&cid, &mid) {
		if len(out) == limit {
			complete = false
			continue
		}
		out[cid] = mid
	}
	if err := iter.Close(); err != nil {
		return nil, false, classify(op, err)
	}
	return out, complete, nil
}

// PutAttachment creates or replaces an attachment record.
func (s *Store) PutAttachment(ctx context.Context, a chat.AttachmentRecord) error {
	const op = "cassandra: put attachment"
	if a.ID == "" {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "attachment id is empty"}
	}
	data, err := record.EncodeRow(&a)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.q(ctx, `INSERT INTO {attachments} (id, data) VALUES (?, ?)`, a.ID, string(data)).Exec(); err != nil {
		return classify(op, err)
	}
	return nil
}

// Attachment returns an attachment record by id.
func (s *Store) Attachment(ctx context.Context, id string) (chat.AttachmentRecord, error) {
	const op = "cassandra: attachment"
	var a chat.AttachmentRecord
	var data string
	err := s.q(ctx, `SELECT data FROM {attachments} WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, gocql.ErrNotFound) {
		return a, notFound(op, "attachment")
	}
	if err != nil {
		return a, classify(op, err)
	}
	if err := record.DecodeRow([]byte(data), &a); err != nil {
		return a, fmt.Errorf("%s %s: %w", op, id, err)
	}
	return a, nil
}
