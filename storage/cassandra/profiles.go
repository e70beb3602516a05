package cassandra

import (
	"context"

	"github.com/parleychat/parley/chat"
)

// maxUsersPerQuery bounds the ids of one multi-partition IN read.
const maxUsersPerQuery = 100

// SetUserName records a claimed or set display name, each in a column of
// its own (see schema), so the write needs no read and no LWT.
func (s *Store) SetUserName(ctx context.Context, userID, name string, claimed bool) error {
	const op = "cassandra: set user name"
	if !chat.ValidUserID(userID) || name == "" {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "invalid user id or empty name"}
	}
	stmt := `UPDATE {users} SET set_name = ? WHERE user_id = ?`
	if claimed {
		stmt = `UPDATE {users} SET claimed_name = ? WHERE user_id = ?`
	}
	if err := s.q(ctx, stmt, name, userID).Exec(); err != nil {
		return classify(op, err)
	}
	return nil
}

// Users returns the profiles of ids that have a name: the set one if any,
// else the latest claimed one.
func (s *Store) Users(ctx context.Context, ids []string) (map[string]chat.User, error) {
	const op = "cassandra: users"
	out := make(map[string]chat.User, len(ids))
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxUsersPerQuery)]
		ids = ids[len(chunk):]
		iter := s.q(ctx, `SELECT user_id, claimed_name, set_name FROM {users} WHERE user_id IN ?`, chunk).Iter()
		var id, claimed, set string
		for iter.Scan(&id, &claimed, &set) {
			name := set
			if name == "" {
				name = claimed
			}
			if name != "" {
				out[id] = chat.User{ID: id, Name: name}
			}
			claimed, set = "", ""
		}
		if err := iter.Close(); err != nil {
			return nil, classify(op, err)
		}
	}
	return out, nil
}
