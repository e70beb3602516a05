package elastic

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/parleychat/parley/chat"
)

const (
	defaultLimit = 20
	maxLimit     = 50
	// maxQueryChars bounds the query text, as long as the longest message.
	maxQueryChars = chat.MaxTextChars
	// maxConversations bounds the conversation filter: Elasticsearch's
	// index.max_terms_count.
	maxConversations = 65_536
)

// nanosFormat makes Elasticsearch answer created_at sort values as text
// with nanoseconds, and read search_after values the same way.
const nanosFormat = "strict_date_optional_time_nanos"

// sortOrder is best match first, then newest first, then by conversation
// and message id, so equal scores page stably. A page token holds the
// sort values of a page's last hit, in this order.
var sortOrder = []any{
	map[string]any{"_score": "desc"},
	map[string]any{fieldCreatedAt: map[string]any{"order": "desc", "format": nanosFormat}},
	map[string]any{fieldConversation: "asc"},
	map[string]any{fieldMessage: "asc"},
}

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
	const op = "elastic: search"
	after, err := decodePageToken(q.PageToken)
	if err != nil {
		return nil, "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "malformed page token", Err: err}
	}
	if utf8.RuneCountInString(q.Text) > maxQueryChars {
		return nil, "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("search text is longer than %d characters", maxQueryChars)}
	}
	allowed := conversationSet(q.ConversationIDs)
	if len(allowed) > maxConversations {
		return nil, "", &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("more than %d conversations to search", maxConversations)}
	}
	limit := min(max(q.Limit, 0), maxLimit)
	if limit == 0 {
		limit = defaultLimit
	}

	if err := x.enter(ctx, op); err != nil {
		return nil, "", err
	}
	defer x.leave()

	body, ok := searchBody(q, allowed, limit, after)
	if !ok {
		return []chat.SearchHit{}, "", nil
	}
	var res searchResponse
	partial := false // a page missing a shard's hits would break paging
	if _, err := x.do(ctx, op, esapi.SearchRequest{
		Index:                     []string{x.alias},
		Body:                      jsonBody(body),
		AllowPartialSearchResults: &partial,
	}, &res); err != nil {
		return nil, "", err
	}

	found := res.Hits.Hits
	more := len(found) > limit
	if more {
		found = found[:limit]
	}
	hits := make([]chat.SearchHit, 0, len(found))
	for _, h := range found {
		src := h.Source
		if !allowed[src.ConversationID] {
			// The filter makes this impossible; fail closed if it ever
			// happens rather than show another conversation.
			return nil, "", fmt.Errorf("%s: document %q of conversation %q escaped the conversation filter", op, h.ID, src.ConversationID)
		}
		hits = append(hits, chat.SearchHit{
			ConversationID: src.ConversationID,
			MessageID:      src.MessageID,
			Highlights:     highlights(src.Text, h.Highlight[fieldText]),
		})
	}
	next := ""
	if more {
		last := found[len(found)-1]
		cursor, err := parseSortValues(last.Sort)
		if err != nil {
			return nil, "", fmt.Errorf("%s: sort values of document %q: %w", op, last.ID, err)
		}
		next = encodePageToken(cursor)
	}
	return hits, next, nil
}

// conversationSet returns the non-empty ids of ids.
func conversationSet(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != "" {
			set[id] = true
		}
	}
	return set
}

type searchResponse struct {
	Hits struct {
		Hits []searchHit `json:"hits"`
	} `json:"hits"`
}

type searchHit struct {
	ID        string              `json:"_id"`
	Source    document            `json:"_source"`
	Highlight map[string][]string `json:"highlight"`
	Sort      []json.RawMessage   `json:"sort"`
}

// searchBody returns the body of the search for q: the text as a match
// query, and in the filter clause, always, the conversations in allowed
// (an exact terms filter), then the sender, time and attachment filters
// that are set. It asks for one hit more than limit, to know whether
// another page follows. ok is false when nothing can pass the filters.
func searchBody(q chat.SearchQuery, allowed map[string]bool, limit int, after *cursor) (body map[string]any, ok bool) {
	if len(allowed) == 0 {
		return nil, false
	}
	cids := make([]string, 0, len(allowed))
	for cid := range allowed {
		cids = append(cids, cid)
	}
	filter := []any{
		map[string]any{"terms": map[string]any{fieldConversation: cids}},
	}
	if q.SenderID != "" {
		filter = append(filter, map[string]any{"term": map[string]any{fieldSender: q.SenderID}})
	}
	if !q.After.IsZero() || !q.Before.IsZero() {
		rng, ok := timeRange(q.After, q.Before)
		if !ok {
			return nil, false
		}
		if rng != nil {
			filter = append(filter, map[string]any{"range": map[string]any{fieldCreatedAt: rng}})
		}
	}
	if q.HasAttachment {
		filter = append(filter, map[string]any{"term": map[string]any{fieldHasAttachment: true}})
	}

	source := []string{fieldConversation, fieldMessage}
	var must any = map[string]any{"match_all": map[string]any{}}
	words := strings.TrimSpace(q.Text) != ""
	if words {
		// The text is a value, never syntax. A text without words gives
		// a match query of no terms, which matches nothing.
		must = map[string]any{"match": map[string]any{fieldText: map[string]any{
			"query":            q.Text,
			"operator":         "and",
			"zero_terms_query": "none",
		}}}
		source = append(source, fieldText)
	}
	body = map[string]any{
		"size":             limit + 1,
		"track_total_hits": false,
		"_source":          source,
		"query": map[string]any{"bool": map[string]any{
			"must":   must,
			"filter": filter,
		}},
		"sort": sortOrder,
	}
	if words {
		// The whole text comes back with the matches marked; snippets
		// are cut here (see highlights).
		body["highlight"] = map[string]any{
			"encoder":   "html",
			"pre_tags":  []string{markOpen},
			"post_tags": []string{markClose},
			"fields": map[string]any{fieldText: map[string]any{
				"type":                "unified",
				"number_of_fragments": 0,
			}},
		}
	}
	if after != nil {
		body["search_after"] = after.searchAfter()
	}
	return body, true
}

