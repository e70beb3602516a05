package gateway

import (
	"context"
	"net"

	"github.com/parleychat/parley/delivery/realtime"
)

// ConnContext, set as http.Server.ConnContext, lets the realtime
// transports tune the TCP connection under a WebSocket.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return realtime.ConnContext(ctx, c)
}
