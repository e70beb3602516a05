package bleve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// FuzzSearch: whatever a caller searches for, with whatever filters and
// page token, Search answers without panicking, refuses only with
// invalid_request, and returns only messages of the caller's
// conversations, each at most once, with page tokens that work.
func FuzzSearch(f *testing.F) {
	x := openTemp(f)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var msgs []chat.Message
	for i, text := range []string{"hello world", "the quick brown fox", "über straße", "日本語のテキスト", "fox AND NOT hello", "OR * ~ ^2 field:value", "emoji 🎉 party", ""} {
		cid := []string{"cnv_a", "cnv_b", "cnv_c"}[i%3]
		m := chat.Message{ID: "msg_" + string(rune('a'+i)), ConversationID: cid, Seq: int64(i + 1), SenderID: []string{"alice", "bob"}[i%2], Text: text, CreatedAt: t0.Add(time.Duration(i) * time.Minute)}
		if i == 3 {
			m.Attachments = []chat.Attachment{{ID: "att_1", Name: "a.png", ContentType: "image/png", Size: 3}}
		}
		msgs = append(msgs, m)
	}
	if err := x.Put(ctx, msgs); err != nil {
		f.Fatal(err)
	}
	f.Add("hello", "cnv_a,cnv_b", "", int64(0), int64(0), false, 1, "")
	f.Add("fox", "cnv_a,cnv_b,cnv_c", "alice", int64(-1), int64(1<<62), true, 50, encodePageToken(1))
	f.Add("field:value OR *", "cnv_c", "", int64(t0.UnixNano()), int64(t0.UnixNano()), false, 0, "AQ")
	f.Add("   ", "cnv_a,,cnv_x", "bob", int64(0), int64(0), false, 1000, "AQ\r\nI")
	f.Add("\xff\xfe", "cnv_\xff", "\x00", int64(1<<62), int64(-1<<62), false, -5, "!!")
	f.Fuzz(func(t *testing.T, text, cids, sender string, after, before int64, has bool, limit int, token string) {
		q := chat.SearchQuery{Text: text, ConversationIDs: strings.Split(cids, ","), SenderID: sender, HasAttachment: has, Limit: limit, PageToken: token}
		if after != 0 {
			q.After = time.Unix(0, after)
		}
		if before != 0 {
			q.Before = time.Unix(0, before)
		}
		allowed := map[string]bool{}
		for _, c := range q.ConversationIDs {
			allowed[c] = true
		}
		seen := map[string]bool{}
		for page := 0; page < 10; page++ {
			hits, next, err := x.Search(ctx, q)
			if err != nil {
				if chat.ErrorCode(err) != chat.CodeInvalid {
					t.Fatalf("Search(%+v): %v, want invalid_request or results", q, err)
				}
				return
			}
			for _, h := range hits {
				if !allowed[h.ConversationID] {
					t.Fatalf("Search(%+v) found %s of %s, outside the caller's conversations", q, h.MessageID, h.ConversationID)
				}
				if seen[h.MessageID] {
					t.Fatalf("Search(%+v) found %s twice across pages", q, h.MessageID)
				}
				seen[h.MessageID] = true
			}
			if next == "" {
				return
			}
			q.PageToken = next
		}
	})
}

// A time range straddling the Unix epoch made Bleve enumerate numeric
// terms for minutes (FuzzSearch's first find); it must answer at once.
func TestSearchAcrossTheEpochAnswers(t *testing.T) {
	x := openTemp(t)
	ctx := context.Background()
	if err := x.Put(ctx, []chat.Message{{ID: "msg_a", ConversationID: "cnv_a", Seq: 1, SenderID: "a", Text: "hello", CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := x.Search(ctx, chat.SearchQuery{Text: "hello", ConversationIDs: []string{"cnv_a"}, After: time.Unix(0, -91), Before: time.Unix(0, 65)})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a search from 91 ns before the epoch to 65 ns after it did not answer in 30 s")
	}
}
