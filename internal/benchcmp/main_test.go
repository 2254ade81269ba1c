package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain also plays the backend, bridge and gateway roles: the benchmark starts its own
// executable again for each, and under go test that executable is the test binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// TestRunSmall runs the whole benchmark briefly so that the program keeps working.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the backend, the bridge and every transport")
	}
	var out bytes.Buffer
	args := []string{"-duration", "300ms", "-rounds", "2", "-warmup", "50ms", "-concurrency", "4", "-ws-conns", "2", "-seed", "5"}
	if err := run(args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	for _, name := range transportNames {
		for _, call := range allCalls {
			found := false
			for _, line := range strings.Split(out.String(), "\n") {
				if f := strings.Fields(strings.TrimPrefix(line, name)); strings.HasPrefix(line, name) && len(f) == 9 && f[0] == call {
					found = true
					if f[4] != "0" {
						t.Errorf("%s %s: %s errors", name, call, f[4])
					}
				}
			}
			if !found {
				t.Errorf("no row for %s %s", name, call)
			}
		}
	}
	for _, want := range []string{"bridge/REST ", "bridge/REST proxy ", "bridge/gRPC ", "bridge/grpc-gateway proxy "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q ratio", want)
		}
	}
}

// TestRunJSON checks -json: one object per row, the proxy's figures null exactly where no
// proxy process stands between client and backend.
func TestRunJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the backend, the bridge and every transport")
	}
	var out bytes.Buffer
	args := []string{"-json", "-duration", "200ms", "-warmup", "0s", "-concurrency", "2", "-ws-conns", "1", "-seed", "3", "-calls", "retrieve"}
	if err := run(args, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(allTransports) {
		t.Fatalf("%d lines, want one per transport:\n%s", len(lines), out.String())
	}
	for _, line := range lines {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		for _, k := range []string{"transport", "call", "rps", "p50_ms", "p99_ms", "errors", "proxy_cpu_us"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: no %q", line, k)
			}
		}
		proxied := r["transport"] == "ws" || r["transport"] == "rest-proxy"
		for _, k := range []string{"proxy_cpu_us", "proxy_reads_per_req", "proxy_writes_per_req"} {
			if _, isNum := r[k].(float64); isNum != proxied {
				t.Errorf("%s: %s %v", line, k, r[k])
			}
		}
		// Every request through a proxy is written to it and read from it at least once,
		// so its writes are never none.
		if w, _ := r["proxy_writes_per_req"].(float64); proxied && w <= 0 {
			t.Errorf("%s: the proxy made no writes", line)
		}
		if r["errors"] != 0.0 || r["rps"] == 0.0 {
			t.Errorf("%s: errors or no requests", line)
		}
	}
}

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.50, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := percentile(lat, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %d", got)
	}
	if got := percentile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("percentile([7], .99) = %d", got)
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"-transports", "ws, grpc,ws", "-calls", "create"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.transports, ",") != "grpc,ws" || strings.Join(c.calls, ",") != "create" {
		t.Errorf("transports %v calls %v", c.transports, c.calls)
	}
	for _, bad := range [][]string{
		{"-transports", "http3"},
		{"-calls", ""},
		{"-ws-conns", "64"},
		{"-concurrency", "0"},
		{"-duration", "1s", "-rounds", "50"},
		{"extra"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}
