// Package elastic is Parley's distributed chat.Index: full-text search over
// messages in Elasticsearch, through github.com/elastic/go-elasticsearch/v8.
//
// One document per message in an index behind an alias ("parley-messages"
// by default); the adapter reads and writes only through the alias, so the
// index behind it can be rebuilt and swapped. Open installs an index
// template whose mapping is explicit and strict (a document with a field
// the mapping does not name is refused): the text analyzed by the standard
// analyzer (Unicode word boundaries, lowercase, no stop words, no
// stemming), conversation_id and sender_id exact keywords, created_at in
// nanoseconds, has_attachment a boolean. Scoring is BM25 on one shard, so
// the ranking does not depend on how documents fall on shards.
//
// Writes go in _bulk requests. They become searchable at the index's next
// refresh: the refresh interval is set explicitly (1 s by default, at most
// 1 s), which also keeps an idle index refreshing, so a message is found
// within the API's 2 s without making every write wait for a refresh.
//
// Search never parses the user's text as query syntax: the text is only
// ever the value of a match query, and the caller's conversations are a
// terms filter in the filter clause of every query, built in code, so no
// text can widen it.
package elastic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/elastic/elastic-transport-go/v8/elastictransport"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/guard"
)

// Config configures the index.
type Config struct {
	// URLs of Elasticsearch nodes, such as http://127.0.0.1:9200.
	URLs []string
	// IndexPrefix is put before the names of the alias, the index and the
	// template ("parley-" when empty), so deployments (and tests) can share
	// a cluster.
	IndexPrefix string
	// Username and Password, when set, are sent with every request (HTTP
	// basic authentication).
	Username string
	Password string
	// RefreshInterval is the index's refresh interval, how soon a write is
	// searchable: 1 s when zero, at most 1 s (the API promises 2 s).
	RefreshInterval time.Duration
	// Timeout bounds each request; 10 s when zero.
	Timeout time.Duration
}

const (
	// DefaultIndexPrefix names the index, alias and template of a deployment.
	DefaultIndexPrefix     = "parley-"
	defaultRefreshInterval = time.Second
	maxRefreshInterval     = time.Second
	defaultTimeout         = 10 * time.Second
)

// RegisterFlags registers the settings on fs. -elasticsearch.urls takes
// comma-separated URLs; leaving it empty keeps the embedded index.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Func("elasticsearch.urls", "comma-separated Elasticsearch URLs (default: the embedded index)", func(v string) error {
		c.URLs = c.URLs[:0]
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.URLs = append(c.URLs, u)
			}
		}
		return nil
	})
	fs.StringVar(&c.IndexPrefix, "elasticsearch.index-prefix", DefaultIndexPrefix, "put before the names of Parley's alias, index and template")
	fs.StringVar(&c.Username, "elasticsearch.username", "", "Elasticsearch user (basic authentication)")
	fs.StringVar(&c.Password, "elasticsearch.password", "", "Elasticsearch password (basic authentication)")
	fs.DurationVar(&c.RefreshInterval, "elasticsearch.refresh-interval", defaultRefreshInterval, "how soon writes are searchable (at most 1s)")
	fs.DurationVar(&c.Timeout, "elasticsearch.timeout", defaultTimeout, "timeout of each Elasticsearch request")
}

func (c Config) withDefaults() Config {
	if c.IndexPrefix == "" {
		c.IndexPrefix = DefaultIndexPrefix
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = defaultRefreshInterval
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

// indexPrefix is what Elasticsearch accepts at the start of an index name:
// lower case, no separators or wildcards, not starting with - _ or +.
var indexPrefix = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("urls are required"))
	}
	for _, s := range c.URLs {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("url %q is not an http(s)://host[:port] URL", s))
		}
	}
	if !indexPrefix.MatchString(c.IndexPrefix) {
		errs = append(errs, fmt.Errorf("index prefix %q is not valid (a lower-case letter or digit, then lower-case letters, digits, '.', '_' or '-', at most 100)", c.IndexPrefix))
	}
	if c.RefreshInterval < time.Millisecond || c.RefreshInterval > maxRefreshInterval {
		errs = append(errs, fmt.Errorf("refresh interval %v is not within [1ms, %v]", c.RefreshInterval, maxRefreshInterval))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("username and password go together"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("elastic: config: %w", err)
	}
	return nil
}

