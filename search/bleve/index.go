// Package bleve is Parley's embedded chat.Index: full-text search over
// messages with Bleve (a Go search library) in a local folder.
//
// One document per message, with an explicit mapping: the text analyzed
// like Elasticsearch's standard analyzer (Unicode word boundaries,
// lowercase, no stop words, no stemming), so the embedded and the
// distributed index split words alike; conversation_id and sender_id as
// exact keywords; created_at as a datetime; has_attachment as a boolean.
// Scoring is BM25, as in Elasticsearch.
//
// Search never parses the user's text as query syntax: the text only ever
// becomes a match query on the text field, and the caller's conversations
// are a non-scoring filter built in code around it, so no text can widen
// the filter.
package bleve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
	bleveindex "github.com/blevesearch/bleve_index_api"
	zapx "github.com/blevesearch/zapx/v17"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/internal/guard"
)

// Config configures the index.
type Config struct {
	// Dir is the index folder; Open creates it when missing or empty.
	Dir string
	// PersistDelay is how long Bleve's persister waits after persisting,
	// so that the batches that arrive meanwhile are merged in memory and
	// written as one segment. A Put still returns only once its batch is
	// persisted, so it may wait this long: the indexer's batches, from
	// every partition at once, then share a segment, and the index makes
	// a few segment files a second to merge instead of one per batch
	// (which was ~40% of an embedded server's CPU at 1,000 sends/s).
	// 0 persists every batch at once.
	PersistDelay time.Duration
}

// mergeWriteBuffer is the write buffer of each segment file Bleve writes
// by merging: every persist (PersistDelay) and every background merge.
// zapx's default, 1 MiB, is allocated afresh each time: at a few merges
// a second that was about a sixth of everything an embedded server
// allocated while delivering 20,000 events/s, and so a sixth of its
// garbage collections, which stall the delivery path too. The segments
// of a chat index are small; 64 KiB writes cost a handful more system
// calls per merge.
const mergeWriteBuffer = 64 << 10

func init() {
	if zapx.DefaultFileMergerBufferSize > mergeWriteBuffer {
		zapx.DefaultFileMergerBufferSize = mergeWriteBuffer
	}
}

// runtimeConfig is Bleve's scorch configuration for c.
func (c Config) runtimeConfig() map[string]any {
	return map[string]any{
		"scorchPersisterOptions": map[string]any{
			"PersisterNapTimeMSec":      int(c.PersistDelay / time.Millisecond),
			"PersisterNapUnderNumFiles": 1000,
		},
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("bleve: config: dir is required")
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

// textAnalyzer is the analyzer of the text field and of query texts.
const textAnalyzer = "parley_text"

// mappingVersion names the mapping below. An index built with another
// mapping is refused rather than searched wrongly; bump it whenever the
// mapping changes.
const (
	mappingVersionKey = "parley.mapping"
	mappingVersion    = "1"
)

// Index is a chat.Index on Bleve. Open it with Open; it is safe for
// concurrent use.
type Index struct {
	idx bleve.Index

	// life is held shared by every operation and exclusively by Close, so
	// Close waits for operations in flight and none starts after it.
	life guard.Guard
}

var _ chat.Index = (*Index)(nil)

// Open opens the index in cfg.Dir, creating it when the folder is missing
// or empty.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bleve: open: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	idx, err := bleve.OpenUsing(cfg.Dir, cfg.runtimeConfig())
	switch {
	case err == nil:
		if err := checkMappingVersion(idx, cfg.Dir); err != nil {
			_ = idx.Close()
			return nil, err
		}
		return &Index{idx: idx}, nil
	case errors.Is(err, bleve.ErrorIndexPathDoesNotExist):
	case errors.Is(err, bleve.ErrorIndexMetaMissing) && isEmptyDir(cfg.Dir):
		// Bleve creates the folder itself and refuses an existing one.
		if err := os.Remove(cfg.Dir); err != nil {
			return nil, fmt.Errorf("bleve: open %s: %w", cfg.Dir, err)
		}
	default:
		return nil, fmt.Errorf("bleve: open %s: %w", cfg.Dir, err)
	}

	m, err := newMapping()
	if err != nil {
		return nil, fmt.Errorf("bleve: mapping: %w", err)
	}
	idx, err = bleve.NewUsing(cfg.Dir, m, scorch.Name, scorch.Name, cfg.runtimeConfig())
	if err != nil {
		return nil, fmt.Errorf("bleve: create %s: %w", cfg.Dir, err)
	}
	if err := idx.SetInternal([]byte(mappingVersionKey), []byte(mappingVersion)); err != nil {
		_ = idx.Close()
		return nil, fmt.Errorf("bleve: create %s: %w", cfg.Dir, err)
	}
	return &Index{idx: idx}, nil
}

func checkMappingVersion(idx bleve.Index, dir string) error {
	v, err := idx.GetInternal([]byte(mappingVersionKey))
	if err != nil {
		return fmt.Errorf("bleve: open %s: %w", dir, err)
	}
	if string(v) != mappingVersion {
		return fmt.Errorf("bleve: open %s: the index has mapping version %q, this build needs %q; remove the folder to rebuild the index", dir, v, mappingVersion)
	}
	return nil
}

func isEmptyDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) == 0
}

