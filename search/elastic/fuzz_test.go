package elastic

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/chat"
)

// FuzzSearchBody: for any query a caller can make, the body sent to
// Elasticsearch is JSON whose first filter is exactly the caller's
// conversations, whose text (if any) is only the value of a match query,
// and whose page token, when the caller's token decodes, is the same
// position; a token that decodes encodes back to itself.
func FuzzSearchBody(f *testing.F) {
	tok := encodePageToken(&cursor{score: 1.5, createdAt: 1700000000000000000, conversationID: "cnv_1", messageID: "msg_1"})
	f.Add("hello world", "cnv_1,cnv_2", "alice", int64(0), int64(0), false, 20, tok)
	f.Add(`{"query":{"match_all":{}}} OR *`, "cnv_1", "", int64(-1), int64(1<<62), true, 0, "")
	f.Add("   ", ",,", "", int64(5), int64(5), false, 1000, "AQ")
	f.Add("\xff\xfe", "cnv_\xff", "bob\x00", int64(1<<62), int64(0), false, -1, "not a token")
	f.Fuzz(func(t *testing.T, text, cids, sender string, after, before int64, has bool, limit int, token string) {
		cur, err := decodePageToken(token)
		if err == nil && cur != nil {
			if again := encodePageToken(cur); again != token {
				t.Fatalf("token %q decodes, then encodes as %q", token, again)
			}
		}
		q := chat.SearchQuery{Text: text, ConversationIDs: strings.Split(cids, ","), SenderID: sender, HasAttachment: has, Limit: limit}
		if after != 0 {
			q.After = time.Unix(0, after)
		}
		if before != 0 {
			q.Before = time.Unix(0, before)
		}
		allowed := conversationSet(q.ConversationIDs)
		body, ok := searchBody(q, allowed, min(max(limit, 1), maxLimit), cur)
		if !ok {
			return
		}
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("the body does not encode: %v", err)
		}
		var back struct {
			Query struct {
				Bool struct {
					Must   map[string]map[string]json.RawMessage   `json:"must"`
					Filter []map[string]map[string]json.RawMessage `json:"filter"`
				} `json:"bool"`
			} `json:"query"`
		}
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("the body %s does not decode: %v", raw, err)
		}
		var terms []string
		if len(back.Query.Bool.Filter) == 0 || json.Unmarshal(back.Query.Bool.Filter[0]["terms"][fieldConversation], &terms) != nil {
			t.Fatalf("the first filter is not the conversations: %s", raw)
		}
		want := make([]string, 0, len(allowed))
		for cid := range allowed {
			var v string // as JSON carries it: invalid UTF-8 becomes U+FFFD
			b, _ := json.Marshal(cid)
			_ = json.Unmarshal(b, &v)
			want = append(want, v)
		}
		slices.Sort(terms)
		slices.Sort(want)
		if !slices.Equal(terms, want) {
			t.Fatalf("filter on %q, want %q", terms, want)
		}
		if strings.TrimSpace(text) == "" {
			if _, ok := back.Query.Bool.Must["match_all"]; !ok {
				t.Fatalf("blank text is not match_all: %s", raw)
			}
			return
		}
		var m struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(back.Query.Bool.Must["match"][fieldText], &m); err != nil {
			t.Fatalf("the text is not a match query: %s", raw)
		}
		if utf8.ValidString(text) && m.Query != text {
			t.Fatalf("match query %q, want the text %q", m.Query, text)
		}
	})
}
