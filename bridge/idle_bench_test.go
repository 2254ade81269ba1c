package bridge_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/bridge/jwtauth"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

// BenchmarkIdleConnection measures what an idle WebSocket connection costs the bridge:
// heap and goroutine stacks in use, per connection, after a GC. The clients are bare TCP
// connections that did the handshake by hand, so they add only a few hundred bytes each.
// The design target is under 10 KiB.
func BenchmarkIdleConnection(b *testing.B) {
	const n = 2000
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: "127.0.0.1:1"}), bridge.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		bridge.WithMaxConnections(2*n))
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

	dial := func() net.Conn { return dialRaw(b, addr) }
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

// dialRaw does a WebSocket handshake by hand on a bare TCP connection.
func dialRaw(b *testing.B, addr string) net.Conn { return dialRawToken(b, addr, "") }

// dialRawToken is dialRaw with a bearer token, unless token is empty.
func dialRawToken(b *testing.B, addr, token string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+auth+"\r\n")
	if err != nil {
		b.Fatal(err)
	}
	// Byte by byte, so that nothing after the handshake's end is read into a buffer.
	var head []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := io.ReadFull(c, one); err != nil {
			b.Fatalf("handshake: %q %v", head, err)
		}
		head = append(head, one[0])
	}
	if !bytes.Contains(head, []byte(" 101 ")) {
		b.Fatalf("handshake: %q", head)
	}
	return c
}

// BenchmarkIdleSubscribedConnection is BenchmarkIdleConnection for connections that each
// subscribed, all to the same updates of one question (one shared upstream), and got the
// 200: the subscription's state is counted with the connection's (issue 11 §4). In the
// signed-in run every connection carries its own HS256 JWT, verified by package jwtauth.
func BenchmarkIdleSubscribedConnection(b *testing.B) {
	b.Run("anonymous", func(b *testing.B) { benchIdleSubscribed(b, false) })
	b.Run("signed-in", func(b *testing.B) { benchIdleSubscribed(b, true) })
}

func benchIdleSubscribed(b *testing.B, signedIn bool) {
	const n = 2000
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	backend, err := polls.Start(ctx, polls.Config{GRPCListener: lis, DBPath: filepath.Join(b.TempDir(), "polls.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Stop()
	opts := []bridge.Option{bridge.WithBackend(bridge.Backend{Target: lis.Addr().String()}), bridge.WithLogger(quiet), bridge.WithDiscoveryRetry(100 * time.Millisecond),
		bridge.WithMaxConnections(2 * n)}
	secret := []byte("idle-benchmark-secret-of-32-bytes!")
	if signedIn {
		auth, err := jwtauth.New(ctx, jwtauth.Config{Secret: secret})
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, bridge.WithAuthenticator(auth))
	}
	srv, err := bridge.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	if err := srv.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
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
	// A client frame, masked with the zero key: the payload goes as is.
	sub := []byte(`{"stream":"questions","payload":{"action":"subscribe","pk":"1","data":{"action":"update"},"request_id":"s1"}}`)
	frame := append([]byte{0x81, 0x80 | byte(len(sub)), 0, 0, 0, 0}, sub...)
	reply := make([]byte, 4096)
	users := 0
	subscribe := func() net.Conn {
		token := ""
		if signedIn {
			users++
			token = hs256(secret, fmt.Sprintf("user-%d", users))
		}
		c := dialRawToken(b, addr, token)
		if _, err := c.Write(frame); err != nil {
			b.Fatal(err)
		}
		var got []byte
		for !bytes.Contains(got, []byte(`"request_id":"s1"`)) {
			k, err := c.Read(reply)
			if err != nil {
				b.Fatalf("subscribe: %q %v", got, err)
			}
			got = append(got, reply[:k]...)
		}
		if !bytes.Contains(got, []byte(`"response_status":200`)) {
			b.Fatalf("subscribe: %q", got)
		}
		return c
	}
	conns = append(conns, subscribe()) // the upstream, pools and the runtime, before the baseline

	b.ReportAllocs()
	for b.Loop() {
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		conns = append(conns, subscribe())
	}
	if st := srv.Stats(); st.Subscriptions != n+1 || st.UpstreamStreams != 1 {
		b.Fatalf("%+v, want %d subscriptions on 1 upstream", st, n+1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(used/n, "bytes/conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack-bytes/conn")
}

// hs256 is a JWT for sub, valid for a day.
func hs256(secret []byte, sub string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"sub": sub, "exp": time.Now().Add(24 * time.Hour).Unix()})
	msg := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}