// timeRange returns the range query of created_at for exclusive bounds
// after and before (zero: unbounded): nil when no bound remains, ok false
// when nothing can pass. Bounds beyond what date_nanos holds are no
// bounds, or exclude everything.
func timeRange(after, before time.Time) (rng map[string]any, ok bool) {
	if !after.IsZero() && after.Before(minTime) {
		after = time.Time{}
	}
	if !before.IsZero() && before.After(maxTime) {
		before = time.Time{}
	}
	if !after.IsZero() && !after.Before(maxTime) {
		return nil, false
	}
	if !before.IsZero() && !before.After(minTime) {
		return nil, false
	}
	if !after.IsZero() && !before.IsZero() && !after.Before(before) {
		return nil, false
	}
	if after.IsZero() && before.IsZero() {
		return nil, true
	}
	rng = map[string]any{"format": nanosFormat}
	if !after.IsZero() {
		rng["gt"] = formatTime(after)
	}
	if !before.IsZero() {
		rng["lt"] = formatTime(before)
	}
	return rng, true
}

// cursor is the position of a hit in sortOrder: where the next page starts.
type cursor struct {
	score          float64
	createdAt      int64 // Unix nanoseconds
	conversationID string
	messageID      string
}

func (c *cursor) searchAfter() []any {
	return []any{c.score, time.Unix(0, c.createdAt).UTC().Format(time.RFC3339Nano), c.conversationID, c.messageID}
}

// parseSortValues reads the sort values Elasticsearch gave a hit.
func parseSortValues(vals []json.RawMessage) (*cursor, error) {
	if len(vals) != len(sortOrder) {
		return nil, fmt.Errorf("%d sort values, want %d", len(vals), len(sortOrder))
	}
	var c cursor
	var created string
	for i, dst := range []any{&c.score, &created, &c.conversationID, &c.messageID} {
		if err := json.Unmarshal(vals[i], dst); err != nil {
			return nil, fmt.Errorf("sort value %d: %w", i, err)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, created)
	if err != nil {
		return nil, fmt.Errorf("created_at sort value: %w", err)
	}
	c.createdAt = clampTime(t).UnixNano()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Page tokens are opaque to callers: base64url of a version byte, the
// score's float64 bits, created_at as a zigzag varint of Unix nanoseconds,
// and the conversation and message ids, each a uvarint length and bytes.
const (
	pageTokenVersion = 1
	maxPageTokenLen  = 2 * (1 + 8 + binary.MaxVarintLen64 + 2*(binary.MaxVarintLen64+maxDocIDBytes))
)

var errBadPageToken = errors.New("not a page token of this index")

func (c *cursor) validate() error {
	ok := !math.IsNaN(c.score) && !math.IsInf(c.score, 0) && c.score >= 0 &&
		c.createdAt >= 0 &&
		validTokenID(c.conversationID) && validTokenID(c.messageID)
	if !ok {
		return errBadPageToken
	}
	return nil
}

func validTokenID(s string) bool {
	return s != "" && len(s) <= maxDocIDBytes && utf8.ValidString(s)
}

func encodePageToken(c *cursor) string {
	b := []byte{pageTokenVersion}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.score))
	b = binary.AppendVarint(b, c.createdAt)
	for _, s := range []string{c.conversationID, c.messageID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the cursor a page token names, nil for "".
func decodePageToken(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	// The decoder skips CR and LF; a token holding them is not one this
	// index issued (found by FuzzSearchBody).
	if len(s) > maxPageTokenLen || strings.ContainsAny(s, "\r\n") {
		return nil, errBadPageToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 1+8 || b[0] != pageTokenVersion {
		return nil, errBadPageToken
	}
	var c cursor
	c.score = math.Float64frombits(binary.BigEndian.Uint64(b[1:9]))
	b = b[9:]
	created, n := binary.Varint(b)
	if n <= 0 {
		return nil, errBadPageToken
	}
	c.createdAt, b = created, b[n:]
	for _, dst := range []*string{&c.conversationID, &c.messageID} {
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, errBadPageToken
		}
		*dst, b = string(b[n:n+int(size)]), b[n+int(size):]
	}
	if len(b) != 0 {
		return nil, errBadPageToken
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	// Only the one encoding this index writes: varints padded with
	// continuation bytes decode too (found by FuzzSearchBody).
	if encodePageToken(&c) != s {
		return nil, errBadPageToken
	}
	return &c, nil
}
