package rest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// hitStore answers Message for hydrate's tests: "gone" is not found,
// "deleted" is a deleted message, "broken" fails; each read takes a
// while, and the reads under way at once are counted.
type hitStore struct {
	chat.Store
	now, most atomic.Int64
}

func (s *hitStore) Message(_ context.Context, cid, id string) (chat.Message, error) {
	in := s.now.Add(1)
	for m := s.most.Load(); in > m && !s.most.CompareAndSwap(m, in); m = s.most.Load() {
	}
	defer s.now.Add(-1)
	time.Sleep(2 * time.Millisecond)
	switch id {
	case "gone":
		return chat.Message{}, chat.Errorf(chat.CodeNotFound, "no such message")
	case "broken":
		return chat.Message{}, errors.New("connection reset")
	}
	return chat.Message{ID: id, ConversationID: cid, Text: "t " + id, Deleted: id == "deleted"}, nil
}

// TestHydrateReadsHitsAtOnceInOrder: a page's hits are read from the
// Store several at a time; the results keep the hits' order and leave
// out messages deleted or gone since they were indexed.
func TestHydrateReadsHitsAtOnceInOrder(t *testing.T) {
	var hits []chat.SearchHit
	for i := range 50 {
		id := fmt.Sprintf("m%02d", i)
		switch i {
		case 7:
			id = "gone"
		case 30:
			id = "deleted"
		}
		hits = append(hits, chat.SearchHit{ConversationID: "c", MessageID: id, Highlights: []string{"<mark>t</mark>"}})
	}
	s := &hitStore{}
	got, err := hydrate(t.Context(), s, hits)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range hits {
		if h.MessageID != "gone" && h.MessageID != "deleted" {
			want = append(want, h.MessageID)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Message.ID != want[i] || len(r.Highlights) != 1 {
			t.Fatalf("result %d is %q (%d highlights), want %q", i, r.Message.ID, len(r.Highlights), want[i])
		}
	}
	if m := s.most.Load(); m < 2 || m > hitReads {
		t.Errorf("%d reads under way at once, want 2 to %d", m, hitReads)
	}
}

// TestHydrateOfAnUnreadableHitIsUnavailable: one hit that cannot be read
// fails the page as unavailable, rather than answering it incomplete.
func TestHydrateOfAnUnreadableHitIsUnavailable(t *testing.T) {
	hits := []chat.SearchHit{{ConversationID: "c", MessageID: "a"}, {ConversationID: "c", MessageID: "broken"}, {ConversationID: "c", MessageID: "b"}}
	got, err := hydrate(t.Context(), &hitStore{}, hits)
	if chat.ErrorCode(err) != chat.CodeUnavailable {
		t.Fatalf("results %v, err %v; want unavailable", got, err)
	}
}
