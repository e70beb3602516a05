package bleve

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/parleychat/parley/chat"
)

const (
	defaultLimit = 20
	maxLimit     = 50
	// maxWindow bounds how deep pages go (offset + limit), as
	// Elasticsearch's index.max_result_window does: deeper pages cost more
	// than anyone reads.
	maxWindow = 10_000
	// maxQueryChars bounds the query text, as long as the longest message.
	maxQueryChars = chat.MaxTextChars
)

// sortOrder is best match first, then newest first, then by document id,
// so equal scores page stably.
var sortOrder = []string{"-_score", "-" + fieldCreatedAt, "_id"}

// Search returns the page of q's results that q.PageToken names, best
// match first, and the token of the next page ("" on the last page).
//
// Every word of q.Text must occur in a message; blank text matches every
// message that passes the filters, newest first, and text without words
// matches nothing. Only messages of q.ConversationIDs are ever searched.
// After and Before are exclusive bounds on CreatedAt. Limit ≤ 0 means 20,
// more than 50 means 50. A page token Search did not issue fails with
// CodeInvalid.
func (x *Index) Search(ctx context.Context, q chat.SearchQuery) ([]chat.SearchHit, string, error) {
	const op = "bleve: search"
	offset, err := decodePageToken(q.PageToken)
	if err != nil {
		return nil, "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "malformed page token", Err: err}
	}
	if utf8.RuneCountInString(q.Text) > maxQueryChars {
		return nil, "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("search text is longer than %d characters", maxQueryChars)}
	}
	limit := min(max(q.Limit, 0), maxLimit)
	if limit == 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxWindow-offset)

	if err := x.enter(ctx, op); err != nil {
		return nil, "", err
	}
	defer x.leave()

	allowed := make(map[string]bool, len(q.ConversationIDs))
	for _, cid := range q.ConversationIDs {
		if cid != "" {
			allowed[cid] = true
		}
	}
	match, ok := x.matchQuery(q.Text)
	filter, ok2 := filterQuery(allowed, q)
	if !ok || !ok2 || limit <= 0 {
		return []chat.SearchHit{}, "", nil
	}

	bq := bleve.NewBooleanQuery()
	if match != nil {
		bq.AddMust(match)
	} else {
		bq.AddMust(bleve.NewMatchAllQuery())
	}
	bq.AddFilter(filter)
	req := bleve.NewSearchRequestOptions(bq, limit, offset, false)
	req.Fields = []string{fieldConversation, fieldMessage, fieldText}
	req.IncludeLocations = match != nil
	req.SortBy(sortOrder)

	res, err := x.idx.SearchInContext(ctx, req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, "", fmt.Errorf("%s: %w", op, ctxErr)
		}
		return nil, "", classify(op, err)
	}

	hits := make([]chat.SearchHit, 0, len(res.Hits))
	for _, h := range res.Hits {
		cid, _ := h.Fields[fieldConversation].(string)
		mid, _ := h.Fields[fieldMessage].(string)
		text, _ := h.Fields[fieldText].(string)
		if !allowed[cid] {
			// The filter above makes this impossible; fail closed if it
			// ever happens rather than show another conversation.
			return nil, "", fmt.Errorf("%s: document %q of conversation %q escaped the conversation filter", op, h.ID, cid)
		}
		hits = append(hits, chat.SearchHit{
			ConversationID: cid,
			MessageID:      mid,
			Highlights:     highlight(text, matchSpans(h.Locations[fieldText])),
		})
	}
	next := ""
	if end := offset + len(res.Hits); len(res.Hits) > 0 && uint64(end) < res.Total && end < maxWindow {
		next = encodePageToken(end)
	}
	return hits, next, nil
}

