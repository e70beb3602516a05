// Package media is the media role: it follows the events log in consumer
// group "media", makes bounded-size thumbnails of image attachments (PNG,
// JPEG, GIF, WebP), stores them as blobs, and sends a thumbnail command so
// the update is sequenced like everything else (message.updated).
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"log/slog"
	"time"

	// Decoders for the accepted image types.
	_ "image/gif"
	_ "image/jpeg"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
	"github.com/parleychat/parley/delivery/retry"
)

// Group is the consumer group of the media role.
const Group = "media"

// Limits of thumbnailing.
const (
	// MaxPixels refuses decompression bombs: the header is read first and
	// an image larger than this is never decoded.
	MaxPixels = 40_000_000
	// MaxEdge is the thumbnail's longest side.
	MaxEdge = 320
)

// Worker is the media role.
type Worker struct {
	log         chat.Log
	store       chat.Store
	blobs       chat.Blobs
	logger      *slog.Logger
	undecodable prometheus.Counter
}

// Option configures a Worker.
type Option func(*Worker)

// WithRegisterer registers the worker's metrics with reg:
// parley_undecodable_records_total{consumer="media"}, the event records it
// skipped because they did not decode.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(w *Worker) { reg.MustRegister(w.undecodable) }
}

// New returns a media worker.
func New(log chat.Log, store chat.Store, blobs chat.Blobs, logger *slog.Logger, opts ...Option) *Worker {
	w := &Worker{
		log: log, store: store, blobs: blobs, logger: logger.With("component", "media"),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "parley_undecodable_records_total",
			Help:        "Event records a consumer skipped because they did not decode.",
			ConstLabels: prometheus.Labels{"consumer": Group},
		}),
	}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Run consumes until ctx is done.
func (w *Worker) Run(ctx context.Context) error {
	return retry.Consume(ctx, w.logger, "media batch failed", func(ctx context.Context) error {
		return w.log.Consume(ctx, chat.TopicEvents, Group, w.handle)
	})
}

func (w *Worker) handle(ctx context.Context, partition int, recs []chat.Record) error {
	for _, rec := range recs {
		s, err := record.DecodeSequencedEvents(rec.Value)
		if err != nil {
			// Retrying cannot make it decode: skip it, loudly.
			w.undecodable.Inc()
			w.logger.Warn("skipping an undecodable event record", "partition", partition, "offset", rec.Offset, "err", err)
			continue
		}
		for _, ev := range s.Events {
			if ev.Type != chat.EventMessageCreated || ev.Message == nil {
				continue
			}
			for _, a := range ev.Message.Attachments {
				if !chat.IsImageType(a.ContentType) || a.Thumbnail {
					continue
				}
				if err := w.thumbnail(ctx, ev.Message, a); err != nil {
					if errors.Is(err, errUnusable) {
						w.logger.Info("no thumbnail", "attachment", a.ID, "reason", err)
						continue
					}
					return err
				}
			}
		}
	}
	return nil
}

var errUnusable = errors.New("image unusable")

// decodeSlots bounds how many images are decoded at once: partitions are
// handled side by side, and each decode may hold a 40-megapixel bitmap.
var decodeSlots = make(chan struct{}, 2)

func (w *Worker) thumbnail(ctx context.Context, m *chat.Message, a chat.Attachment) error {
	select {
	case decodeSlots <- struct{}{}:
		defer func() { <-decodeSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	rec := chat.AttachmentRecord{Attachment: a}
	rc, err := w.blobs.Get(ctx, rec.BlobKey())
	if err != nil {
		if chat.IsNotFound(err) {
			return fmt.Errorf("%w: blob missing", errUnusable)
		}
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(rc, a.Size+1))
	rc.Close()
	if err != nil {
		return err
	}
	out, err := Thumbnail(raw)
	if err != nil {
		return err
	}
	key := "thumb/" + a.ID + ".png"
	if err := w.blobs.Put(ctx, key, "image/png", bytes.NewReader(out), int64(len(out))); err != nil {
		return err
	}
	cmd := chat.Command{
		ID: chat.NewID("cmd"), Op: chat.OpThumbnail, ConversationID: m.ConversationID, Actor: m.SenderID, At: time.Now().UTC(),
		MessageID: m.ID, AttachmentID: a.ID, ThumbnailKey: key,
	}
	val, err := record.EncodeCommand(&cmd)
	if err != nil {
		return err
	}
	return w.log.Append(ctx, chat.TopicCommands, &chat.Record{Key: m.ConversationID, Value: val})
}

// Thumbnail decodes an image of an accepted type and returns a PNG no
// larger than MaxEdge on its longest side. An image whose header declares
// more than MaxPixels is refused before any pixel is decoded.
func Thumbnail(raw []byte) ([]byte, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnusable, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return nil, fmt.Errorf("%w: %dx%d is over the pixel limit", errUnusable, cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnusable, err)
	}
	b := src.Bounds()
	wd, ht := b.Dx(), b.Dy()
	if wd > MaxEdge || ht > MaxEdge {
		if wd >= ht {
			wd, ht = MaxEdge, max(1, ht*MaxEdge/b.Dx())
		} else {
			wd, ht = max(1, wd*MaxEdge/b.Dy()), MaxEdge
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, wd, ht))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	var buf bytes.Buffer
	if err := png.Encode(&buf, dst); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
