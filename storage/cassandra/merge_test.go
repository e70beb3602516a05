package cassandra

import (
	"fmt"
	"testing"

	"github.com/parleychat/parley/chat"
)

// change is a one-event change of conversation c from seq prev, touching
// message mid with text.
func change(prev int64, mid, text string) *chat.Change {
	seq := prev + 1
	m := chat.Message{ID: mid, ConversationID: "c", Seq: seq, Text: text}
	return &chat.Change{
		Conversation: chat.Conversation{ID: "c", LastSeq: seq, Title: fmt.Sprint("t", seq)},
		PrevSeq:      prev,
		Events:       []chat.Event{{ConversationID: "c", Seq: seq, Position: seq << 8, Message: &m}},
		Messages:     []chat.Message{m},
		Memberships:  []chat.Membership{{ConversationID: "c", UserID: "alice", ReadSeq: seq}},
	}
}

func TestMergeRunsFoldsConsecutiveChanges(t *testing.T) {
	chs := []*chat.Change{change(0, "m1", "one"), change(1, "m2", "two"), change(2, "m1", "one, edited")}
	runs := mergeRuns(chs)
	if len(runs) != 1 || len(runs[0].parts) != 3 {
		t.Fatalf("got %d runs, want one of three parts", len(runs))
	}
	m := runs[0].merged
	if m.PrevSeq != 0 || m.Conversation.LastSeq != 3 || m.Conversation.Title != "t3" || len(m.Events) != 3 {
		t.Fatalf("merged change: prev %d, last %d, title %q, %d events", m.PrevSeq, m.Conversation.LastSeq, m.Conversation.Title, len(m.Events))
	}
	if err := m.Check(); err != nil {
		t.Fatalf("merged change is not self-consistent: %v", err)
	}
	if len(m.Messages) != 2 || m.Messages[0].Text != "one, edited" {
		t.Fatalf("a message touched twice must keep its last version only: %+v", m.Messages)
	}
	if len(m.Memberships) != 1 || m.Memberships[0].ReadSeq != 3 {
		t.Fatalf("a membership touched twice must keep its last version only: %+v", m.Memberships)
	}
	if chs[0].Conversation.LastSeq != 1 || len(chs[0].Events) != 1 || chs[0].Messages[0].Text != "one" {
		t.Fatal("merging changed its input")
	}
}

func TestMergeRunsBreaksOnGapsAndBounds(t *testing.T) {
	runs := mergeRuns([]*chat.Change{change(0, "a", "x"), change(5, "b", "y")})
	if len(runs) != 2 {
		t.Fatalf("a change that does not start where the last ended must not merge: %d runs", len(runs))
	}
	var chs []*chat.Change
	for i := int64(0); i < mergeMaxEvents+1; i++ {
		chs = append(chs, change(i, fmt.Sprint("m", i), "x"))
	}
	if runs := mergeRuns(chs); len(runs) != 2 || len(runs[0].merged.Events) != mergeMaxEvents {
		t.Fatalf("%d changes made %d runs; want %d events in the first", len(chs), len(runs), mergeMaxEvents)
	}
}