// matchQuery returns the query of the user's text: nil for blank text
// (match everything), ok false for text without words (match nothing).
// The text is only ever a match query, never query syntax.
func (x *Index) matchQuery(text string) (q query.Query, ok bool) {
	if strings.TrimSpace(text) == "" {
		return nil, true
	}
	// Bleve answers a match query without words with "match none", which
	// a boolean query then drops as if absent: that would match
	// everything, so such text is answered here.
	analyzer := x.idx.Mapping().AnalyzerNamed(textAnalyzer)
	if analyzer == nil || len(analyzer.Analyze([]byte(text))) == 0 {
		return nil, false
	}
	mq := bleve.NewMatchQuery(text)
	mq.SetField(fieldText)
	mq.Analyzer = textAnalyzer
	mq.SetOperator(query.MatchQueryOperatorAnd)
	return mq, true
}

var unixEpoch = time.Unix(0, 0)

// filterQuery returns the non-scoring filter of q: the conversations in
// allowed (always), and the sender, time and attachment filters that are
// set. ok is false when nothing can pass.
func filterQuery(allowed map[string]bool, q chat.SearchQuery) (f query.Query, ok bool) {
	if len(allowed) == 0 {
		return nil, false
	}
	convs := bleve.NewDisjunctionQuery()
	for cid := range allowed {
		tq := bleve.NewTermQuery(cid)
		tq.SetField(fieldConversation)
		convs.AddQuery(tq)
	}
	and := bleve.NewConjunctionQuery(convs)

	if q.SenderID != "" {
		tq := bleve.NewTermQuery(q.SenderID)
		tq.SetField(fieldSender)
		and.AddQuery(tq)
	}
	if !q.After.IsZero() || !q.Before.IsZero() {
		after, before := q.After, q.Before
		// Bounds beyond what Bleve can hold are no bounds, or exclude all.
		if !after.IsZero() && after.Before(query.MinRFC3339CompatibleTime) {
			after = time.Time{}
		}
		// No message is created before the Unix epoch, and a Bleve numeric
		// range whose ends straddle it can enumerate terms for minutes
		// (found by FuzzSearch: after -91 ns, before 65 ns): a bound
		// before the epoch is no bound, or excludes all.
		if !after.IsZero() && after.Before(unixEpoch) {
			after = time.Time{}
		}
		if !before.IsZero() && !before.After(unixEpoch) {
			return nil, false
		}
		if !before.IsZero() && before.After(query.MaxRFC3339CompatibleTime) {
			before = time.Time{}
		}
		if after.After(query.MaxRFC3339CompatibleTime) || (!before.IsZero() && before.Before(query.MinRFC3339CompatibleTime)) {
			return nil, false
		}
		if !after.IsZero() && !before.IsZero() && !after.Before(before) {
			return nil, false
		}
		if !after.IsZero() || !before.IsZero() {
			exclusive := false
			rq := bleve.NewDateRangeInclusiveQuery(after, before, &exclusive, &exclusive)
			rq.SetField(fieldCreatedAt)
			and.AddQuery(rq)
		}
	}
	if q.HasAttachment {
		bq := bleve.NewBoolFieldQuery(true)
		bq.SetField(fieldHasAttachment)
		and.AddQuery(bq)
	}
	return and, true
}

// matchSpans returns the byte ranges of the matched words.
func matchSpans(tlm search.TermLocationMap) []span {
	var spans []span
	for _, locs := range tlm {
		for _, l := range locs {
			spans = append(spans, span{start: int(l.Start), end: int(l.End)})
		}
	}
	return spans
}

// Page tokens are opaque to callers: base64url of a version byte and the
// result offset as a uvarint.
const pageTokenVersion = 1

var errBadPageToken = errors.New("not a page token of this index")

func encodePageToken(offset int) string {
	b := binary.AppendUvarint([]byte{pageTokenVersion}, uint64(offset))
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the offset a page token names, 0 for "".
func decodePageToken(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	// The decoder skips CR and LF; a token holding them is not one this
	// index issued.
	if len(s) > 16 || strings.ContainsAny(s, "\r\n") {
		return 0, errBadPageToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != pageTokenVersion {
		return 0, errBadPageToken
	}
	off, n := binary.Uvarint(b[1:])
	if n <= 0 || 1+n != len(b) || off == 0 || off >= maxWindow || encodePageToken(int(off)) != s {
		return 0, errBadPageToken
	}
	return int(off), nil
}
