package presence

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/retry"
)

// readEphemeral reads the ephemeral topic until ctx is done, as a Tracker
// and a View both do: joined runs on each (re)subscription, apply on each
// batch, and a failed subscription is logged and tried again after a
// backoff that doubles up to 2s.
func readEphemeral(ctx context.Context, log chat.Log, logger *slog.Logger, joined func(), apply func(int, []chat.Record)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := log.Subscribe(ctx, chat.TopicEphemeral, joined, apply)
		if ctx.Err() != nil {
			return
		}
		logger.Warn("reading the ephemeral topic", "err", err)
		if !retry.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// decodeRecord decodes one record of the ephemeral topic; ok is false for
// one that does not decode or names no gateway, which readers skip.
func decodeRecord(rec chat.Record) (r record, ok bool) {
	if err := json.Unmarshal(rec.Value, &r); err != nil || r.Gateway == "" {
		return record{}, false
	}
	return r, true
}

// applyLists folds an online, offline, snapshot or snapshot+ record into
// where (user -> gateways it is online on) through add and remove, which
// keep where; the Tracker's also tell its announcer. Other kinds are left
// to the caller.
func applyLists(where map[string]map[string]bool, r record, add, remove func(user, gw string)) {
	switch r.Kind {
	case "online":
		add(r.User, r.Gateway)
	case "offline":
		remove(r.User, r.Gateway)
	case "snapshot":
		keep := make(map[string]bool, len(r.Users))
		for _, u := range r.Users {
			keep[u] = true
			add(u, r.Gateway)
		}
		for user, gws := range where {
			if gws[r.Gateway] && !keep[user] {
				remove(user, r.Gateway)
			}
		}
	case "snapshot+":
		for _, u := range r.Users {
			add(u, r.Gateway)
		}
	}
}
