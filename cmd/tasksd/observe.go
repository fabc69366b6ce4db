package main

// tasksd's observability: GET /metrics in the Prometheus text format, OTLP
// export of traces and metrics when the standard OTEL_EXPORTER_OTLP_*
// variables ask for it, and logs, as text or JSON, that name the task and
// the trace of each attempt.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskwheel/tasks"
	"github.com/taskwheel/tasks/internal/web"
)

// The environment twins of the observability flags.
const (
	envMetricsAddr = "TASKS_METRICS_ADDR"
	envLogFormat   = "TASKS_LOG_FORMAT"
	envLogLevel    = "TASKS_LOG_LEVEL"
)

// metricsPath is where tasksd serves its metrics.
const metricsPath = "/metrics"

// observeFlags defines the observability flags of fs, into c.
func observeFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "")
	fs.Func("log-format", "", func(v string) error { return setLogFormat(c, v) })
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "")
}

// setLogFormat sets c.LogJSON from a -log-format value.
func setLogFormat(c *config, v string) error {
	switch v {
	case "text":
		c.LogJSON = false
	case "json":
		c.LogJSON = true
	default:
		return fmt.Errorf("want text or json, not %q", v)
	}
	return nil
}

// observeEnv fills, from the environment, the observability settings that
// no flag set; env is parseConfig's.
func observeEnv(c *config, env func(flagName, name string) (string, bool)) error {
	if v, ok := env("metrics-addr", envMetricsAddr); ok {
		c.MetricsAddr = v
	}
	if v, ok := env("log-format", envLogFormat); ok {
		if err := setLogFormat(c, v); err != nil {
			return fmt.Errorf("%s: %w", envLogFormat, err)
		}
	}
	if v, ok := env("log-level", envLogLevel); ok {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("%s=%q: want debug, info, warn or error", envLogLevel, v)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("-metrics-addr (%s) = %q: want host:port, for example 127.0.0.1:9090", envMetricsAddr, c.MetricsAddr)
		}
	}
	return nil
}

// newLogger returns tasksd's logger, writing to w as cfg says. Its records
// logged with a context in a span carry the span's trace_id and span_id.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(traceHandler{h})
}

// traceHandler adds the trace_id and span_id of a record's context, if it
// is in a span.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// logMiddleware logs each enqueue (debug) and each attempt (debug when it
// succeeds, warn when it fails) with the task's ID and its trace's, through
// the tasks.Middleware that users would write.
func logMiddleware(logger *slog.Logger) tasks.Middleware {
	return tasks.Middleware{
		Enqueue: func(ctx context.Context, ts []*tasks.Task, next func(context.Context, []*tasks.Task) ([]*tasks.Task, error)) ([]*tasks.Task, error) {
			stored, err := next(ctx, ts)
			if logger.Enabled(ctx, slog.LevelDebug) {
				for _, t := range stored {
					if t != nil {
						logger.LogAttrs(ctx, slog.LevelDebug, "task enqueued", slog.String("task_id", t.ID),
							slog.String("app_id", t.AppID), slog.String("event_type", t.EventType))
					}
				}
			}
			return stored, err
		},
		Execute: func(ctx context.Context, t *tasks.Task, next tasks.Func) error {
			start := time.Now()
			err := next(ctx, t)
			level, msg := slog.LevelDebug, "task attempt succeeded"
			if err != nil {
				level, msg = slog.LevelWarn, "task attempt failed"
			}
			if !logger.Enabled(ctx, level) {
				return err
			}
			attrs := []slog.Attr{slog.String("task_id", t.ID), slog.String("app_id", t.AppID),
				slog.String("event_type", t.EventType), slog.Int("attempt", t.Attempts),
				slog.Duration("duration", time.Since(start))}
			if !trace.SpanContextFromContext(ctx).IsValid() && t.TraceParent != "" {
				// Traces are off here; the trace that enqueued the task is still its.
				ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": t.TraceParent})
			}
			if err != nil {
				attrs = append(attrs, slog.String("err", err.Error()))
			}
			logger.LogAttrs(ctx, level, msg, attrs...)
			return err
		},
	}
}

// telemetry is tasksd's OpenTelemetry SDK: its providers, the handler of
// GET /metrics, and what to shut down.
type telemetry struct {
	tracer   *sdktrace.TracerProvider // nil: no trace is exported, and none made
	meter    *sdkmetric.MeterProvider
	metrics  http.Handler
	exported []string // what goes to OTLP: "traces", "metrics"
}

