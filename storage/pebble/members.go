package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
)

// stageMemberRows keeps the conversation's member rows (cmem/{cid}/{uid})
// in step with the memberships that ch starts and ends.
func stageMemberRows(b *pebble.Batch, ch *chat.Change) error {
	cid := ch.Conversation.ID
	joined, left := ch.MemberMoves()
	for _, uid := range joined {
		if err := b.Set(cmemKey(cid, uid), nil, nil); err != nil {
			return err
		}
	}
	for _, uid := range left {
		if err := b.Delete(cmemKey(cid, uid), nil); err != nil {
			return err
		}
	}
	return nil
}

// Members returns up to limit active members of conversationID after
// after, in user-id order: one range scan of its member rows.
func (s *Store) Members(ctx context.Context, conversationID, after string, limit int) ([]string, error) {
	const op = "pebble: members"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := cmemPrefix(conversationID)
	lo := prefix
	if after != "" {
		// The smallest key above after's own row.
		lo = append(cmemKey(conversationID, after), 0)
	}
	out := []string{}
	err := scan(s.db, lo, prefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		uid, err := lastString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		out = append(out, uid)
		return len(out) < limit, nil
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s of %s: %w", op, conversationID, err))
	}
	return out, nil
}

// lastString decodes the one escaped, terminated string that b holds.
func lastString(b []byte) (string, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 0x01:
			if i+2 != len(b) {
				return "", fmt.Errorf("corrupt member key")
			}
			return string(out), nil
		}
	}
	return "", fmt.Errorf("corrupt member key")
}
