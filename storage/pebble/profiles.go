package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
)

// SetUserName records a claimed or set display name. The two live under
// keys of their own, so a claim never overwrites a set name and neither
// write reads first.
func (s *Store) SetUserName(ctx context.Context, userID, name string, claimed bool) error {
	const op = "pebble: set user name"
	if !chat.ValidUserID(userID) || name == "" {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "invalid user id or empty name"}
	}
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Set(userNameKey(userID, claimed), []byte(name), pebble.Sync); err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return nil
}

// Users returns the profiles of ids that have a name: the set one if any,
// else the latest claimed one.
func (s *Store) Users(ctx context.Context, ids []string) (map[string]chat.User, error) {
	const op = "pebble: users"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	out := make(map[string]chat.User, len(ids))
	for _, id := range ids {
		if _, done := out[id]; done {
			continue
		}
		for _, claimed := range []bool{false, true} {
			v, found, err := getRaw(s.db, userNameKey(id, claimed))
			if err != nil {
				return nil, classify(op, fmt.Errorf("%s: %w", op, err))
			}
			if found {
				out[id] = chat.User{ID: id, Name: string(v)}
				break
			}
		}
	}
	return out, nil
}
