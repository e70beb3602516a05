package pebble

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// PutSettings creates or replaces userID's settings of conversationID.
func (s *Store) PutSettings(ctx context.Context, userID, conversationID string, set chat.ConversationSettings) error {
	const op = "pebble: put settings"
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()
	raw, err := record.EncodeRow(&set)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.db.Set(csetKey(userID, conversationID), raw, pebble.Sync); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// Settings returns userID's settings by conversation id.
func (s *Store) Settings(ctx context.Context, userID string) (map[string]chat.ConversationSettings, error) {
	const op = "pebble: settings"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	out := map[string]chat.ConversationSettings{}
	prefix := csetPrefix(userID)
	err := scan(s.db, prefix, prefixEnd(prefix), false, func(k, v []byte) (bool, error) {
		cid, err := lastString(k[len(prefix):])
		if err != nil {
			return false, err
		}
		var set chat.ConversationSettings
		if err := record.DecodeRow(v, &set); err != nil {
			return false, err
		}
		out[cid] = set
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", op, userID, err)
	}
	return out, nil
}

// PutDevice creates or replaces a device and reports whether it was new.
func (s *Store) PutDevice(ctx context.Context, d chat.Device) (bool, error) {
	const op = "pebble: put device"
	if d.UserID == "" || d.ID == "" {
		return false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "device user id and id are required"}
	}
	if err := s.enter(ctx, op); err != nil {
		return false, err
	}
	defer s.leave()
	s.devMu.Lock()
	defer s.devMu.Unlock()
	var old chat.Device
	found, err := getJSON(s.db, devKey(d.UserID, d.ID), &old)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if found {
		d.CreatedAt = old.CreatedAt
	} else {
		n := 0
		prefix := devPrefix(d.UserID)
		if err := scan(s.db, prefix, prefixEnd(prefix), false, func(_, _ []byte) (bool, error) {
			n++
			return true, nil
		}); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		if n >= chat.MaxDevicesPerUser {
			return false, &chat.Error{Code: chat.CodeConflict, Op: op, Message: fmt.Sprintf("at most %d devices per user; delete one first", chat.MaxDevicesPerUser)}
		}
	}
	raw, err := record.EncodeRow(&d)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if err := s.db.Set(devKey(d.UserID, d.ID), raw, pebble.Sync); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return !found, nil
}

// Devices returns userID's devices in device-id order.
func (s *Store) Devices(ctx context.Context, userID string) ([]chat.Device, error) {
	const op = "pebble: devices"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []chat.Device
	prefix := devPrefix(userID)
	err := scan(s.db, prefix, prefixEnd(prefix), false, func(_, v []byte) (bool, error) {
		var d chat.Device
		if err := record.DecodeRow(v, &d); err != nil {
			return false, err
		}
		out = append(out, d)
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", op, userID, err)
	}
	return out, nil
}

// DeleteDevice removes one of userID's devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	const op = "pebble: delete device"
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()
	s.devMu.Lock()
	defer s.devMu.Unlock()
	var d chat.Device
	found, err := getJSON(s.db, devKey(userID, deviceID), &d)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !found {
		return notFound(op, "device")
	}
	if err := s.db.Delete(devKey(userID, deviceID), pebble.Sync); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