// newMapping returns the explicit mapping of message documents; fields
// that are not mapped are ignored.
func newMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	// Bleve's "standard" analyzer also drops English stop words, which
	// Elasticsearch's does not.
	err := im.AddCustomAnalyzer(textAnalyzer, map[string]any{
		"type":          custom.Name,
		"tokenizer":     unicode.Name,
		"token_filters": []any{lowercase.Name},
	})
	if err != nil {
		return nil, err
	}
	im.DefaultAnalyzer = textAnalyzer
	im.ScoringModel = bleveindex.BM25Scoring
	im.IndexDynamic = false
	im.StoreDynamic = false
	im.DocValuesDynamic = false

	text := bleve.NewTextFieldMapping()
	text.Analyzer = textAnalyzer
	text.Store = true              // for highlights
	text.IncludeTermVectors = true // match locations, for highlights
	text.IncludeInAll = false
	text.DocValues = false

	keywordField := func(store bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Analyzer = keyword.Name
		f.Store = store
		f.IncludeTermVectors = false
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}

	created := bleve.NewDateTimeFieldMapping()
	created.Store = false
	created.IncludeInAll = false
	created.DocValues = true // sorting

	hasAttachment := bleve.NewBooleanFieldMapping()
	hasAttachment.Store = false
	hasAttachment.IncludeInAll = false
	hasAttachment.DocValues = false

	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fieldText, text)
	doc.AddFieldMappingsAt(fieldConversation, keywordField(true))
	doc.AddFieldMappingsAt(fieldMessage, keywordField(true))
	doc.AddFieldMappingsAt(fieldSender, keywordField(false))
	doc.AddFieldMappingsAt(fieldCreatedAt, created)
	doc.AddFieldMappingsAt(fieldHasAttachment, hasAttachment)
	im.DefaultMapping = doc
	return im, im.Validate()
}

// docID names a message's document. The length prefix keeps the pair
// unambiguous whatever the ids contain.
func docID(conversationID, messageID string) string {
	return fmt.Sprintf("%d:%s:%s", len(conversationID), conversationID, messageID)
}

// document is the indexed form of m.
func document(m *chat.Message) map[string]any {
	doc := map[string]any{
		fieldText:          m.Text,
		fieldConversation:  m.ConversationID,
		fieldMessage:       m.ID,
		fieldSender:        m.SenderID,
		fieldHasAttachment: len(m.Attachments) > 0,
	}
	// Bleve keeps datetimes as int64 nanoseconds; a time it cannot hold
	// is left out (the message then fails every time filter).
	if inDatetimeRange(m.CreatedAt) {
		doc[fieldCreatedAt] = m.CreatedAt
	}
	return doc
}

func inDatetimeRange(t time.Time) bool {
	return !t.Before(query.MinRFC3339CompatibleTime) && !t.After(query.MaxRFC3339CompatibleTime)
}

// Close closes the index after the operations in flight. Closing twice is
// harmless; every operation after Close fails with CodeUnavailable.
func (x *Index) Close() error {
	return x.life.Close(func() error {
		if err := x.idx.Close(); err != nil {
			return fmt.Errorf("bleve: close: %w", err)
		}
		return nil
	})
}

// enter starts an operation: it fails when ctx is done or the index is
// closed; otherwise the caller must call x.leave when done.
func (x *Index) enter(ctx context.Context, op string) error { return x.life.Enter(ctx, op) }

func (x *Index) leave() { x.life.Leave() }

// classify translates a Bleve error at the adapter's edge.
func classify(op string, err error) error {
	if errors.Is(err, bleve.ErrorIndexClosed) {
		return &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: "index is closed", Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Ping reports whether the index answers.
func (x *Index) Ping(ctx context.Context) error {
	const op = "bleve: ping"
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()
	if _, err := x.idx.DocCount(); err != nil {
		return classify(op, err)
	}
	return nil
}

// Put indexes msgs in one batch, replacing each message's document, so an
// edit is found by its new text only. A deleted message is removed
// instead. Within one Put a later entry with the same id wins. The batch
// is persisted when Put returns.
func (x *Index) Put(ctx context.Context, msgs []chat.Message) error {
	const op = "bleve: put"
	for i := range msgs {
		if msgs[i].ID == "" || msgs[i].ConversationID == "" {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("message %d has no id or no conversation id", i)}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()
	b := x.idx.NewBatch()
	for i := range msgs {
		m := &msgs[i]
		id := docID(m.ConversationID, m.ID)
		if m.Deleted {
			b.Delete(id)
			continue
		}
		if err := b.Index(id, document(m)); err != nil {
			return fmt.Errorf("%s: message %s: %w", op, m.ID, err)
		}
	}
	if err := x.idx.Batch(b); err != nil {
		return classify(op, err)
	}
	return nil
}

// Delete removes a message's document for good; deleting a message that
// is not indexed is not an error.
func (x *Index) Delete(ctx context.Context, conversationID, messageID string) error {
	const op = "bleve: delete"
	if err := x.enter(ctx, op); err != nil {
		return err
	}
	defer x.leave()
	if err := x.idx.Delete(docID(conversationID, messageID)); err != nil {
		return classify(op, err)
	}
	return nil
}