// Document fields.
const (
	fieldText          = "text"
	fieldConversation  = "conversation_id"
	fieldMessage       = "message_id"
	fieldSender        = "sender_id"
	fieldCreatedAt     = "created_at"
	fieldHasAttachment = "has_attachment"
)

// mappingVersion names the mapping below; it is the suffix of the index
// name and is kept in the mapping's _meta. An index with another mapping
// is refused rather than searched wrongly; bump it whenever the mapping
// changes.
const (
	mappingVersionKey = "parley_mapping_version"
	mappingVersion    = "1"
)

// templatePriority ranks Parley's template above Elasticsearch's built-in
// ones; its index pattern is Parley's own anyway.
const templatePriority = 200

// mapping is the explicit mapping of message documents.
func mapping() map[string]any {
	keyword := map[string]any{"type": "keyword"}
	return map[string]any{
		"dynamic": "strict",
		"_meta":   map[string]any{mappingVersionKey: mappingVersion},
		"properties": map[string]any{
			// Offsets in the postings make highlighting cheap.
			fieldText:          map[string]any{"type": "text", "analyzer": "standard", "index_options": "offsets"},
			fieldConversation:  keyword,
			fieldMessage:       keyword,
			fieldSender:        keyword,
			fieldCreatedAt:     map[string]any{"type": "date_nanos"},
			fieldHasAttachment: map[string]any{"type": "boolean"},
		},
	}
}

// document is the indexed form of a message.
type document struct {
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	SenderID       string `json:"sender_id"`
	Text           string `json:"text"`
	CreatedAt      string `json:"created_at"`
	HasAttachment  bool   `json:"has_attachment"`
}

// date_nanos holds times from 1970 up to 2262 (int64 nanoseconds).
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// clampTime moves t into what date_nanos holds. Messages are stamped by
// the server, so only absurd times are moved.
func clampTime(t time.Time) time.Time {
	if t.Before(minTime) {
		return minTime
	}
	if t.After(maxTime) {
		return maxTime
	}
	return t.UTC()
}

func formatTime(t time.Time) string { return clampTime(t).Format(time.RFC3339Nano) }

func newDocument(m *chat.Message) document {
	return document{
		ConversationID: m.ConversationID,
		MessageID:      m.ID,
		SenderID:       m.SenderID,
		Text:           m.Text,
		CreatedAt:      formatTime(m.CreatedAt),
		HasAttachment:  len(m.Attachments) > 0,
	}
}

// maxDocIDBytes is Elasticsearch's limit on _id.
const maxDocIDBytes = 512

// docID names a message's document. The length prefix keeps the pair
// unambiguous whatever the ids contain.
func docID(conversationID, messageID string) string {
	return fmt.Sprintf("%d:%s:%s", len(conversationID), conversationID, messageID)
}

// parseURLs turns the validated -elasticsearch.urls into the transport's form.
func parseURLs(raw []string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(raw))
	for _, s := range raw {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("elastic: open: url %q: %w", s, err)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// Index is a chat.Index on Elasticsearch. Open it with Open; it is safe
// for concurrent use.
type Index struct {
	client  *elastictransport.Client
	alias   string
	timeout time.Duration

	// life is held shared by every operation and exclusively by Close, so
	// Close waits for operations in flight and none starts after it.
	life guard.Guard
}

var _ chat.Index = (*Index)(nil)

// names of what Open manages for a prefix: the alias the adapter reads and
// writes through, the index behind it and the template that maps it.
func aliasName(prefix string) string    { return prefix + "messages" }
func indexName(prefix string) string    { return aliasName(prefix) + "-" + mappingVersion }
func templateName(prefix string) string { return aliasName(prefix) }
func indexPattern(prefix string) string { return aliasName(prefix) + "-*" }

// Open connects to the cluster, installs the index template, creates the
// index and its alias when missing, and checks that the index has this
// build's mapping. It fails with CodeUnavailable when the cluster does not
// answer.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	urls, err := parseURLs(cfg.URLs)
	if err != nil {
		return nil, err
	}
	// The transport alone, with esapi's requests on top: the typed client
	// (elasticsearch.NewClient) links hundreds of generated packages that
	// Parley never calls.
	client, err := elastictransport.New(elastictransport.Config{
		URLs:         urls,
		Username:     cfg.Username,
		Password:     cfg.Password,
		MaxRetries:   2,
		RetryBackoff: func(attempt int) time.Duration { return time.Duration(attempt) * 50 * time.Millisecond },
	})
	if err != nil {
		return nil, fmt.Errorf("elastic: open: %w", err)
	}
	x := &Index{client: client, alias: aliasName(cfg.IndexPrefix), timeout: cfg.Timeout}
	if err := x.prepare(ctx, cfg); err != nil {
		_ = client.Close(context.Background())
		return nil, err
	}
	return x, nil
}