// otlpEnv reports whether the environment asks for OTLP export of signal
// ("TRACES" or "METRICS"): OTEL_EXPORTER_OTLP_ENDPOINT or the signal's own
// endpoint is set, and OTEL_<signal>_EXPORTER is not "none".
func otlpEnv(getenv func(string) string, signal string) bool {
	if getenv("OTEL_"+signal+"_EXPORTER") == "none" || getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// newTelemetry sets up the SDK: a meter provider read by GET /metrics and,
// if the environment asks, exported by OTLP; a tracer provider exporting by
// OTLP if the environment asks for it. The OTLP exporters take their
// settings (endpoint, headers, timeout, TLS) from the standard variables,
// over HTTP/protobuf; a protocol of grpc is refused.
func newTelemetry(ctx context.Context, getenv func(string) string) (*telemetry, error) {
	tel := &telemetry{}
	traces, metrics := otlpEnv(getenv, "TRACES"), otlpEnv(getenv, "METRICS")
	if traces || metrics {
		for _, v := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"} {
			if p := getenv(v); p != "" && p != "http/protobuf" {
				return nil, fmt.Errorf("%s=%q: tasksd exports OTLP over http/protobuf only", v, p)
			}
		}
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("tasksd"), semconv.ServiceVersion(tasks.Version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}

	reg := promclient.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	tel.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if metrics {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP metric exporter: %w", err)
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		tel.exported = append(tel.exported, "metrics")
	}
	tel.meter = sdkmetric.NewMeterProvider(opts...)
	if traces {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		tel.tracer = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		tel.exported = append(tel.exported, "traces")
	}
	return tel, nil
}

// apply sets c's providers to tel's. Without OTLP traces it leaves
// TracerProvider nil: the engine then makes no span (the global provider
// is unset), and a task keeps the trace context its creator sent.
func (tel *telemetry) apply(c *tasks.Config) {
	c.MeterProvider = tel.meter
	if tel.tracer != nil {
		c.TracerProvider = tel.tracer
	}
}

// shutdown flushes and stops the exporters, within shutdownTimeout.
func (tel *telemetry) shutdown(ctx context.Context, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	var errs []error
	if tel.tracer != nil {
		errs = append(errs, tel.tracer.Shutdown(ctx))
	}
	errs = append(errs, tel.meter.Shutdown(ctx))
	if err := errors.Join(errs...); err != nil {
		logger.Error("flush telemetry", "err", err)
	}
}

// serve serves GET /metrics: on its own listener at addr, without the key,
// or, when addr is "", in front of h behind key. It returns the handler to
// serve on the API's listener, where the metrics are, and a func that stops
// the metrics' listener.
func (tel *telemetry) serve(addr string, h http.Handler, key string, logger *slog.Logger) (http.Handler, string, func(context.Context) error, error) {
	if addr == "" {
		return withMetrics(h, tel.metrics, key), "behind the API key at " + metricsPath, func(context.Context) error { return nil }, nil
	}
	at, stop, err := serveMetrics(addr, tel.metrics, logger)
	if err != nil {
		return nil, "", nil, err
	}
	return h, serverURL(at) + metricsPath, stop, nil
}

// withMetrics serves GET /metrics with tel's handler behind key, in front
// of h: a request without the key gets 401 (ACCEPTANCE O3).
func withMetrics(h http.Handler, metrics http.Handler, key string) http.Handler {
	keys := web.ParseKeys("tasksd", map[string][]string{key: {"*"}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != metricsPath {
			h.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		auth := r.Header.Get("Authorization")
		scheme, token, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") || web.FindKey(keys, strings.TrimSpace(token)) < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tasks"`)
			writeProblem(w, http.StatusUnauthorized, "missing or invalid API key; send Authorization: Bearer <key>")
			return
		}
		metrics.ServeHTTP(w, r)
	})
}

// writeProblem writes an RFC 9457 problem with status and detail.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "title": http.StatusText(status), "detail": detail, "error": detail})
}

// serveMetrics serves GET /metrics, without a key, on its own listener at
// addr, until the returned stop is called; it returns the listener's
// address.
func serveMetrics(addr string, metrics http.Handler, logger *slog.Logger) (net.Addr, func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+metricsPath, metrics)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() { // ends at stop's Shutdown, which waits for it
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server failed", "err", err)
		}
	}()
	stop := func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		<-done
		return err
	}
	return ln.Addr(), stop, nil
}
