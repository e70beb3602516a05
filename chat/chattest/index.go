package chattest

import (
	"fmt"
	"html"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/chat"
)

// TestIndex is the contract suite of chat.Index. Every Index adapter runs
// it; each subtest gets a fresh index from open, which reports its own
// failures with t.Fatal and arranges (t.Cleanup) for the index to be
// closed. The suite never calls Close itself.
//
// A Put or Delete need not be visible at once: the suite polls Search for
// up to indexVisibleWithin until the expected answer appears (a refreshing
// engine passes), and takes the absence of something as proven only after
// a later write is visible.
//
// Besides what chat.Index's doc states, the suite pins these behaviours,
// so that the embedded and the distributed index answer alike:
//   - Text is plain words, never query syntax: it is split into words the
//     way Elasticsearch's standard analyzer does (Unicode word boundaries,
//     lowercased, no stemming, no stop words), and a message matches when
//     it contains every word, in any order. Text that is blank matches
//     every message that passes the filters, newest first; text that has no
//     words (only punctuation, such as "*") matches nothing.
//   - An empty ConversationIDs matches nothing; conversation ids are
//     compared exactly (no wildcards, no prefixes).
//   - SenderID matches exactly; After and Before are exclusive bounds on
//     the message's CreatedAt (zero means unbounded); HasAttachment keeps
//     messages with at least one attachment, false does not filter.
//   - Limit ≤ 0 means 20. The page token is "" on the last page, and a
//     page token the index did not issue fails with CodeInvalid.
//   - Results come best match first: a message where the words weigh more
//     (more occurrences, shorter text) ranks above one where they weigh less.
//   - Every hit found by words has at least one highlight; highlights are
//     HTML: the matched words wrapped in <mark>…</mark> (adjacent matches
//     in marks of their own), every other character of the text escaped
//     as html.EscapeString does. A text of at most 160 characters is one
//     highlight, all of it; a longer one gives at most 3 snippets around
//     its first matches, 60 characters of context on each side cut at
//     words, "…" where text was cut. Each highlight is at most 1,000
//     characters as rendered, even for a text that is nothing but matches.
//   - A call with a done context (cancelled, or past its deadline) fails
//     with chat.CodeUnavailable.
//   - A message with Deleted set is removed, not indexed; within one Put a
//     later entry with the same id wins over an earlier one.
func TestIndex(t *testing.T, open func(t *testing.T) chat.Index) {
	t.Helper()
	for _, tc := range indexCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, open(t))
		})
	}
}

type indexCase struct {
	name string
	run  func(t *testing.T, idx chat.Index)
}

var indexCases = []indexCase{
	{"PingAnswers", indexTestPing},
	{"PutThenSearchFindsByWord", indexTestFindsByWord},
	{"EveryWordMustMatchWholeAndCaseInsensitively", indexTestWords},
	{"HighlightsMarkWordsAndEscapeHTML", indexTestHighlightsEscape},
	{"HighlightOfLongTextIsASnippet", indexTestLongHighlight},
	{"SnippetsFollowOneSetOfRules", indexTestSnippetRules},
	{"EditIsFoundByNewTextOnly", indexTestEdit},
	{"LaterEntryOfOnePutWins", indexTestSamePut},
	{"DeleteRemovesForGood", indexTestDelete},
	{"DeletedMessageIsNotIndexed", indexTestDeletedPut},
	{"SearchStaysInsideConversationIDs", indexTestMembership},
	{"QueryTextCannotWidenTheFilter", indexTestAdversarial},
	{"FilterBySender", indexTestSender},
	{"FilterByTimeIsExclusive", indexTestTime},
	{"FilterByAttachment", indexTestAttachment},
	{"BlankTextListsNewestFirst", indexTestBlank},
	{"PagesReturnEveryHitOnce", indexTestPaging},
	{"MalformedPageTokenIsInvalid", indexTestBadToken},
	{"BestMatchFirst", indexTestOrder},
	{"DoneContextIsUnavailable", indexTestDoneContext},
}

// indexVisibleWithin bounds how long a write may take to become visible to
// Search (the API promises 2 s end to end).
const indexVisibleWithin = 5 * time.Second

