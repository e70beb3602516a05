package gateway

import (
	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
)

// hub is the gateway's fan-out hub (delivery/fanout) with the gateway id
// and events log that presence publishes under.
type hub struct {
	*fanout.Hub
	id  string
	log chat.Log
}

// anyLocal reports whether any connection is open on this gateway.
func (h *hub) anyLocal() bool { return h.AnyLocal() }
