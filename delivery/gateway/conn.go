package gateway

import (
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
)

// newConn returns a connection whose overflows are counted.
func (g *Gateway) newConn(user string) *fanout.Conn {
	c := fanout.NewConn(user, g.cfg.QueueSize)
	c.OnOverflow = g.metrics.overflows.Inc
	return c
}

// wireEvent encodes ev for clients without its closing brace.
func wireEvent(ev chat.Event) []byte { return fanout.EncodeEvent(ev) }