// indexEpoch is a whole millisecond, so times survive millisecond engines.
var indexEpoch = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// indexMsg returns a new message of conversation cid, sent by sender at
// indexEpoch+at.
func indexMsg(cid, sender, text string, at time.Duration, atts ...chat.Attachment) chat.Message {
	m := chat.Message{
		ID:             chat.NewID("msg"),
		ConversationID: cid,
		Seq:            1,
		SenderID:       sender,
		ClientID:       chat.NewID("cli"),
		Text:           text,
		Attachments:    atts,
		CreatedAt:      indexEpoch.Add(at),
		Version:        1,
	}
	m.Normalize()
	return m
}

func indexAttachment() chat.Attachment {
	return chat.Attachment{ID: chat.NewID("att"), Name: "plan.pdf", ContentType: "application/pdf", Size: 1234}
}

func indexPut(t *testing.T, idx chat.Index, msgs ...chat.Message) {
	t.Helper()
	if err := idx.Put(t.Context(), msgs); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func indexQuery(text string, cids ...string) chat.SearchQuery {
	return chat.SearchQuery{Text: text, ConversationIDs: cids}
}

// indexSearch runs one Search that must succeed, and checks what every
// answer must satisfy: no hit outside q.ConversationIDs, and ids set.
func indexSearch(t *testing.T, idx chat.Index, q chat.SearchQuery) ([]chat.SearchHit, string) {
	t.Helper()
	hits, next, err := idx.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search(%s): %v", indexShowQuery(q), err)
	}
	indexCheckInside(t, q, hits)
	return hits, next
}

func indexCheckInside(t *testing.T, q chat.SearchQuery, hits []chat.SearchHit) {
	t.Helper()
	for _, h := range hits {
		if !slices.Contains(q.ConversationIDs, h.ConversationID) {
			t.Fatalf("Search(%s) returned message %s of conversation %q, which is not in the query's conversations", indexShowQuery(q), h.MessageID, h.ConversationID)
		}
		if h.MessageID == "" {
			t.Fatalf("Search(%s) returned a hit without a message id: %+v", indexShowQuery(q), h)
		}
	}
}

// indexSearchAll follows the page tokens of q to the end.
func indexSearchAll(t *testing.T, idx chat.Index, q chat.SearchQuery) []chat.SearchHit {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 50
	}
	var all []chat.SearchHit
	for range 1000 {
		hits, next := indexSearch(t, idx, q)
		all = append(all, hits...)
		if next == "" {
			return all
		}
		q.PageToken = next
	}
	t.Fatalf("Search(%s): more than 1000 pages", indexShowQuery(q))
	return nil
}

