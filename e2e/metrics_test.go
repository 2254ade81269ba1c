package e2e_test

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wsbridge/wsbridge/bridge"
)

// scrape returns /metrics as series → value, keyed by the series as written
// (`name{label="v",...}`, labels sorted by the Prometheus client), and the raw text.
func scrape(t *testing.T, e *env) (map[string]float64, string) {
	t.Helper()
	status, body, _ := httpGet(t, e.http.URL+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m, body
}

// metric is one series' value; a series not exposed is -1.
func metric(t *testing.T, e *env, series string) float64 {
	t.Helper()
	m, _ := scrape(t, e)
	if v, ok := m[series]; ok {
		return v
	}
	return -1
}

func TestMetricsCountUpstreamStreams(t *testing.T) {
	e := newEnv(t)
	a, b := e.dial(), e.dial()
	for _, c := range []*client{a, b} {
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}}), 200)
	}
	wantStatus(t, a.do("choices", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
	m, text := scrape(t, e)
	if _, _, h := httpGet(t, e.http.URL+"/metrics"); !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8") {
		t.Fatalf("content type %q, want the Prometheus text format", h.Get("Content-Type"))
	}
	// Each gauge has its HELP and TYPE lines, then its sample.
	for _, g := range []struct{ name, help string }{
		{"wsbridge_connections", "Open WebSocket connections."},
		{"wsbridge_subscriptions", "Client subscriptions."},
		{"wsbridge_upstream_streams", "Upstream Subscribe streams, shared by identical subscriptions."},
		{"wsbridge_outbound_queue_bytes", "Bytes waiting in the connections' outbound queues."},
	} {
		want := "# HELP " + g.name + " " + g.help + "\n# TYPE " + g.name + " gauge\n" + g.name + " "
		if !strings.Contains(text, want) {
			t.Fatalf("metrics lack %q:\n%s", want, text)
		}
	}
	// The Go runtime's and the process's collectors.
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes", "process_open_fds"} {
		if _, ok := m[name]; !ok {
			t.Fatalf("metrics lack %s:\n%s", name, text)
		}
	}
	for series, want := range map[string]float64{"wsbridge_connections": 2, "wsbridge_subscriptions": 3, "wsbridge_upstream_streams": 2} {
		if m[series] != want {
			t.Fatalf("%s = %v, want %v:\n%s", series, m[series], want, text)
		}
	}
	a.close()
	b.close()
	waitFor(t, "the connections, subscriptions, upstream streams and queued bytes to end", func() bool {
		m, _ := scrape(t, e)
		return m["wsbridge_connections"] == 0 && m["wsbridge_subscriptions"] == 0 &&
			m["wsbridge_upstream_streams"] == 0 && m["wsbridge_outbound_queue_bytes"] == 0
	})
}

