package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// startTracing installs an OTLP/HTTP exporting tracer provider when
// --otel.endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) is set, as the global
// provider delivery/tracing's spans use; it returns the function that
// flushes and stops it (within 5 s). Unset, tracing stays off and the
// global provider is left alone. The exporter connects lazily: a
// collector that is down costs dropped spans (logged by OpenTelemetry),
// never a failed start.
func startTracing(ctx context.Context, cfg config, logger *slog.Logger) (func(), error) {
	if cfg.OtelEndpoint == "" {
		return func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.OtelEndpoint))
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
	logger.Info("exporting traces", "endpoint", redactedURL(cfg.OtelEndpoint), "sample_ratio", cfg.OtelSampleRatio)
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
