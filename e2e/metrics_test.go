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
	for _, want := range []string{"wsbridge_connections 2\n", "wsbridge_subscriptions 3\n", "wsbridge_upstream_streams 2\n"} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q:\n%s", want, m)
		}
	}
	a.close()
	b.close()
	waitFor(t, "the upstream streams to end", func() bool {
		return strings.Contains(metrics(), "wsbridge_upstream_streams 0\n")
	})
}