// prepare installs the template and makes sure the alias names an index
// with this build's mapping and refresh interval.
func (x *Index) prepare(ctx context.Context, cfg Config) error {
	const op = "elastic: open"
	refresh := fmt.Sprintf("%dms", cfg.RefreshInterval.Milliseconds())
	template := map[string]any{
		"index_patterns": []string{indexPattern(cfg.IndexPrefix)},
		"priority":       templatePriority,
		"template": map[string]any{
			"settings": map[string]any{
				"number_of_shards": 1,
				// A replica where there is a node for it: none on one node.
				"auto_expand_replicas": "0-1",
				"refresh_interval":     refresh,
			},
			"mappings": mapping(),
		},
		"_meta": map[string]any{"description": "Parley messages (search/elastic)"},
	}
	if _, err := x.do(ctx, op+": put template", esapi.IndicesPutIndexTemplateRequest{
		Name: templateName(cfg.IndexPrefix),
		Body: jsonBody(template),
	}, nil); err != nil {
		return err
	}

	status, err := x.do(ctx, op+": find alias", esapi.IndicesExistsAliasRequest{Name: []string{x.alias}}, nil, 404)
	if err != nil {
		return err
	}
	if status == 404 {
		body := map[string]any{"aliases": map[string]any{x.alias: map[string]any{"is_write_index": true}}}
		var failure errorResponse
		status, err := x.do(ctx, op+": create index", esapi.IndicesCreateRequest{
			Index: indexName(cfg.IndexPrefix),
			Body:  jsonBody(body),
		}, &failure, 400)
		if err != nil {
			return err
		}
		// Another node may have created it first; its alias is checked below.
		if status == 400 && failure.Error.Type != "resource_already_exists_exception" {
			return fmt.Errorf("%s: create index %s: %s", op, indexName(cfg.IndexPrefix), failure.Error)
		}
	}

	var mappings map[string]struct {
		Mappings struct {
			Meta map[string]any `json:"_meta"`
		} `json:"mappings"`
	}
	status, err = x.do(ctx, op+": read mapping", esapi.IndicesGetMappingRequest{Index: []string{x.alias}}, &mappings, 404)
	if err != nil {
		return err
	}
	if status == 404 || len(mappings) == 0 {
		return fmt.Errorf("%s: index %s exists without the alias %s; add the alias or delete the index", op, indexName(cfg.IndexPrefix), x.alias)
	}
	for name, m := range mappings {
		if v := fmt.Sprint(m.Mappings.Meta[mappingVersionKey]); v != mappingVersion {
			return fmt.Errorf("%s: index %s behind %s has mapping version %q, this build needs %q; reindex into %s and move the alias", op, name, x.alias, v, mappingVersion, indexName(cfg.IndexPrefix))
		}
	}

	settings := map[string]any{"index": map[string]any{"refresh_interval": refresh}}
	if _, err := x.do(ctx, op+": set refresh interval", esapi.IndicesPutSettingsRequest{
		Index: []string{x.alias},
		Body:  jsonBody(settings),
	}, nil); err != nil {
		return err
	}
	return nil
}

