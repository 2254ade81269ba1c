package bridge

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkIdleConnection measures what an idle WebSocket connection costs the bridge:
// heap and goroutine stacks in use, per connection, after a GC. The clients are bare TCP
// connections that did the handshake by hand, so they add only a few hundred bytes each.
// The design target is under 10 KiB.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 2000
	srv, err := New(WithBackend(Backend{Target: "127.0.0.1:1"}), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithMaxConnections(2*n))
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(c, 256)
		status, err := r.ReadString('\n')
		if err != nil || !strings.Contains(status, " 101 ") {
			b.Fatalf("handshake: %q %v", status, err)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if line == "\r\n" {
				return c
			}
		}
	}
	// Warm up pools and the runtime before the baseline.
	conns = append(conns, dial())

	b.ReportAllocs()
	for b.Loop() {
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		conns = append(conns, dial())
	}
	deadline := time.Now().Add(30 * time.Second)
	for srv.Stats().Connections < n+1 {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d connections registered after 30s", srv.Stats().Connections, n+1)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(used/n, "bytes/conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-bytes/conn")
}
