package bridge

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
)

// Each request frame is followed from its reading to its reply by a reqObs: the request
// metrics, the span (only with WithTracerProvider) and the request's log line all end in
// finish, exactly once, wherever the reply is sent from.

// WithTracerProvider turns tracing on: a span per request frame (named "<stream> <action>",
// with the stream, action, request_id, connection id and response_status), whose parent is
// the W3C traceparent of the frame's payload.traceparent or else of the handshake's
// traceparent header; and a client span per backend call (otelgrpc), which sends the
// traceparent on to the backend as gRPC metadata. Default nil: no tracing, no cost beyond a
// nil check per frame.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(o *options) { o.tracerProvider = tp })
}

// tracerName is the instrumentation scope of the bridge's spans.
const tracerName = "github.com/wsbridge/wsbridge/bridge"

var traceContext propagation.TraceContext

// tracingDialOptions are the backend dial options tracing adds: otelgrpc's client stats
// handler, propagating W3C trace context. Its metrics are off: /metrics has the bridge's.
// Discovery's reflection streams and health checks are not traced: they are no client's work.
func (o *options) tracingDialOptions() []grpc.DialOption {
	if o.tracerProvider == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(o.tracerProvider),
		otelgrpc.WithPropagators(traceContext),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return !strings.HasPrefix(info.FullMethodName, "/grpc.reflection.") && !strings.HasPrefix(info.FullMethodName, "/grpc.health.")
		}),
	))}
}

// reqObs follows one request. It lives in the request (pooled with the frame); a subscribe
// answered later, when its upstream is established, moves it to the subscription.
type reqObs struct {
	start          time.Time
	stream, action string     // metric labels: catalog names, or unknownLabel
	span           trace.Span // nil when tracing is off
	done           bool       // finished, or moved to a subscription
}

// connID is the connection's id in the logs and spans: 12 hex digits, random. Kept as a
// number and formatted only when used: an idle connection's bytes count.
func (c *conn) connID() string {
	return strconv.FormatUint(c.id|1<<48, 16)[1:]
}

// logger is the server's logger with the connection's id; made only for a line to log.
func (c *conn) logger() *slog.Logger {
	return c.srv.opts.logger.With("conn", c.connID())
}

// initObs gives a new connection its id and the trace context of its handshake.
func (c *conn) initObs(r *http.Request) {
	c.id = rand.Uint64() & (1<<48 - 1)
	if c.srv.tracer != nil {
		if sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.HeaderCarrier(r.Header))); sc.IsValid() {
			c.traceParent = &sc
		}
	}
	if c.srv.opts.logger.Enabled(context.Background(), slog.LevelDebug) {
		c.logger().Debug("connection opened", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
	}
}

// begin starts following a decoded request (dispatch, call.go), read at start.
func (c *conn) begin(r *request, start time.Time) {
	o := &r.obs
	o.start, o.stream, o.action = start, unknownLabel, unknownLabel
	if cat := c.srv.catalog.Load(); cat != nil && r.stream != nil {
		if res := cat.streams[string(unquoted(r.stream))]; res != nil {
			o.stream = res.stream
			switch r.name {
			case "subscribe", "unsubscribe", "subscribe_instance", "unsubscribe_instance":
				o.action = r.name
			default:
				if res.actions[r.name] != nil {
					o.action = r.name
				}
			}
		}
	}
	if c.srv.tracer == nil {
		return
	}
	var parent trace.SpanContext
	if c.traceParent != nil {
		parent = *c.traceParent
	}
	if r.traceparent != nil {
		if tp, ok := jsonString(r.traceparent); ok {
			if sc := trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})); sc.IsValid() {
				parent = sc
			}
		}
	}
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	attrs := []attribute.KeyValue{
		attribute.String("wsbridge.stream", o.stream),
		attribute.String("wsbridge.action", o.action),
		attribute.String("wsbridge.conn", c.connID()),
	}
	if r.requestID != nil {
		attrs = append(attrs, attribute.String("wsbridge.request_id", requestIDText(r.requestID)))
	}
	_, o.span = c.srv.tracer.Start(ctx, o.stream+" "+o.action, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start), trace.WithAttributes(attrs...))
}

// callContext is ctx with the request's span, the parent of the backend call's span.
func (r *request) callContext(ctx context.Context) context.Context {
	if r.obs.span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, r.obs.span)
}

// answered ends the request r with its reply's status.
func (c *conn) answered(r *request, status int) {
	if !r.obs.done {
		c.finish(&r.obs, r.requestID, status)
	}
}

// abandoned ends r, unless its reply was sent or it moved to a subscription: the
// connection ended before the reply.
func (c *conn) abandoned(r *request) { c.answered(r, 0) }

// movedTo moves the following of a subscribe, whose reply comes later, to its subscription.
func (r *request) movedTo(s *subscription) {
	if !r.obs.done {
		o := r.obs
		s.obs.Store(&o)
		r.obs.done = true
	}
}

// answered ends the subscribe that made s, if it is not answered yet (reply.go).
func (s *subscription) answered(status int) {
	if o := s.obs.Swap(nil); o != nil {
		s.conn.finish(o, s.requestID, status)
	}
}

// subObs is the following of a subscribe still waiting for its reply.
type subObs = atomic.Pointer[reqObs]

// finish records the request's metrics, ends its span and logs it: at debug, or at warn
// for a 5xx, which is the bridge's or the backend's failure rather than the client's.
func (c *conn) finish(o *reqObs, requestID []byte, status int) {
	o.done = true
	elapsed := time.Since(o.start)
	c.srv.metrics.requestDone(o.stream, o.action, status, elapsed.Seconds())
	if o.span != nil {
		o.span.SetAttributes(attribute.Int("wsbridge.response_status", status))
		switch {
		case status == 0:
			o.span.SetStatus(codes.Error, "the connection ended before the reply")
		case status >= 500:
			o.span.SetStatus(codes.Error, http.StatusText(status))
		}
		o.span.End()
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	if !c.srv.opts.logger.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestIDText(requestID)),
		slog.String("stream", o.stream),
		slog.String("action", o.action),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
	}
	if o.span != nil {
		attrs = append(attrs, slog.String("trace_id", o.span.SpanContext().TraceID().String()))
	}
	msg := "request"
	if status == 0 {
		msg = "request abandoned: the connection ended before the reply"
	}
	c.logger().LogAttrs(context.Background(), level, msg, attrs...)
}

// requestIDText is a raw request_id as text: a string's value, a number's digits.
func requestIDText(raw []byte) string {
	if raw == nil {
		return ""
	}
	if s, ok := jsonString(raw); ok {
		return s
	}
	return string(raw)
}

// replyStatus is the response_status of a successful call of a, as appendResponseReply
// writes it.
func replyStatus(a *action) int {
	if a.kind == kindCreate {
		return http.StatusCreated
	}
	return http.StatusOK
}
