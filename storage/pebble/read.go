package pebble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// Conversation returns a conversation with its members and its internal
// LastPosition and LastActivity.
func (s *Store) Conversation(ctx context.Context, id string) (chat.Conversation, error) {
	const op = "pebble: conversation"
	if err := s.enter(ctx, op); err != nil {
		return chat.Conversation{}, err
	}
	defer s.leave()
	b, closer, err := s.db.Get(convKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return chat.Conversation{}, notFound(op, "conversation")
	}
	if err != nil {
		return chat.Conversation{}, classify(op, fmt.Errorf("%s %s: %w", op, id, err))
	}
	defer closer.Close()
	if c, ok := s.convs.get(id, b); ok {
		return c, nil
	}
	var c chat.Conversation
	if err := record.DecodeRow(b, &c); err != nil {
		return chat.Conversation{}, classify(op, fmt.Errorf("%s %s: %w", op, id, err))
	}
	s.convs.put(id, b, c)
	return c, nil
}

// Memberships returns every membership of userID, active or left, in
// conversation id order.
func (s *Store) Memberships(ctx context.Context, userID string) ([]chat.Membership, error) {
	const op = "pebble: memberships"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []chat.Membership
	prefix := memPrefix(userID)
	err := scan(s.db, prefix, prefixEnd(prefix), false, func(_, v []byte) (bool, error) {
		var m chat.Membership
		if err := record.DecodeRow(v, &m); err != nil {
			return false, err
		}
		out = append(out, m)
		return true, nil
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s of %s: %w", op, userID, err))
	}
	return out, nil
}

// Membership returns the membership of userID in conversationID.
func (s *Store) Membership(ctx context.Context, conversationID, userID string) (chat.Membership, error) {
	const op = "pebble: membership"
	if err := s.enter(ctx, op); err != nil {
		return chat.Membership{}, err
	}
	defer s.leave()
	var m chat.Membership
	found, err := getJSON(s.db, memKey(userID, conversationID), &m)
	if err != nil {
		return chat.Membership{}, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if !found {
		return chat.Membership{}, notFound(op, "membership")
	}
	return m, nil
}

func checkLimit(op string, limit int) error {
	if limit <= 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("limit %d is not positive", limit)}
	}
	return nil
}

// Events returns up to limit events of a conversation with seq > afterSeq,
// in seq order.
func (s *Store) Events(ctx context.Context, conversationID string, afterSeq int64, limit int) ([]chat.Event, error) {
	const op = "pebble: events"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	lo := evKey(conversationID, unsigned(afterSeq)+1)
	evs, err := s.scanEvents(lo, prefixEnd(evPrefix(conversationID)), limit, -1)
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s of %s: %w", op, conversationID, err))
	}
	return evs, nil
}

