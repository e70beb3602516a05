package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// startTracing installs an OTLP/HTTP exporting tracer provider when
// --otel.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) is set, as the global
// provider delivery/tracing's spans use; it returns the function that
// flushes and stops it (within 5 s). Unset, tracing stays off and the
// global provider is left alone. The exporter connects lazily: a
// collector that is down costs dropped spans (logged by OpenTelemetry),
// never a failed start.
//
// The exporter is OpenTelemetry's (otlptrace: the SDK's spans to OTLP
// messages) over a client of Parley's own that posts them as
// OTLP/protobuf (otlpClient): otlptracehttp's configuration imports
// gRPC, 140 packages and 5 MB of binary for a protocol Parley never
// speaks.
func startTracing(ctx context.Context, cfg config, logger *slog.Logger) (func(), error) {
	if cfg.OtelEndpoint == "" {
		return func() {}, nil
	}
	client, err := newOTLPClient(cfg.OtelEndpoint)
	if err != nil {
		return nil, fmt.Errorf("--otel.endpoint: %w", err)
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("--otel.endpoint: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "parley"),
		attribute.String("service.version", version),
		attribute.String("service.instance.id", nodeID(cfg.Addr)),
		attribute.String("parley.roles", cfg.Roles),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.OtelSampleRatio))),
	)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	logger.Info("exporting traces", "endpoint", redactedURL(client.url), "sample_ratio", cfg.OtelSampleRatio)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
		otel.SetTracerProvider(prev)
	}, nil
}

// redactedURL is u with any password replaced, for logs.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// tracesPath is the path of OTLP/HTTP's traces endpoint.
const tracesPath = "/v1/traces"

// otlpClient posts spans to an OTLP/HTTP receiver as OTLP/protobuf (an
// ExportTraceServiceRequest, Content-Type application/x-protobuf), the
// encoding every OTLP receiver must take. A 429, 502, 503 or 504 (after
// its Retry-After, if any) or a failed connection is tried again, up to
// otlpAttempts times within the exporter's deadline; any other answer
// but 2xx, and a 2xx naming rejected spans, is an error the SDK reports.
type otlpClient struct {
	url  string
	http *http.Client
	// backoff is the wait before the second attempt, doubled after.
	backoff time.Duration
}

const (
	otlpAttempts = 3
	// otlpTimeout bounds one attempt (OTLP's default export timeout).
	otlpTimeout = 10 * time.Second
	// otlpMaxRetryAfter caps a receiver's Retry-After.
	otlpMaxRetryAfter = 10 * time.Second
)

var _ otlptrace.Client = (*otlpClient)(nil)

// newOTLPClient returns the client of the OTLP/HTTP receiver at endpoint,
// read as OTEL_EXPORTER_OTLP_ENDPOINT is: a base URL to which /v1/traces
// is appended (http://collector:4318 posts to
// http://collector:4318/v1/traces), unless it already ends in /v1/traces.
func newOTLPClient(endpoint string) (*otlpClient, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", endpoint)
	}
	if !strings.HasSuffix(u.Path, tracesPath) {
		u.Path = strings.TrimSuffix(u.Path, "/") + tracesPath
		u.RawPath = ""
	}
	return &otlpClient{url: u.String(), http: &http.Client{Timeout: otlpTimeout}, backoff: time.Second}, nil
}

// Start does nothing: the client connects on its first upload.
func (c *otlpClient) Start(context.Context) error { return nil }

// Stop closes the idle connections; an upload still running ends with
// its context.
func (c *otlpClient) Stop(context.Context) error {
	c.http.CloseIdleConnections()
	return nil
}

// UploadTraces posts spans as one ExportTraceServiceRequest.
func (c *otlpClient) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	body, err := marshalExportRequest(spans)
	if err != nil {
		return fmt.Errorf("otlp: encode spans: %w", err)
	}
	wait := c.backoff
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.post(ctx, body)
		var retry *retryableError
		if err == nil || !errors.As(err, &retry) || attempt == otlpAttempts {
			return err
		}
		pause := wait
		if retryAfter > 0 {
			pause = min(retryAfter, otlpMaxRetryAfter)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (then %w)", err, ctx.Err())
		case <-time.After(pause):
		}
		wait *= 2
	}
}

// retryableError is a failure worth another attempt.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// post makes one attempt, returning the receiver's Retry-After (0 when
// none) with a retryable failure.
func (c *otlpClient) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "parley/"+version)
	res, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("otlp: post to %s: %w", redactedURL(c.url), err)
		}
		return 0, &retryableError{fmt.Errorf("otlp: post to %s: %w", redactedURL(c.url), err)}
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	switch {
	case res.StatusCode/100 == 2:
		// A partial success that rejects nothing is a warning (OTLP/HTTP):
		// the spans were taken.
		if rejected, msg := partialSuccess(answer); rejected > 0 {
			return 0, fmt.Errorf("otlp: %s rejected %d spans: %s", redactedURL(c.url), rejected, msg)
		}
		return 0, nil
	case res.StatusCode == http.StatusTooManyRequests, res.StatusCode == http.StatusBadGateway,
		res.StatusCode == http.StatusServiceUnavailable, res.StatusCode == http.StatusGatewayTimeout:
		var after time.Duration
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(s) * time.Second
		}
		return after, &retryableError{fmt.Errorf("otlp: %s answered %s", redactedURL(c.url), res.Status)}
	}
	return 0, fmt.Errorf("otlp: %s answered %s", redactedURL(c.url), res.Status)
}

// marshalExportRequest encodes an ExportTraceServiceRequest, whose one
// field is `repeated ResourceSpans resource_spans = 1`: each message
// appended as field 1, which is what proto.Marshal of the request makes.
// (The request's Go type lives in a package that imports gRPC.)
func marshalExportRequest(spans []*tracepb.ResourceSpans) ([]byte, error) {
	var b []byte
	opts := proto.MarshalOptions{}
	for _, rs := range spans {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(opts.Size(rs)))
		var err error
		if b, err = opts.MarshalAppend(b, rs); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// partialSuccess reads an ExportTraceServiceResponse's partial_success
// (field 1: rejected_spans = 1, error_message = 2); an answer that does
// not decode, or has none, is a full success.
func partialSuccess(b []byte) (rejected int64, msg string) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, ""
			}
			b = b[n:]
			for len(ps) > 0 {
				pnum, ptyp, m := protowire.ConsumeTag(ps)
				if m < 0 {
					return rejected, msg
				}
				ps = ps[m:]
				switch {
				case pnum == 1 && ptyp == protowire.VarintType:
					v, m := protowire.ConsumeVarint(ps)
					if m < 0 {
						return rejected, msg
					}
					rejected, ps = int64(v), ps[m:]
				case pnum == 2 && ptyp == protowire.BytesType:
					v, m := protowire.ConsumeBytes(ps)
					if m < 0 {
						return rejected, msg
					}
					msg, ps = string(v), ps[m:]
				default:
					m := protowire.ConsumeFieldValue(pnum, ptyp, ps)
					if m < 0 {
						return rejected, msg
					}
					ps = ps[m:]
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
	}
	return rejected, msg
}