// Close closes the client after the operations in flight. Closing twice
// is harmless; every operation after Close fails with CodeUnavailable.
func (x *Index) Close() error {
	return x.life.Close(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), x.timeout)
		defer cancel()
		if err := x.client.Close(ctx); err != nil {
			return fmt.Errorf("elastic: close: %w", err)
		}
		return nil
	})
}

// enter starts an operation: it fails when ctx is done or the index is
// closed; otherwise the caller must call x.leave when done.
func (x *Index) enter(ctx context.Context, op string) error { return x.life.Enter(ctx, op) }

func (x *Index) leave() { x.life.Leave() }

// Ping reports whether the cluster answers and the alias exists.
func (x *Index) Ping(ctx context.Context) error {
	const op = "elastic: ping"
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()
	status, err := x.do(ctx, op, esapi.IndicesExistsAliasRequest{Name: []string{x.alias}}, nil, 404)
	if err != nil {
		return err
	}
	if status == 404 {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: fmt.Sprintf("alias %s is missing", x.alias)}
	}
	return nil
}

// bulkMaxBytes bounds one _bulk request; a larger Put is sent in several,
// in order.
const bulkMaxBytes = 4 << 20

// Put indexes msgs, replacing each message's document, so an edit is found
// by its new text only. A deleted message is removed instead. Within one
// Put a later entry with the same id wins. The writes are acknowledged
// when Put returns and searchable after the next refresh.
//
// The actions go in _bulk requests of up to bulkMaxBytes, one after the
// other, with the caller's ctx. (esutil.BulkIndexer suits a stream of
// writes: its workers send on a background context and report a failed
// request without its status, which Put needs to tell an unavailable
// cluster apart. The indexer role already hands Put whole batches.)
func (x *Index) Put(ctx context.Context, msgs []chat.Message) error {
	const op = "elastic: put"
	for i := range msgs {
		m := &msgs[i]
		if m.ID == "" || m.ConversationID == "" {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("message %d has no id or no conversation id", i)}
		}
		if len(docID(m.ConversationID, m.ID)) > maxDocIDBytes {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("message %d: ids are too long", i)}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()

	// Only the last entry of a message is sent, so the order of actions on
	// one document within a request never matters.
	last := make(map[string]int, len(msgs))
	for i := range msgs {
		last[docID(msgs[i].ConversationID, msgs[i].ID)] = i
	}
	var b bulkBody
	for i := range msgs {
		m := &msgs[i]
		id := docID(m.ConversationID, m.ID)
		if last[id] != i {
			continue
		}
		if m.Deleted {
			b.delete(id)
		} else {
			b.index(id, newDocument(m))
		}
		if b.buf.Len() >= bulkMaxBytes {
			if err := x.bulk(ctx, op, &b); err != nil {
				return err
			}
		}
	}
	return x.bulk(ctx, op, &b)
}

// Delete removes a message's document for good; deleting a message that
// is not indexed is not an error.
func (x *Index) Delete(ctx context.Context, conversationID, messageID string) error {
	const op = "elastic: delete"
	id := docID(conversationID, messageID)
	if len(id) > maxDocIDBytes {
		return nil // never indexed: Put refuses such ids
	}
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()
	var b bulkBody
	b.delete(id)
	return x.bulk(ctx, op, &b)
}

// bulkBody is the NDJSON body of a _bulk request.
type bulkBody struct {
	buf     bytes.Buffer
	actions int
}

type bulkAction struct {
	ID string `json:"_id"`
}

func (b *bulkBody) index(id string, doc document) {
	b.line(map[string]bulkAction{"index": {ID: id}})
	b.line(doc)
	b.actions++
}

func (b *bulkBody) delete(id string) {
	b.line(map[string]bulkAction{"delete": {ID: id}})
	b.actions++
}

func (b *bulkBody) line(v any) {
	// json.Encoder ends each value with a newline, as NDJSON wants; the
	// values here always encode.
	_ = json.NewEncoder(&b.buf).Encode(v)
}

type bulkResponse struct {
	Errors bool                          `json:"errors"`
	Items  []map[string]bulkResponseItem `json:"items"`
}

