package e2e_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsCountUpstreamStreams(t *testing.T) {
	e := newEnv(t)
	metrics := func() string {
		t.Helper()
		resp, err := http.Get(e.http.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	a, b := e.dial(), e.dial()
	for _, c := range []*client{a, b} {
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}}), 200)
	}
	wantStatus(t, a.do("choices", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
	m := metrics()
	if _, _, h := httpGet(t, e.http.URL+"/metrics"); h.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("content type %q, want the Prometheus text format", h.Get("Content-Type"))
	}
	// Each gauge has its HELP and TYPE lines, then its sample.
	for _, g := range []struct{ name, help string }{
		{"wsbridge_connections", "Open WebSocket connections."},
		{"wsbridge_subscriptions", "Client subscriptions."},
		{"wsbridge_upstream_streams", "Upstream Subscribe streams, shared by identical subscriptions."},
		{"go_goroutines", "Goroutines of the bridge process: flat when connections are; growth is a leak."},
	} {
		want := "# HELP " + g.name + " " + g.help + "\n# TYPE " + g.name + " gauge\n" + g.name + " "
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	for _, want := range []string{"wsbridge_connections 2\n", "wsbridge_subscriptions 3\n", "wsbridge_upstream_streams 2\n"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	a.close()
	b.close()
	waitFor(t, "the connections, subscriptions and upstream streams to end", func() bool {
		m := metrics()
		return strings.Contains(m, "wsbridge_connections 0\n") && strings.Contains(m, "wsbridge_subscriptions 0\n") &&
			strings.Contains(m, "wsbridge_upstream_streams 0\n")
	})
}
