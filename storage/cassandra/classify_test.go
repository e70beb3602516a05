package cassandra

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/parleychat/parley/chat"
)

// TestACutConnectionIsUnavailable: the errors a request meets when its node
// dies or the network cuts it off are unavailable (503, retry), never a 500.
func TestACutConnectionIsUnavailable(t *testing.T) {
	for _, err := range []error{
		io.EOF, io.ErrUnexpectedEOF,
		fmt.Errorf("write: %w", syscall.EPIPE),
		fmt.Errorf("read tcp: %w", syscall.ECONNRESET),
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED),
	} {
		if got := chat.ErrorCode(classify("cassandra: test", err)); got != chat.CodeUnavailable {
			t.Errorf("classify(%v) code %q, want unavailable", err, got)
		}
	}
	if got := chat.ErrorCode(classify("cassandra: test", errors.New("syntax error"))); got == chat.CodeUnavailable {
		t.Errorf("a plain error is classified unavailable")
	}
}