type bulkResponseItem struct {
	ID     string     `json:"_id"`
	Status int        `json:"status"`
	Result string     `json:"result"`
	Error  *errorBody `json:"error"`
}

// bulk sends the actions of b through the alias (never creating an index
// of the alias's name) and empties b. A delete of a missing document is
// a success.
func (x *Index) bulk(ctx context.Context, op string, b *bulkBody) error {
	if b.actions == 0 {
		return nil
	}
	defer func() { b.buf.Reset(); b.actions = 0 }()
	requireAlias := true
	var res bulkResponse
	if _, err := x.do(ctx, op, esapi.BulkRequest{
		Index:        x.alias,
		Body:         bytes.NewReader(b.buf.Bytes()),
		RequireAlias: &requireAlias,
	}, &res); err != nil {
		return err
	}
	if len(res.Items) != b.actions {
		return fmt.Errorf("%s: elasticsearch answered %d of %d bulk actions", op, len(res.Items), b.actions)
	}
	if !res.Errors {
		return nil
	}
	var errs []error
	for _, item := range res.Items {
		for action, r := range item {
			if r.Error == nil && r.Status < 300 {
				continue
			}
			if action == "delete" && r.Status == 404 && r.Error == nil {
				continue // not indexed: already gone
			}
			errs = append(errs, classifyStatus(op, r.Status, r.Error, fmt.Sprintf("%s of document %s", action, r.ID)))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	// One unavailable action makes the whole Put worth retrying.
	for _, err := range errs {
		if chat.ErrorCode(err) == chat.CodeUnavailable {
			return err
		}
	}
	return errors.Join(errs...)
}

// errorResponse is Elasticsearch's answer to a failed request.
type errorResponse struct {
	Error  *errorBody `json:"error"`
	Status int        `json:"status"`
}

type errorBody struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

func (e *errorBody) String() string {
	if e == nil {
		return "no reason given"
	}
	return e.Type + ": " + e.Reason
}

// maxResponseBytes bounds what is read of an answer: a page of 51 hits of
// 4,000-character texts, each highlighted, is far less.
const maxResponseBytes = 32 << 20

// do performs req with the index's timeout and decodes a successful JSON
// answer into out (when not nil). Statuses in allow count as success and
// are returned, with the answer decoded into out. Driver and HTTP errors
// are classified here, at the adapter's edge: no answer, overload and a
// missing index are CodeUnavailable.
func (x *Index) do(ctx context.Context, op string, req esapi.Request, out any, allow ...int) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, x.timeout)
	defer cancel()
	res, err := req.Do(rctx, x.client)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, chat.ContextError(op, ctxErr)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: fmt.Sprintf("elasticsearch did not answer within %v", x.timeout), Err: err}
		}
		return 0, &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "elasticsearch is unreachable", Err: err}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return 0, chat.ContextError(op, ctxErr)
		}
		return 0, &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "reading elasticsearch's answer failed", Err: err}
	}
	ok := res.StatusCode < 300
	for _, s := range allow {
		ok = ok || res.StatusCode == s
	}
	if !ok {
		var e errorResponse
		_ = json.Unmarshal(body, &e)
		return res.StatusCode, classifyStatus(op, res.StatusCode, e.Error, "")
	}
	if out != nil && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s: decode elasticsearch's answer: %w", op, err)
		}
	}
	return res.StatusCode, nil
}

// classifyStatus classifies a failed request or bulk action.
func classifyStatus(op string, status int, e *errorBody, what string) error {
	msg := fmt.Sprintf("elasticsearch answered %d (%s)", status, e)
	if what != "" {
		msg = what + ": " + msg
	}
	switch {
	case status == 429, status == 502, status == 503, status == 504,
		e != nil && e.Type == "index_not_found_exception",
		e != nil && e.Type == "cluster_block_exception":
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: msg}
	}
	return fmt.Errorf("%s: %s", op, msg)
}

// jsonBody encodes v, a request body built in code, as JSON.
func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		// Bodies are maps and structs of strings, numbers and booleans.
		panic(fmt.Sprintf("elastic: encode request body: %v", err))
	}
	return bytes.NewReader(b)
}
