package main

// Operations: the log format, OpenTelemetry's OTLP exporter from the standard environment,
// and -check-config.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/wsbridge/wsbridge/bridge"
)

// newLogger is the logger of -log-level and -log-format, writing to w.
func (c *config) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %v", err)
	}
	ho := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("-log-format: want json or text, got %q", c.logFormat)
}

// otlpEnv are the standard variables that choose where traces go.
var otlpEnv = []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// tracing is the tracer provider of the standard OpenTelemetry environment: an OTLP exporter
// when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set, over
// OTEL_EXPORTER_OTLP_PROTOCOL (or _TRACES_PROTOCOL) "grpc" or "http/protobuf" (the default),
// unless OTEL_SDK_DISABLED=true. The exporters read the other OTEL_EXPORTER_OTLP_* variables
// (headers, TLS, timeout), the SDK reads OTEL_TRACES_SAMPLER and OTEL_SERVICE_NAME. nil when
// tracing is off. Nothing connects here: the exporter dials on its first batch.
func tracing(ctx context.Context) (*sdktrace.TracerProvider, error) {
	var endpoint, from string
	for _, name := range otlpEnv {
		if v := os.Getenv(name); v != "" {
			endpoint, from = v, name
			break
		}
	}
	if endpoint == "" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return nil, nil
	}
	if u, err := url.Parse(endpoint); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s: want an http:// or https:// URL, got %q", from, endpoint)
	}
	protocol := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: want grpc or http/protobuf, got %q", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter (%s): %v", from, err)
	}
	// service.name "wsbridge" unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName("wsbridge")), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %v", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// shutdownTracing flushes the spans still batched, for at most 5 seconds.
func shutdownTracing(tp *sdktrace.TracerProvider, logger *slog.Logger) {
	if tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		logger.Warn("flushing the last spans failed", "err", err)
	}
}

// check is -check-config: everything run checks before it listens (flags, environment,
// -config, -http-rules, -descriptor-set, the JWT keys, the TLS files, the OTLP variables,
// the options' ranges), without listening or dialing a backend. A JWKS URL is fetched, as
// at start.
func (c *config) check(opts []bridge.Option) error {
	if err := bridge.Validate(opts...); err != nil {
		return optionFlagError(err)
	}
	if _, err := c.sec.httpServer(nil); err != nil {
		return err
	}
	for _, a := range []struct{ flag, addr string }{{"listen", c.listen}, {"metrics-listen", c.metricsListen}} {
		if a.addr == "" && a.flag == "metrics-listen" {
			continue
		}
		if err := checkListenAddr(a.addr); err != nil {
			return fmt.Errorf("-%s: %v", a.flag, err)
		}
	}
	return nil
}

// checkListenAddr checks a listen address without listening: host:port, the host empty, an
// IP address or a host name, the port a number or a service name.
func checkListenAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	if strings.Trim(host, "0123456789.") == "" || !validHostname(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

func validHostname(h string) bool {
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
