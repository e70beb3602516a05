package cassandra

import (
	"context"

	"github.com/parleychat/parley/chat"
)

var _ chat.ConversationScanner = (*Store)(nil)

// ConversationIDs lists conversations in token order, the table's own:
// each page is one range read from the token of after, so a scan of the
// whole table costs one query per page.
func (s *Store) ConversationIDs(ctx context.Context, after string, limit int) ([]string, error) {
	const op = "cassandra: conversation ids"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	q := s.q(ctx, `SELECT id FROM {conversations} LIMIT ?`, limit)
	if after != "" {
		q = s.q(ctx, `SELECT id FROM {conversations} WHERE token(id) > token(?) LIMIT ?`, after, limit)
	}
	iter := q.Iter()
	var ids []string
	var id string
	for iter.Scan(&id) {
		ids = append(ids, id)
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return ids, nil
}
