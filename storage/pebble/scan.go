package pebble

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/chat"
)

var _ chat.ConversationScanner = (*Store)(nil)

// ConversationIDs lists conversations in id (key) order.
func (s *Store) ConversationIDs(ctx context.Context, after string, limit int) ([]string, error) {
	const op = "pebble: conversation ids"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := tuple(tableConv)
	lo := prefix
	if after != "" {
		lo = append(convKey(after), 0) // the first key past after's
	}
	var ids []string
	err := scan(s.db, lo, prefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		id, err := lastString(k[len(prefix):])
		if err != nil {
			return false, fmt.Errorf("conversation key %q: %w", k, err)
		}
		ids = append(ids, id)
		return len(ids) < limit, nil
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return ids, nil
}
