package e2e_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

// tracedBackend is the example backend recording the traceparent metadata of each unary
// call, by method.
type tracedBackend struct {
	*backend
	mu   sync.Mutex
	seen map[string][]string
}

func startTracedBackend(t *testing.T) *tracedBackend {
	t.Helper()
	tb := &tracedBackend{seen: map[string][]string{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		tb.mu.Lock()
		tb.seen[info.FullMethod] = append(tb.seen[info.FullMethod], md.Get("traceparent")...)
		tb.mu.Unlock()
		return handler(ctx, req)
	}
	srv, err := polls.Start(context.Background(), polls.Config{
		GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "polls.db"), Logger: quiet, UnaryInterceptor: record,
	})
	if err != nil {
		t.Fatal(err)
	}
	tb.backend = &backend{t: t, srv: srv, addr: lis.Addr().String()}
	t.Cleanup(tb.stop)
	return tb
}

func (tb *tracedBackend) traceparents(method string) []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.seen[method]...)
}

// newTracedEnv is a bridge with an in-memory span recorder in front of a traced backend.
func newTracedEnv(t *testing.T) (*env, *tracedBackend, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tb := startTracedBackend(t)
	return newEnvFor(t, tb.backend, bridge.WithTracerProvider(tp)), tb, rec
}

// endedSpan waits for an ended span that match accepts.
func endedSpan(t *testing.T, rec *tracetest.SpanRecorder, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	waitFor(t, what, func() bool {
		for _, s := range rec.Ended() {
			if match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

const tracedRetrieve = "/polls.v1.QuestionService/Retrieve"

// TestTracingPayloadTraceparent: a frame with payload.traceparent gets a server span with
// that parent and the stream, action and status; the backend call is a client span under
// it, and the backend receives the trace context as traceparent metadata.
func TestTracingPayloadTraceparent(t *testing.T) {
	e, tb, rec := newTracedEnv(t)
	c := e.dial()
	pk := c.createQuestion("Traced?")

	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": pk, "request_id": "t1",
		"traceparent": "00-" + traceID + "-" + spanID + "-01"}), 200)

	server := endedSpan(t, rec, "the retrieve's span", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "questions retrieve"
	})
	if got := server.Parent(); got.TraceID().String() != traceID || got.SpanID().String() != spanID || !got.IsRemote() {
		t.Fatalf("span parent %s/%s, want the payload's %s/%s", got.TraceID(), got.SpanID(), traceID, spanID)
	}
	if server.SpanKind() != trace.SpanKindServer {
		t.Fatalf("span kind %s, want server", server.SpanKind())
	}
	for key, want := range map[string]string{"wsbridge.stream": "questions", "wsbridge.action": "retrieve", "wsbridge.request_id": "t1"} {
		if got := spanAttr(server, key).AsString(); got != want {
			t.Fatalf("span attribute %s = %q, want %q", key, got, want)
		}
	}
	if got := spanAttr(server, "wsbridge.response_status").AsInt64(); got != 200 {
		t.Fatalf("span attribute wsbridge.response_status = %d, want 200", got)
	}
	if spanAttr(server, "wsbridge.conn").AsString() == "" {
		t.Fatal("span lacks the connection id")
	}

	client := endedSpan(t, rec, "the backend call's span", func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindClient && s.Name() == tracedRetrieve[1:] && s.Parent().SpanID() == server.SpanContext().SpanID()
	})
	if client.SpanContext().TraceID().String() != traceID {
		t.Fatalf("client span in trace %s, want %s", client.SpanContext().TraceID(), traceID)
	}
	for _, s := range rec.Ended() {
		if name := s.Name(); len(name) > 15 && name[:15] == "grpc.reflection" {
			t.Fatalf("discovery's reflection call was traced: %s", name)
		}
	}
	want := "00-" + traceID + "-" + client.SpanContext().SpanID().String() + "-01"
	if got := tb.traceparents(tracedRetrieve); len(got) != 1 || got[0] != want {
		t.Fatalf("the backend's Retrieve got traceparent %q, want [%s]", got, want)
	}
}

// TestTracingHandshakeTraceparent: without payload.traceparent, a request's span is a child
// of the handshake's traceparent header; an invalid payload.traceparent is ignored.
func TestTracingHandshakeTraceparent(t *testing.T) {
	e, _, rec := newTracedEnv(t)
	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		spanID  = "b7ad6b7169203331"
	)
	c := dialURL(t, e.url, http.Header{"Traceparent": {"00-" + traceID + "-" + spanID + "-01"}})
	wantStatus(t, c.do("questions", map[string]any{"action": "list", "request_id": "h1"}), 200)
	wantStatus(t, c.do("questions", map[string]any{"action": "list", "request_id": "h2", "traceparent": "not a traceparent"}), 200)
	for _, id := range []string{"h1", "h2"} {
		s := endedSpan(t, rec, "the list's span "+id, func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == "questions list" && spanAttr(s, "wsbridge.request_id").AsString() == id
		})
		if got := s.Parent(); got.TraceID().String() != traceID || got.SpanID().String() != spanID {
			t.Fatalf("%s: span parent %s/%s, want the handshake's %s/%s", id, got.TraceID(), got.SpanID(), traceID, spanID)
		}
	}
}
