package cassandra

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// PutSettings creates or replaces userID's settings of conversationID.
func (s *Store) PutSettings(ctx context.Context, userID, conversationID string, set chat.ConversationSettings) error {
	const op = "cassandra: put settings"
	data, err := record.EncodeRow(&set)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.q(ctx, `INSERT INTO {conversation_settings} (user_id, conversation_id, data) VALUES (?, ?, ?)`, userID, conversationID, string(data)).Exec(); err != nil {
		return classify(op, err)
	}
	return nil
}

// Settings returns userID's settings by conversation id.
func (s *Store) Settings(ctx context.Context, userID string) (map[string]chat.ConversationSettings, error) {
	const op = "cassandra: settings"
	out := map[string]chat.ConversationSettings{}
	iter := s.q(ctx, `SELECT conversation_id, data FROM {conversation_settings} WHERE user_id = ?`, userID).Iter()
	var cid, data string
	for iter.Scan(&cid, &data) {
		var set chat.ConversationSettings
		if err := record.DecodeRow([]byte(data), &set); err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("%s of %s: %w", op, userID, err)
		}
		out[cid] = set
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// PutDevice creates or replaces a device and reports whether it was new.
// Every write of the devices table is a lightweight transaction, so the
// insert-if-absent, the replace-if-present and the delete order among
// themselves (mixing them with plain writes would not).
func (s *Store) PutDevice(ctx context.Context, d chat.Device) (bool, error) {
	const op = "cassandra: put device"
	if d.UserID == "" || d.ID == "" {
		return false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "device user id and id are required"}
	}
	for attempt := 0; attempt < 4; attempt++ {
		var old string
		n := 0
		iter := s.q(ctx, `SELECT device_id, data FROM {devices} WHERE user_id = ?`, d.UserID).Iter()
		var id, data string
		for iter.Scan(&id, &data) {
			n++
			if id == d.ID {
				old = data
			}
		}
		if err := iter.Close(); err != nil {
			return false, classify(op, err)
		}
		if old != "" {
			var prev chat.Device
			if err := record.DecodeRow([]byte(old), &prev); err == nil {
				d.CreatedAt = prev.CreatedAt
			}
			data, err := record.EncodeRow(&d)
			if err != nil {
				return false, fmt.Errorf("%s: %w", op, err)
			}
			applied, err := s.q(ctx, `UPDATE {devices} SET data = ? WHERE user_id = ? AND device_id = ? IF EXISTS`, string(data), d.UserID, d.ID).MapScanCAS(map[string]any{})
			if err != nil {
				return false, classify(op, err)
			}
			if applied {
				return false, nil
			}
			continue // deleted meanwhile: insert it anew
		}
		if n >= chat.MaxDevicesPerUser {
			return false, &chat.Error{Code: chat.CodeConflict, Op: op, Message: fmt.Sprintf("at most %d devices per user; delete one first", chat.MaxDevicesPerUser)}
		}
		raw, err := record.EncodeRow(&d)
		if err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
		applied, err := s.q(ctx, `INSERT INTO {devices} (user_id, device_id, data) VALUES (?, ?, ?) IF NOT EXISTS`, d.UserID, d.ID, string(raw)).MapScanCAS(map[string]any{})
		if err != nil {
			return false, classify(op, err)
		}
		if applied {
			return true, nil
		}
		// Created meanwhile: replace it, keeping its creation time.
	}
	return false, &chat.Error{Code: chat.CodeConflict, Op: op, Message: "the device changed concurrently; retry"}
}

// Devices returns userID's devices in device-id order.
func (s *Store) Devices(ctx context.Context, userID string) ([]chat.Device, error) {
	const op = "cassandra: devices"
	var out []chat.Device
	iter := s.q(ctx, `SELECT data FROM {devices} WHERE user_id = ?`, userID).Iter()
	var data string
	for iter.Scan(&data) {
		var d chat.Device
		if err := record.DecodeRow([]byte(data), &d); err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("%s of %s: %w", op, userID, err)
		}
		out = append(out, d)
	}
	if err := iter.Close(); err != nil {
		return nil, classify(op, err)
	}
	return out, nil
}

// DeleteDevice removes one of userID's devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	const op = "cassandra: delete device"
	applied, err := s.q(ctx, `DELETE FROM {devices} WHERE user_id = ? AND device_id = ? IF EXISTS`, userID, deviceID).MapScanCAS(map[string]any{})
	if err != nil {
		return classify(op, err)
	}
	if !applied {
		return notFound(op, "device")
	}
	return nil
}
