package realtime

import (
	"context"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
)

// watchPresence handles a presence.watch frame. The watch ends with the
// session.
func (s *wsSession) watchPresence(ctx context.Context, ids []string) error {
	if !s.watching {
		s.watching = true
		context.AfterFunc(ctx, func() { s.t.presence.Unwatch(s) })
	}
	return s.t.presence.Watch(ctx, s, ids)
}

// UserID and Presence make a WebSocket session a presence.Watcher.
func (s *wsSession) UserID() string { return s.user.ID }

func (s *wsSession) Presence(e chat.Ephemeral) {
	if it := fanout.EphemeralItem(e); it != nil {
		s.conn.Enqueue(it)
	}
}
