package cassandra

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/gocql/gocql"

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

// requestError is a CQL error answer as the driver returns it.
type requestError struct {
	code int
	msg  string
}

func (e requestError) Code() int       { return e.code }
func (e requestError) Message() string { return e.msg }
func (e requestError) Error() string   { return e.msg }

// TestANodeWithoutTheSchemaYetIsUnavailable: a node that answers before it
// has the store's schema (just restarted, or reconnected to after a network
// fault) names the keyspace or a table as missing; the store created them,
// so the request is retried (503), never answered 500. Other invalid
// requests stay errors of their own.
func TestANodeWithoutTheSchemaYetIsUnavailable(t *testing.T) {
	for _, msg := range []string{
		"keyspace parley_test_c2b11fb19f does not exist",
		"Keyspace parley does not exist",
		"unconfigured table messages",
	} {
		err := fmt.Errorf("cassandra: membership: %w", requestError{code: gocql.ErrCodeInvalid, msg: msg})
		if got := chat.ErrorCode(classify("cassandra: test", err)); got != chat.CodeUnavailable {
			t.Errorf("classify(%q) code %q, want unavailable", msg, got)
		}
	}
	bad := requestError{code: gocql.ErrCodeInvalid, msg: "Invalid STRING constant (x) for \"seq\" of type bigint"}
	if got := chat.ErrorCode(classify("cassandra: test", bad)); got == chat.CodeUnavailable {
		t.Errorf("an invalid request is classified unavailable")
	}
}