// EventsAfter returns up to limit events of a conversation with
// afterPosition < position <= upTo, in seq order. Positions grow with seq
// within a conversation, so the window is one run of seqs: the evpos index
// finds its first seq, and one scan of the events reads the run.
func (s *Store) EventsAfter(ctx context.Context, conversationID string, afterPosition, upTo int64, limit int) ([]chat.Event, error) {
	const op = "pebble: events after"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	if upTo <= afterPosition || upTo <= 0 {
		return nil, nil
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	var first uint64
	posLo := evPosKey(conversationID, unsigned(afterPosition)+1)
	posHi := evPosKey(conversationID, uint64(upTo)+1)
	err := scan(s.db, posLo, posHi, false, func(_, v []byte) (bool, error) {
		seq, err := decodeUint(v)
		first = seq
		return false, err
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s of %s: %w", op, conversationID, err))
	}
	if first == 0 {
		return nil, nil
	}
	evs, err := s.scanEvents(evKey(conversationID, first), prefixEnd(evPrefix(conversationID)), limit, upTo)
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s of %s: %w", op, conversationID, err))
	}
	return evs, nil
}

// scanEvents decodes up to limit events of [lo, hi), stopping at the first
// whose position is above upTo (unless upTo is negative).
func (s *Store) scanEvents(lo, hi []byte, limit int, upTo int64) ([]chat.Event, error) {
	var out []chat.Event
	err := scan(s.db, lo, hi, false, func(_, v []byte) (bool, error) {
		var ev chat.Event
		if err := record.DecodeRow(v, &ev); err != nil {
			return false, err
		}
		if upTo >= 0 && ev.Position > upTo {
			return false, nil
		}
		out = append(out, ev)
		return len(out) < limit, nil
	})
	return out, err
}

// Messages returns a page of messages (tombstones included) in ascending
// seq order and whether more exist in the paging direction: with
// page.After set, the oldest page.Limit messages after it (bounded by
// page.Before when that is set too); otherwise the newest page.Limit
// messages before page.Before, or of all.
func (s *Store) Messages(ctx context.Context, conversationID string, page chat.MessagePage) ([]chat.Message, bool, error) {
	const op = "pebble: messages"
	if err := checkLimit(op, page.Limit); err != nil {
		return nil, false, err
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, false, err
	}
	defer s.leave()
	prefix := msgPrefix(conversationID)
	lo, hi := prefix, prefixEnd(prefix)
	if page.After > 0 {
		lo = msgKey(conversationID, uint64(page.After)+1)
	}
	if page.Before > 0 {
		hi = msgKey(conversationID, uint64(page.Before))
	}
	if bytes.Compare(lo, hi) >= 0 {
		return nil, false, nil
	}
	forward := page.After > 0 || page.Forward
	var out []chat.Message
	// Read one more than asked: its presence is has_more.
	err := scan(s.db, lo, hi, !forward, func(_, v []byte) (bool, error) {
		var m chat.Message
		if err := record.DecodeRow(v, &m); err != nil {
			return false, err
		}
		out = append(out, m)
		return len(out) <= page.Limit, nil
	})
	if err != nil {
		return nil, false, classify(op, fmt.Errorf("%s of %s: %w", op, conversationID, err))
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

// Message returns one message by id.
func (s *Store) Message(ctx context.Context, conversationID, messageID string) (chat.Message, error) {
	const op = "pebble: message"
	if err := s.enter(ctx, op); err != nil {
		return chat.Message{}, err
	}
	defer s.leave()
	seq, found, err := getUint(s.db, msgIDKey(conversationID, messageID))
	if err != nil {
		return chat.Message{}, classify(op, fmt.Errorf("%s %s: %w", op, messageID, err))
	}
	if !found {
		return chat.Message{}, notFound(op, "message")
	}
	var m chat.Message
	found, err = getJSON(s.db, msgKey(conversationID, seq), &m)
	if err != nil {
		return chat.Message{}, classify(op, fmt.Errorf("%s %s: %w", op, messageID, err))
	}
	if !found {
		return chat.Message{}, notFound(op, "message")
	}
	return m, nil
}

// Dedup returns the message id recorded for a client_id.
func (s *Store) Dedup(ctx context.Context, conversationID, senderID, clientID string) (string, error) {
	const op = "pebble: dedup"
	if err := s.enter(ctx, op); err != nil {
		return "", err
	}
	defer s.leave()
	v, found, err := getRaw(s.db, dedupKey(conversationID, senderID, clientID))
	if err != nil {
		return "", classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if !found {
		return "", notFound(op, "client_id")
	}
	return string(v), nil
}

// Dedups returns the message ids recorded for several client_ids.
func (s *Store) Dedups(ctx context.Context, conversationID, senderID string, clientIDs []string) (map[string]string, error) {
	const op = "pebble: dedups"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[string]string, len(clientIDs))
	for _, id := range clientIDs {
		v, found, err := getRaw(s.db, dedupKey(conversationID, senderID, id))
		if err != nil {
			return nil, classify(op, fmt.Errorf("%s: %w", op, err))
		}
		if found {
			out[id] = string(v)
		}
	}
	return out, nil
}

// SenderDedups reads a sender's dedup records of a conversation: one
// prefix scan of at most limit+1 keys.
func (s *Store) SenderDedups(ctx context.Context, conversationID, senderID string, limit int) (map[string]string, bool, error) {
	const op = "pebble: sender dedups"
	if limit <= 0 {
		return nil, false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "limit must be positive"}
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, false, err
	}
	defer s.leave()
	prefix := tuple(tableDedup, conversationID, senderID)
	out := map[string]string{}
	complete := true
	err := scan(s.db, prefix, prefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		if len(out) == limit {
			complete = false
			return false, nil
		}
		client, err := decodeLastString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		out[client] = string(v)
		return true, nil
	})
	if err != nil {
		return nil, false, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return out, complete, nil
}

// PutAttachment creates or replaces an attachment record.
func (s *Store) PutAttachment(ctx context.Context, a chat.AttachmentRecord) error {
	const op = "pebble: put attachment"
	if a.ID == "" {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "attachment id is empty"}
	}
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()
	raw, err := record.EncodeRow(&a)
	if err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if err := s.db.Set(attKey(a.ID), raw, pebble.Sync); err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// Attachment returns an attachment record by id.
func (s *Store) Attachment(ctx context.Context, id string) (chat.AttachmentRecord, error) {
	const op = "pebble: attachment"
	if err := s.enter(ctx, op); err != nil {
		return chat.AttachmentRecord{}, err
	}
	defer s.leave()
	var a chat.AttachmentRecord
	found, err := getJSON(s.db, attKey(id), &a)
	if err != nil {
		return a, classify(op, fmt.Errorf("%s %s: %w", op, id, err))
	}
	if !found {
		return a, notFound(op, "attachment")
	}
	return a, nil
}
