package cassandra

import "context"

// Members returns up to limit active members of conversationID after
// after, in user-id order: one slice of the conversation's partition of
// conversation_members.
func (s *Store) Members(ctx context.Context, conversationID, after string, limit int) ([]string, error) {
	const op = "cassandra: members"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	iter := s.q(ctx, `SELECT user_id FROM {conversation_members} WHERE conversation_id = ? AND user_id > ? LIMIT ?`,
		conversationID, after, limit).PageSize(limit).Iter()
	out := []string{}
	var uid string
	for iter.Scan(&uid) {
		out = append(out, uid)
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}