// TestMetricsRequests: every request frame is counted once by stream, action and
// response_status, with its latency; streams and actions outside the catalog share the
// label "unknown", so clients cannot create series.
func TestMetricsRequests(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.createQuestion("Counted?")
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": "999999"}), 404)
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": "999998"}), 404)
	wantStatus(t, c.do("no-such-stream", map[string]any{"action": "retrieve", "pk": "1"}), 404)
	wantStatus(t, c.do("questions", map[string]any{"action": "no-such-action"}), 400)
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
	wantStatus(t, c.do("questions", map[string]any{"action": "unsubscribe", "data": map[string]any{"action": "create"}}), 200)

	// The metrics are recorded before the reply is queued: the replies above prove them.
	m, text := scrape(t, e)
	for series, want := range map[string]float64{
		`wsbridge_requests_total{action="create",status="201",stream="questions"}`:                 1,
		`wsbridge_requests_total{action="retrieve",status="404",stream="questions"}`:               2,
		`wsbridge_requests_total{action="unknown",status="404",stream="unknown"}`:                  1,
		`wsbridge_requests_total{action="unknown",status="400",stream="questions"}`:                1,
		`wsbridge_requests_total{action="subscribe",status="200",stream="questions"}`:              1,
		`wsbridge_requests_total{action="unsubscribe",status="200",stream="questions"}`:            1,
		`wsbridge_request_duration_seconds_count{action="retrieve",stream="questions"}`:            2,
		`wsbridge_request_duration_seconds_bucket{action="retrieve",stream="questions",le="+Inf"}`: 2,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if t.Failed() {
		t.Fatalf("metrics:\n%s", text)
	}
	if strings.Contains(text, "no-such") {
		t.Fatalf("a label holds a name the client made up:\n%s", text)
	}
}

// TestMetricsEventsAndReconnects: events are counted per subscriber they are queued to, and
// an upstream that breaks and is opened again counts a reconnect.
func TestMetricsEventsAndReconnects(t *testing.T) {
	e := newEnv(t)
	w, a, b := e.dial(), e.dial(), e.dial()
	for _, c := range []*client{a, b} {
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
	}
	w.createQuestion("Delivered twice?")
	for _, c := range []*client{a, b} {
		if f := c.next(); f.Payload["action"] != "create" {
			t.Fatalf("want the create event, got %s", f.raw)
		}
	}
	// The count is added just after the frames are queued: wait for it.
	waitFor(t, "2 events delivered", func() bool {
		return metric(t, e, `wsbridge_events_delivered_total{stream="questions"}`) == 2
	})

	e.backend.restart()
	for _, c := range []*client{a, b} {
		wantStatus(t, c.next(), 503) // the outage notice
	}
	waitFor(t, "a reconnect counted", func() bool {
		return metric(t, e, `wsbridge_upstream_reconnects_total{stream="questions"}`) >= 1
	})
}

// TestMetricsClosesAndRefusals: the connections the bridge closes are counted by close code
// (the same path counts 4008, see TestSubscribeSlowConsumer), and refused handshakes by
// reason, logged or not.
func TestMetricsClosesAndRefusals(t *testing.T) {
	e := newEnv(t)
	if v := metric(t, e, `wsbridge_closes_total{code="4008"}`); v != 0 {
		t.Fatalf(`wsbridge_closes_total{code="4008"} = %v before any close, want a series at 0`, v)
	}
	c := e.dial()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(); code != websocket.CloseUnsupportedData {
		t.Fatalf("close code %d, want 1003", code)
	}
	if v := metric(t, e, `wsbridge_closes_total{code="1003"}`); v != 1 {
		t.Fatalf(`wsbridge_closes_total{code="1003"} = %v, want 1`, v)
	}

	for range 3 {
		ws, resp, err := websocket.DefaultDialer.Dial(e.url, http.Header{"Origin": {"http://evil.test"}})
		if err == nil {
			ws.Close()
			t.Fatal("a cross-origin handshake was accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin handshake: %v, want HTTP 403", err)
		}
	}
	if v := metric(t, e, `wsbridge_handshake_refusals_total{reason="origin"}`); v != 3 {
		t.Fatalf(`wsbridge_handshake_refusals_total{reason="origin"} = %v, want 3`, v)
	}
}

// TestRequestWithoutReply: a request whose connection ends before its reply is counted with
// status "none", and its span ends too, as an error.
func TestRequestWithoutReply(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e, slow := newSlowEnv(t, bridge.WithTracerProvider(tp))
	c := e.dial()
	c.send("questions", map[string]any{"action": "retrieve", "pk": "1", "request_id": "gone"})
	waitRecv(t, "the call to reach the backend", slow.started)
	c.close()
	waitFor(t, `the request counted with status "none"`, func() bool {
		return metric(t, e, `wsbridge_requests_total{action="retrieve",status="none",stream="questions"}`) == 1
	})
	s := endedSpan(t, rec, "the request's span", func(s sdktrace.ReadOnlySpan) bool {
		return spanAttr(s, "wsbridge.request_id").AsString() == "gone"
	})
	if s.Status().Code != codes.Error {
		t.Fatalf("span status %v, want an error", s.Status())
	}
}

// TestFailedRequestLoggedAtWarn: a 5xx is the bridge's or the backend's failure, so its
// request line is logged at warn, seen at the default level.
func TestFailedRequestLoggedAtWarn(t *testing.T) {
	var logs lockedBuffer
	e, _ := newSlowEnv(t, bridge.WithCallTimeout(200*time.Millisecond),
		bridge.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	c := e.dial()
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": "1", "request_id": "late"}), 504)
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"late"`) {
			for _, want := range []string{`"level":"WARN"`, `"msg":"request"`, `"stream":"questions"`, `"action":"retrieve"`, `"status":504`, `"conn":"`} {
				if !strings.Contains(l, want) {
					t.Fatalf("request line %s lacks %s", l, want)
				}
			}
			return
		}
	}
	t.Fatalf("no line for the request:\n%s", logs.String())
}
