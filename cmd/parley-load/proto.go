package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/delivery/wire"
	parleyv1 "github.com/parleychat/parley/parley/v1"
)

// Receivers over the binary subprotocol (-proto): transport "wsproto". The
// scenarios read JSON lines; a binary frame's messages are handed to them
// as small JSON objects that keep what they look at (the type, a
// message's text with its send stamp), so that the client's cost of
// reading them stays small next to the server's.

func (c *client) connectProto(ctx context.Context, u, cursor string) error {
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}, HTTPClient: streamClient})
	if err != nil {
		return err
	}
	if ws.Subprotocol() != wire.Subprotocol {
		ws.CloseNow()
		return fmt.Errorf("the server does not speak %s", wire.Subprotocol)
	}
	ws.SetReadLimit(64 << 20)
	c.ws = ws
	if cursor == "" {
		hello, _ := proto.Marshal(&parleyv1.ClientFrame{Kind: &parleyv1.ClientFrame_Hello{Hello: &parleyv1.Hello{}}})
		if err := ws.Write(ctx, websocket.MessageBinary, hello); err != nil {
			ws.CloseNow()
			return err
		}
	}
	lines, err := c.nextProto(ctx)
	if err != nil {
		ws.CloseNow()
		return err
	}
	if len(lines) == 0 || !strings.HasPrefix(string(lines[0]), `{"type":"ready"`) {
		ws.CloseNow()
		return fmt.Errorf("first message is not ready")
	}
	c.pending = lines[1:]
	return nil
}

func (c *client) nextProto(ctx context.Context) ([][]byte, error) {
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var f parleyv1.ServerFrame
	if err := proto.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(f.GetMessages()))
	for _, m := range f.GetMessages() {
		switch {
		case m.GetReady() != nil:
			c.cursor = wire.CursorText(m.GetReady().GetCursor())
			out = append(out, []byte(`{"type":"ready"}`))
		case m.GetEvent() != nil:
			ev := m.GetEvent()
			c.cursor = wire.CursorText(ev.GetCursor())
			typ := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_"), "_", "."))
			out = append(out, []byte(`{"type":"`+typ+`","text":`+strconv.Quote(ev.GetMessage().GetText())+`}`))
		default:
			out = append(out, []byte(`{"type":"other"}`))
		}
	}
	return out, nil
}

// cpuMeter reads a server's CPU time (user and system) over a phase from
// /proc/<pid>/stat, when --pid is given.
type cpuMeter struct {
	pid   int
	start time.Duration
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	if pid != 0 {
		m.start, _ = processCPU(pid)
	}
	return m
}

// stop puts the phase's server CPU time, and its share per delivery, into r.
func (m *cpuMeter) stop(r *Result) {
	if m.pid == 0 {
		return
	}
	end, err := processCPU(m.pid)
	if err != nil {
		return
	}
	r.ServerCPUSeconds = (end - m.start).Seconds()
	if r.Delivered > 0 {
		r.CPUPerDeliveryNs = float64((end - m.start).Nanoseconds()) / float64(r.Delivered)
	}
}

// clockTick is the unit of /proc/<pid>/stat's times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// processCPU is a process's user and system time so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := readProc(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(fields[12], 10, 64) // field 15
	return time.Duration(utime+stime) * clockTick, nil
}