// indexExpect polls until every page of q together holds exactly the
// messages want (each once, in any order) and returns those hits.
func indexExpect(t *testing.T, idx chat.Index, q chat.SearchQuery, want ...chat.Message) []chat.SearchHit {
	t.Helper()
	wantIDs := make([]string, len(want))
	for i, m := range want {
		wantIDs[i] = m.ID
	}
	slices.Sort(wantIDs)
	deadline := time.Now().Add(indexVisibleWithin)
	for {
		hits := indexSearchAll(t, idx, q)
		got := indexIDs(hits)
		slices.Sort(got)
		if slices.Equal(got, wantIDs) {
			return hits
		}
		if time.Now().After(deadline) {
			t.Fatalf("Search(%s) after %v:\n got  %v\n want %v", indexShowQuery(q), indexVisibleWithin, got, wantIDs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func indexIDs(hits []chat.SearchHit) []string {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.MessageID
	}
	return ids
}

func indexShowQuery(q chat.SearchQuery) string {
	text := q.Text
	if len(text) > 60 {
		text = text[:60] + fmt.Sprintf("…(%d bytes)", len(q.Text))
	}
	s := fmt.Sprintf("text %q in %q", text, q.ConversationIDs)
	if q.SenderID != "" {
		s += fmt.Sprintf(" sender %q", q.SenderID)
	}
	if !q.After.IsZero() {
		s += " after " + q.After.Format(time.RFC3339Nano)
	}
	if !q.Before.IsZero() {
		s += " before " + q.Before.Format(time.RFC3339Nano)
	}
	if q.HasAttachment {
		s += " with attachment"
	}
	if q.Limit != 0 {
		s += fmt.Sprintf(" limit %d", q.Limit)
	}
	if q.PageToken != "" {
		s += fmt.Sprintf(" page %q", q.PageToken)
	}
	return s
}

// indexCheckHighlights checks the highlights of a hit found by word in a
// message whose text is text.
func indexCheckHighlights(t *testing.T, h chat.SearchHit, text, word string) {
	t.Helper()
	if len(h.Highlights) == 0 {
		t.Fatalf("hit %s found by %q has no highlights", h.MessageID, word)
	}
	marked := false
	for _, hl := range h.Highlights {
		if strings.Contains(hl, "<mark>"+word+"</mark>") {
			marked = true
		}
		if n := utf8.RuneCountInString(hl); n > 1000 {
			t.Errorf("highlight of %d characters, want at most 1000: %.80q…", n, hl)
		}
		plain := strings.NewReplacer("<mark>", "", "</mark>", "").Replace(hl)
		if strings.ContainsAny(plain, "<>") {
			t.Errorf("highlight %q has unescaped HTML besides <mark> tags", hl)
		}
		// What is left must be (a part of) the text, escaped once.
		frag := strings.Trim(html.UnescapeString(plain), "… \n\t")
		if !strings.Contains(text, frag) {
			t.Errorf("highlight %q is not a part of the text %q", hl, text)
		}
	}
	if !marked {
		t.Errorf("highlights %q: none has <mark>%s</mark>", h.Highlights, word)
	}
}

func indexTestPing(t *testing.T, idx chat.Index) {
	if err := idx.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func indexTestFindsByWord(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	fox := indexMsg(cid, "alice", "the quick brown fox jumps", 0)
	dog := indexMsg(cid, "bob", "over the lazy dog", time.Second)
	indexPut(t, idx, fox, dog)

	hits := indexExpect(t, idx, indexQuery("fox", cid), fox)
	if h := hits[0]; h.ConversationID != cid || h.MessageID != fox.ID {
		t.Fatalf("hit %+v, want conversation %s message %s", h, cid, fox.ID)
	}
	indexCheckHighlights(t, hits[0], fox.Text, "fox")

	hits = indexExpect(t, idx, indexQuery("lazy", cid), dog)
	indexCheckHighlights(t, hits[0], dog.Text, "lazy")
	indexExpect(t, idx, indexQuery("the", cid), fox, dog)
	indexExpect(t, idx, indexQuery("cat", cid))
}

func indexTestWords(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	friday := indexMsg(cid, "alice", "Deploy on FRIDAY evening, or not?", 0)
	monday := indexMsg(cid, "bob", "deploy monday", time.Second)
	indexPut(t, idx, friday, monday)

	indexExpect(t, idx, indexQuery("deploy", cid), friday, monday)
	indexExpect(t, idx, indexQuery("DEPLOY", cid), friday, monday)
	indexExpect(t, idx, indexQuery("deploy friday", cid), friday)
	indexExpect(t, idx, indexQuery("evening Friday", cid), friday)
	indexExpect(t, idx, indexQuery("friday, evening!", cid), friday)
	indexExpect(t, idx, indexQuery("or", cid), friday)
	indexExpect(t, idx, indexQuery("deploy tuesday", cid))
	indexExpect(t, idx, indexQuery("deplo", cid))
	indexExpect(t, idx, indexQuery("deploys", cid))
	hits := indexExpect(t, idx, indexQuery("friday", cid), friday)
	indexCheckHighlights(t, hits[0], friday.Text, "FRIDAY")
}

func indexTestHighlightsEscape(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	script := indexMsg(cid, "mallory", "<script>x</script> hello", 0)
	quotes := indexMsg(cid, "mallory", `Tom & "Jerry" say <b onclick='x()'>bold</b> greetings`, time.Second)
	indexPut(t, idx, script, quotes)

	for _, tc := range []struct {
		m    chat.Message
		word string
	}{
		{script, "hello"},
		{script, "script"},
		{quotes, "greetings"},
		{quotes, "jerry"},
		{quotes, "onclick"},
	} {
		hits := indexExpect(t, idx, indexQuery(tc.word, cid), tc.m)
		for _, hl := range hits[0].Highlights {
			low := strings.ToLower(hl)
			for _, raw := range []string{"<script", "</script", "<b ", "</b>"} {
				if strings.Contains(low, raw) {
					t.Errorf("highlight %q (found by %q) has raw %q", hl, tc.word, raw)
				}
			}
		}
		word := tc.word
		if word == "jerry" {
			word = "Jerry"
		}
		indexCheckHighlights(t, hits[0], tc.m.Text, word)
	}
}

func indexTestLongHighlight(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	text := strings.Repeat("filler ", 560) + "needle " + strings.Repeat("tail ", 10)
	text = strings.TrimSpace(text)
	if n := utf8.RuneCountInString(text); n > chat.MaxTextChars {
		t.Fatalf("fixture text is %d characters", n)
	}
	long := indexMsg(cid, "alice", text, 0)
	indexPut(t, idx, long)
	hits := indexExpect(t, idx, indexQuery("needle", cid), long)
	indexCheckHighlights(t, hits[0], text, "needle")
}

// indexTestSnippetRules pins the snippets exactly, so that the embedded
// and the distributed index answer the same highlights.
func indexTestSnippetRules(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	short := indexMsg(cid, "alice", `Tom & "Jerry" met jerry again <cat>`, 0)
	long := indexMsg(cid, "alice", strings.TrimSpace(strings.Repeat("filler ", 100)+"needle "+strings.Repeat("tail ", 100)), time.Second)
	many := indexMsg(cid, "alice", strings.TrimSpace(strings.Repeat("echo ", 700)), 2*time.Second)
	ideographs := indexMsg(cid, "alice", strings.Repeat("中", 150), 3*time.Second)
	indexPut(t, idx, short, long, many, ideographs)

	exact := func(word string, m chat.Message, want []string) {
		t.Helper()
		hits := indexExpect(t, idx, indexQuery(word, cid), m)
		if fmt.Sprintf("%q", hits[0].Highlights) != fmt.Sprintf("%q", want) {
			t.Errorf("highlights of %q\n got  %q\n want %q", word, hits[0].Highlights, want)
		}
	}
	exact("jerry", short, []string{`Tom &amp; &#34;<mark>Jerry</mark>&#34; met <mark>jerry</mark> again &lt;cat&gt;`})
	exact("needle", long, []string{"…" + strings.Repeat("filler ", 8) + "<mark>needle</mark>" + strings.Repeat(" tail", 11) + "…"})

	bounded := func(word string, m chat.Message) {
		t.Helper()
		hits := indexExpect(t, idx, indexQuery(word, cid), m)
		hl := hits[0].Highlights
		if len(hl) == 0 || len(hl) > 3 {
			t.Fatalf("%q: %d highlights, want 1 to 3", word, len(hl))
		}
		for _, s := range hl {
			if n := utf8.RuneCountInString(s); n > 1000 {
				t.Errorf("%q: a highlight of %d characters, want at most 1,000", word, n)
			}
			if !strings.Contains(s, "<mark>"+word+"</mark>") || strings.Count(s, "<mark>") != strings.Count(s, "</mark>") {
				t.Errorf("%q: highlight without a whole mark: %.80q", word, s)
			}
		}
	}
	bounded("echo", many)
	bounded("中", ideographs)
}

func indexTestEdit(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	m := indexMsg(cid, "alice", "apple banana", 0)
	indexPut(t, idx, m)
	indexExpect(t, idx, indexQuery("apple", cid), m)

	edited := m
	edited.Text = "cherry banana"
	edited.Version = 2
	at := indexEpoch.Add(time.Minute)
	edited.EditedAt = &at
	indexPut(t, idx, edited)

	hits := indexExpect(t, idx, indexQuery("cherry", cid), edited)
	indexCheckHighlights(t, hits[0], edited.Text, "cherry")
	indexExpect(t, idx, indexQuery("apple", cid))
	indexExpect(t, idx, indexQuery("banana", cid), edited)
	indexExpect(t, idx, indexQuery("", cid), edited)
}

func indexTestSamePut(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	first := indexMsg(cid, "alice", "kiwi", 0)
	second := first
	second.Text, second.Version = "mango", 2

	gone := indexMsg(cid, "alice", "papaya", time.Second)
	tomb := gone
	tomb.Text, tomb.Deleted, tomb.Version = "", true, 2

	indexPut(t, idx, first, second, gone, tomb)
	indexExpect(t, idx, indexQuery("mango", cid), second)
	indexExpect(t, idx, indexQuery("kiwi", cid))
	indexExpect(t, idx, indexQuery("papaya", cid))
	indexExpect(t, idx, indexQuery("", cid), second)
}

func indexTestDelete(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	doomed := indexMsg(cid, "alice", "walrus plans", 0)
	kept := indexMsg(cid, "alice", "walrus kept", time.Second)
	indexPut(t, idx, doomed, kept)
	indexExpect(t, idx, indexQuery("walrus", cid), doomed, kept)

	if err := idx.Delete(t.Context(), cid, doomed.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	indexExpect(t, idx, indexQuery("walrus", cid), kept)
	indexExpect(t, idx, indexQuery("plans", cid))

	// Deleting again, or something never indexed, is not an error.
	for _, d := range [][2]string{{cid, doomed.ID}, {cid, chat.NewID("msg")}, {chat.NewID("cnv"), doomed.ID}} {
		if err := idx.Delete(t.Context(), d[0], d[1]); err != nil {
			t.Fatalf("Delete(%s, %s) of a missing message: %v", d[0], d[1], err)
		}
	}

	// For good: more writes (which may merge segments) do not bring it back.
	var more []chat.Message
	for i := range 50 {
		more = append(more, indexMsg(cid, "bob", fmt.Sprintf("walrus number %d", i), time.Duration(i+2)*time.Second))
	}
	indexPut(t, idx, more...)
	indexExpect(t, idx, indexQuery("walrus", cid), append(more, kept)...)
	indexExpect(t, idx, indexQuery("plans", cid))
	hits := indexSearchAll(t, idx, indexQuery("", cid))
	if slices.Contains(indexIDs(hits), doomed.ID) {
		t.Fatalf("a blank search still lists the deleted message %s", doomed.ID)
	}
}

func indexTestDeletedPut(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")

	// A tombstone of a message never indexed is not indexed, even when it
	// (wrongly) still carries text.
	ghost := indexMsg(cid, "alice", "ghost words", 0)
	ghost.Deleted = true
	sentinel := indexMsg(cid, "alice", "sentinel words", time.Second)
	indexPut(t, idx, ghost)
	indexPut(t, idx, sentinel)
	indexExpect(t, idx, indexQuery("words", cid), sentinel)
	indexExpect(t, idx, indexQuery("ghost", cid))

	// A tombstone of an indexed message removes it.
	phantom := indexMsg(cid, "bob", "phantom words", 2*time.Second)
	indexPut(t, idx, phantom)
	indexExpect(t, idx, indexQuery("words", cid), sentinel, phantom)
	tomb := phantom
	tomb.Text, tomb.Deleted, tomb.Version = "", true, 2
	tomb.Attachments = []chat.Attachment{}
	indexPut(t, idx, tomb)
	indexExpect(t, idx, indexQuery("words", cid), sentinel)
	indexExpect(t, idx, indexQuery("phantom", cid))
	indexExpect(t, idx, indexQuery("", cid), sentinel)
}

func indexTestMembership(t *testing.T, idx chat.Index) {
	c1, c2, c3 := chat.NewID("cnv"), chat.NewID("cnv"), chat.NewID("cnv")
	m1 := indexMsg(c1, "alice", "shared news one", 0)
	m2 := indexMsg(c2, "mallory", "shared news two", time.Second)
	m3 := indexMsg(c3, "bob", "shared news three", 2*time.Second)
	indexPut(t, idx, m1, m2, m3)

	indexExpect(t, idx, indexQuery("shared", c1, c2, c3), m1, m2, m3)
	indexExpect(t, idx, indexQuery("shared", c1), m1)
	indexExpect(t, idx, indexQuery("shared", c1, c3), m1, m3)
	indexExpect(t, idx, indexQuery("two", c1, c3))
	indexExpect(t, idx, indexQuery("", c3), m3)
	indexExpect(t, idx, indexQuery("shared", c1, c1, c3), m1, m3)

	// No conversations, and ids that are patterns or prefixes, match nothing.
	for _, cids := range [][]string{nil, {}, {""}, {"*"}, {"?*"}, {c2[:len(c2)-1]}, {c2[:len(c2)-1] + "*"}, {strings.ToUpper(c2)}, {c2 + " "}, {c2 + " OR *"}} {
		for _, text := range []string{"shared", ""} {
			q := chat.SearchQuery{Text: text, ConversationIDs: cids}
			if hits, _ := indexSearch(t, idx, q); len(hits) != 0 {
				t.Errorf("Search(%s) = %v, want nothing", indexShowQuery(q), indexIDs(hits))
			}
		}
	}
}

// indexAdversarialTexts are query texts that would widen the filter, or
// break the query, if an index parsed them as query syntax.
func indexAdversarialTexts(c2 string) []string {
	return []string{
		"conversation_id:other",
		"conversation_id:" + c2,
		"+conversation_id:" + c2,
		"+conversation_id:c2",
		"secret conversation_id:" + c2,
		"secret OR conversation_id:" + c2,
		"-conversation_id:nothing",
		"NOT conversation_id:nothing",
		"*",
		"*:*",
		"_id:*",
		"secret OR *",
		"OR",
		"secret OR",
		"OR secret",
		"AND",
		"secret AND",
		"secret || true",
		`"secret"`,
		`"`,
		`"secret`,
		`\`,
		`\\`,
		`secret\`,
		`\"secret\"`,
		`secret\ OR\ *`,
		"'",
		"' OR '1'='1",
		"secret' OR conversation_id:*",
		"secret~",
		"secre*",
		"secret^100",
		"/.*/",
		"(secret)",
		"()",
		"[* TO *]",
		"{* TO *}",
		"created_at:>2000-01-01",
		`{"match_all":{}}`,
		`{"query":{"match_all":{}}}`,
		"secret\x00conversation_id",
		"secret\nconversation_id:" + c2,
		"<mark>secret</mark>",
		strings.Repeat("secret OR ", 100),
		strings.Repeat("*", 1000),
		strings.Repeat(`\"`, 500),
		strings.Repeat("secret", 1000/6) + "secr",
	}
}

func indexTestAdversarial(t *testing.T, idx chat.Index) {
	c1, c2 := chat.NewID("cnv"), chat.NewID("cnv")
	// Both conversations hold the words of the queries, so a widened
	// filter would show c2's messages.
	words := "secret other conversation_id c2 or and not true " + c2
	mine := indexMsg(c1, "alice", "mine "+words, 0)
	theirs := indexMsg(c2, "mallory", "theirs "+words, time.Second)
	theirsAtt := indexMsg(c2, "mallory", "theirs file "+words, 2*time.Second, indexAttachment())
	indexPut(t, idx, mine, theirs, theirsAtt)
	indexExpect(t, idx, indexQuery("secret", c1, c2), mine, theirs, theirsAtt)
	indexExpect(t, idx, indexQuery("secret", c1), mine)

	for _, text := range indexAdversarialTexts(c2) {
		for _, q := range []chat.SearchQuery{
			{Text: text, ConversationIDs: []string{c1}},
			{Text: text, ConversationIDs: []string{c1}, Limit: 50},
			{Text: text, ConversationIDs: []string{c1}, SenderID: "mallory"},
			{Text: text, ConversationIDs: []string{c1}, HasAttachment: true},
			{Text: text, ConversationIDs: nil},
			{Text: text, ConversationIDs: []string{}},
		} {
			hits, _, err := idx.Search(t.Context(), q)
			if err != nil && chat.ErrorCode(err) != chat.CodeInvalid {
				t.Errorf("Search(%s): %v, want results or %s", indexShowQuery(q), err, chat.CodeInvalid)
				continue
			}
			indexCheckInside(t, q, hits)
			if len(q.ConversationIDs) == 0 && len(hits) > 0 {
				t.Errorf("Search(%s) without conversations = %v, want nothing", indexShowQuery(q), indexIDs(hits))
			}
		}
	}
}

func indexTestSender(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	a := indexMsg(cid, "alice", "weekly report", 0)
	b := indexMsg(cid, "bob", "report draft", time.Second)
	ab := indexMsg(cid, "alice.bob", "report final", 2*time.Second)
	indexPut(t, idx, a, b, ab)
	indexExpect(t, idx, indexQuery("report", cid), a, b, ab)

	for sender, want := range map[string][]chat.Message{
		"alice":     {a},
		"bob":       {b},
		"alice.bob": {ab},
		"Alice":     nil,
		"ali":       nil,
		"*":         nil,
		"nobody":    nil,
	} {
		for _, text := range []string{"report", ""} {
			q := indexQuery(text, cid)
			q.SenderID = sender
			indexExpect(t, idx, q, want...)
		}
	}
}

func indexTestTime(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	var ms []chat.Message
	for i := range 4 {
		ms = append(ms, indexMsg(cid, "alice", fmt.Sprintf("tick %d", i), time.Duration(i)*time.Second))
	}
	indexPut(t, idx, ms...)
	indexExpect(t, idx, indexQuery("tick", cid), ms...)

	at := func(i int) time.Time { return indexEpoch.Add(time.Duration(i) * time.Second) }
	for _, tc := range []struct {
		after, before time.Time
		want          []chat.Message
	}{
		{after: at(1), want: ms[2:]},
		{before: at(2), want: ms[:2]},
		{after: at(0), before: at(3), want: ms[1:3]},
		{after: at(0).Add(-time.Millisecond), before: at(3).Add(time.Millisecond), want: ms},
		{after: at(1), before: at(2)},
		{after: at(2), before: at(2)},
		{after: at(3), before: at(0)},
		{after: at(4)},
		{before: at(0)},
	} {
		for _, text := range []string{"tick", ""} {
			q := indexQuery(text, cid)
			q.After, q.Before = tc.after, tc.before
			indexExpect(t, idx, q, tc.want...)
		}
	}
}

func indexTestAttachment(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	plain := indexMsg(cid, "alice", "budget numbers", 0)
	withFile := indexMsg(cid, "bob", "budget sheet attached", time.Second, indexAttachment())
	onlyFile := indexMsg(cid, "bob", "", 2*time.Second, indexAttachment(), indexAttachment())
	indexPut(t, idx, plain, withFile, onlyFile)

	indexExpect(t, idx, indexQuery("budget", cid), plain, withFile)
	q := indexQuery("budget", cid)
	q.HasAttachment = true
	indexExpect(t, idx, q, withFile)
	q.Text = ""
	indexExpect(t, idx, q, withFile, onlyFile)
	q.SenderID = "alice"
	indexExpect(t, idx, q)
	indexExpect(t, idx, indexQuery("", cid), plain, withFile, onlyFile)
}

func indexTestBlank(t *testing.T, idx chat.Index) {
	cid, other := chat.NewID("cnv"), chat.NewID("cnv")
	oldest := indexMsg(cid, "alice", "first words", 0)
	newest := indexMsg(cid, "alice", "third words", 2*time.Second)
	middle := indexMsg(cid, "bob", "second", time.Second, indexAttachment())
	elsewhere := indexMsg(other, "bob", "other words", 3*time.Second)
	indexPut(t, idx, newest, oldest, middle, elsewhere)

	for _, text := range []string{"", "   ", "\n\t"} {
		hits := indexExpect(t, idx, indexQuery(text, cid), oldest, middle, newest)
		if got, want := indexIDs(hits), []string{newest.ID, middle.ID, oldest.ID}; !slices.Equal(got, want) {
			t.Errorf("blank search %q: order %v, want newest first %v", text, got, want)
		}
	}
	for _, text := range []string{"*", "?!", "…", `"`, "-"} {
		indexExpect(t, idx, indexQuery(text, cid))
	}
}

func indexTestPaging(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	var ms []chat.Message
	for i := range 25 {
		// Equal texts score alike and times repeat, so pages must break
		// ties stably.
		ms = append(ms, indexMsg(cid, "alice", "page of results", time.Duration(i/5)*time.Second))
	}
	indexPut(t, idx, ms...)
	indexExpect(t, idx, indexQuery("page", cid), ms...)

	for _, tc := range []struct {
		text  string
		limit int
		sizes []int
	}{
		{"page", 10, []int{10, 10, 5}},
		{"page", 7, []int{7, 7, 7, 4}},
		{"page", 1, slices.Repeat([]int{1}, 25)},
		{"page", 25, []int{25}},
		{"page", 50, []int{25}},
		{"page", 0, []int{20, 5}},
		{"", 10, []int{10, 10, 5}},
		{"results page", 12, []int{12, 12, 1}},
	} {
		q := indexQuery(tc.text, cid)
		q.Limit = tc.limit
		seen := map[string]int{}
		var sizes []int
		for page := 0; ; page++ {
			if page > len(tc.sizes) {
				t.Fatalf("limit %d: more pages than %v", tc.limit, tc.sizes)
			}
			hits, next := indexSearch(t, idx, q)
			sizes = append(sizes, len(hits))
			for _, h := range hits {
				seen[h.MessageID]++
			}
			if next == "" {
				break
			}
			if len(hits) == 0 {
				t.Fatalf("limit %d: an empty page %d with a next page token", tc.limit, page)
			}
			q.PageToken = next
		}
		if !slices.Equal(sizes, tc.sizes) {
			t.Errorf("text %q limit %d: page sizes %v, want %v", tc.text, tc.limit, sizes, tc.sizes)
		}
		for _, m := range ms {
			if seen[m.ID] != 1 {
				t.Errorf("text %q limit %d: message %s seen %d times across pages, want once", tc.text, tc.limit, m.ID, seen[m.ID])
			}
		}
	}
}

func indexTestBadToken(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	m := indexMsg(cid, "alice", "token test", 0)
	indexPut(t, idx, m)
	indexExpect(t, idx, indexQuery("token", cid), m)

	for _, token := range []string{"!!!", "%%%", "not a token", "\x00", "{}", "-1", strings.Repeat("A", 5000), strings.Repeat("/", 64)} {
		q := indexQuery("token", cid)
		q.PageToken = token
		hits, _, err := idx.Search(t.Context(), q)
		if chat.ErrorCode(err) != chat.CodeInvalid {
			t.Errorf("page token %.40q: hits %v, err %v; want %s", token, indexIDs(hits), err, chat.CodeInvalid)
		}
	}
}

func indexTestOrder(t *testing.T, idx chat.Index) {
	cid := chat.NewID("cnv")
	// The best match is the oldest and is put last, so neither time nor
	// insertion order can produce the expected order by accident.
	best := indexMsg(cid, "alice", "alpha beta", 0)
	medium := indexMsg(cid, "alice", "alpha beta gamma delta", time.Second)
	worst := indexMsg(cid, "alice", "alpha beta gamma delta epsilon zeta eta theta iota kappa", 2*time.Second)
	many := indexMsg(cid, "bob", "zebra zebra zebra", 3*time.Second)
	once := indexMsg(cid, "bob", "zebra lion tiger", 4*time.Second)
	indexPut(t, idx, worst, once, medium)
	indexPut(t, idx, many, best)
	indexExpect(t, idx, indexQuery("alpha beta", cid), best, medium, worst)
	indexExpect(t, idx, indexQuery("zebra", cid), many, once)

	for _, tc := range []struct {
		text string
		want []chat.Message
	}{
		{"alpha beta", []chat.Message{best, medium, worst}},
		{"beta", []chat.Message{best, medium, worst}},
		{"zebra", []chat.Message{many, once}},
	} {
		hits, _ := indexSearch(t, idx, indexQuery(tc.text, cid))
		want := make([]string, len(tc.want))
		for i, m := range tc.want {
			want[i] = m.ID
		}
		if got := indexIDs(hits); !slices.Equal(got, want) {
			t.Errorf("Search %q: order %v, want best match first %v", tc.text, got, want)
		}
	}
}
