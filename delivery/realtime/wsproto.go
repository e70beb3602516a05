package realtime

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/parleychat/parley/delivery/wire"
)

// The binary subprotocol, parley.v1+proto (package wire): the same frames
// as parley.v1 in Protocol Buffers. A session knows its encoding from the
// handshake; the fan-out queues the same items on every session, and a
// binary session renders them with their binary encoding (made once per
// item, fanout.Item.Proto). Control frames (acks, pongs, errors, token
// refresh) are queued as JSON as for every session and rendered for a
// binary one from that JSON.

// wsSubprotocols are the subprotocols the server speaks.
var wsSubprotocols = []string{wsSubprotocol, wire.Subprotocol}

// negotiateSubprotocol picks the first subprotocol the client offers that
// the server speaks (API: a client that offers both gets the first it
// lists). It returns "" when the client offers none of them; the socket
// is then accepted without a subprotocol and speaks JSON, as it always has.
func negotiateSubprotocol(r *http.Request) string {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, offered := range strings.Split(h, ",") {
			offered = strings.TrimSpace(offered)
			for _, sp := range wsSubprotocols {
				if strings.EqualFold(offered, sp) {
					return offered // the client's spelling, as the library echoes it
				}
			}
		}
	}
	return ""
}

// isBinary reports whether the negotiated subprotocol is the binary one.
func isBinary(subprotocol string) bool { return strings.EqualFold(subprotocol, wire.Subprotocol) }

// messageType is the WebSocket message type of the session's server frames.
func (s *wsSession) messageType() websocket.MessageType {
	if s.binary {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// frameOf is one JSON server object as the session sends it: unchanged,
// or as a binary frame holding its binary twin. It returns nil when the
// object has no binary twin (a bug wire's tests are there to catch).
func (s *wsSession) frameOf(obj []byte) []byte {
	if !s.binary {
		return obj
	}
	b, err := wire.FrameFromJSON(obj)
	if err != nil {
		s.t.logger.Error("no binary encoding for a server frame", "err", err)
		return nil
	}
	return b
}

// decodeFrame reads one client frame of the session's encoding; a frame
// that does not decode (or comes in the other encoding) is invalid, and
// a text frame that is not UTF-8 fails the connection (fail, 1007) in
// either encoding.
func (s *wsSession) decodeFrame(typ websocket.MessageType, data []byte) (f wsClientFrame, fail bool) {
	if !s.binary || (typ == websocket.MessageText && !utf8.Valid(data)) {
		return decodeClientFrame(typ, data) // JSON, and every text frame's UTF-8 rule
	}
	invalid := wsClientFrame{Type: "\x00invalid"}
	if typ != websocket.MessageBinary {
		return invalid, false
	}
	pf, err := wire.DecodeClientFrame(data)
	if err != nil {
		return invalid, false
	}
	return wsClientFrame(pf), false
}

// invalidFrameMessage is the error message for a frame that does not decode.
func (s *wsSession) invalidFrameMessage() string {
	if s.binary {
		return "a frame must be one binary parley.v1.ClientFrame"
	}
	return "a frame must be one JSON object"
}
