package rest

import (
	"testing"

	"github.com/parleychat/parley/chat"
)

// TestAResultWithoutAMessageIsUnavailable: a command result that carries no
// message is answered unavailable (the client retries with its client_id),
// not dereferenced.
func TestAResultWithoutAMessageIsUnavailable(t *testing.T) {
	if m, err := messageOf(chat.Result{}); m != nil || chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("messageOf(no message) = %v, %v; want unavailable", m, err)
	}
	m, err := messageOf(chat.Result{Message: &chat.Message{ID: "msg_1"}})
	if err != nil || m.ID != "msg_1" || m.Attachments == nil || m.Reactions == nil {
		t.Fatalf("messageOf = %+v, %v; want the message, normalized", m, err)
	}
}
