package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// TestShutdownUnderLoad: Shutdown while several clients send requests as fast as the
// bridge reads them. Each run must end every connection with 1001, answer no request
// twice, answer every request it reads after the drain started with 503 (and every request
// followed by a ping it answered), and return cleanly; 50 runs, 4 connections with 16 requests in flight each, since the race it guards against (a request starting while Shutdown
// waits for the requests in flight) shows only now and then.
func TestShutdownUnderLoad(t *testing.T) {
	b := startBackend(t)
	runs := 50
	if testing.Short() {
		runs = 10
	}
	for i := range runs {
		shutdownUnderLoad(t, b, i)
		if t.Failed() {
			return
		}
	}
}

func shutdownUnderLoad(t *testing.T, b *backend, run int) {
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: b.addr}), bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"

	const conns = 4
	type result struct {
		code     int
		replies  map[string]int // request_id → replies
		bad      []string
		lastPong int // the highest request number followed by a ping the bridge answered
	}
	results := make([]result, conns)
	busy := make(chan struct{}, conns) // one value per connection that has had replies
	var wg sync.WaitGroup
	for i := range conns {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("run %d: dial: %v", run, err)
		}
		res := &results[i]
		res.replies = map[string]int{}
		res.lastPong = -1
		// Each request is followed by a ping carrying its number. The bridge reads frames in
		// order and answers pings only until it decides to close, so a pong proves that the
		// requests before it were read while they could still be answered.
		ws.SetPongHandler(func(data string) error {
			if n, err := strconv.Atoi(data); err == nil && n > res.lastPong {
				res.lastPong = n
			}
			return nil
		})
		wg.Add(2)
		stop := make(chan struct{})
		slots := make(chan struct{}, 16) // requests in flight on this connection
		go func() {                      // writer: keeps 16 requests in flight until the connection ends
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case slots <- struct{}{}:
				}
				msg := fmt.Sprintf(`{"stream":"questions","payload":{"action":"retrieve","pk":1,"request_id":"c%d-%d"}}`, i, n)
				if ws.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
					return
				}
				if ws.WriteControl(websocket.PingMessage, []byte(strconv.Itoa(n)), time.Now().Add(10*time.Second)) != nil {
					return
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			defer close(stop)
			defer ws.Close()
			signalled := false
			_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				_, m, err := ws.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						res.code = ce.Code
					} else {
						res.bad = append(res.bad, "read: "+err.Error())
					}
					return
				}
				var f struct {
					Payload struct {
						RequestID string   `json:"request_id"`
						Status    int      `json:"response_status"`
						Errors    []string `json:"errors"`
					} `json:"payload"`
				}
				if err := json.Unmarshal(m, &f); err != nil {
					res.bad = append(res.bad, string(m))
					continue
				}
				p := f.Payload
				res.replies[p.RequestID]++
				<-slots
				switch {
				case p.Status == 404: // no such question: the backend answered
				case p.Status == 429 && len(p.Errors) == 1 && p.Errors[0] == "Too many requests.": // the rate limit
				case p.Status == 503 && len(p.Errors) == 1 && p.Errors[0] == "The bridge is shutting down.":
				default:
					res.bad = append(res.bad, string(m))
				}
				if !signalled {
					signalled = true
					busy <- struct{}{}
				}
			}
		}()
	}
	for range conns {
		waitRecv(t, "every connection to have replies", busy)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("run %d: Shutdown: %v", run, err)
	}
	wg.Wait()
	for i, r := range results {
		if r.code != websocket.CloseGoingAway {
			t.Errorf("run %d, connection %d: close code %d, want 1001", run, i, r.code)
		}
		for id, n := range r.replies {
			if n != 1 {
				t.Errorf("run %d: request %s answered %d times", run, id, n)
			}
		}
		for n := 0; n <= r.lastPong; n++ {
			if id := fmt.Sprintf("c%d-%d", i, n); r.replies[id] == 0 {
				t.Errorf("run %d: request %s was read before a ping the bridge answered, but got no reply", run, id)
			}
		}
		if len(r.bad) > 0 {
			t.Errorf("run %d, connection %d: unexpected frames: %q", run, i, r.bad[:min(len(r.bad), 3)])
		}
	}
}

// shutdownStarted polls c until a request is answered 503 "shutting down": from then on
// the drain has started. Before, the slow backend answers list with 501 (unimplemented).
func shutdownStarted(t *testing.T, c *client) {
	t.Helper()
	waitFor(t, "a request to be refused as shutting down", func() bool {
		f := c.do("questions", map[string]any{"action": "list"})
		if f.status() == 503 {
			wantErrors(t, f, 503, `["The bridge is shutting down."]`)
			return true
		}
		wantStatus(t, f, 501)
		return false
	})
}

// TestShutdownRefusesWhileDraining: while requests in flight finish, /readyz is 503 and a
// new handshake gets HTTP 503 from the bridge itself (its listener is still open, as the
// command keeps it until Shutdown returns), and so does one after Shutdown returned.
func TestShutdownRefusesWhileDraining(t *testing.T) {
	logs := &syncBuffer{}
	e, slow := newSlowEnv(t, bridge.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if code, body, _ := httpGet(t, e.http.URL+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("readyz before shutdown: %d %q", code, body)
	}
	c := e.dial()
	c.send("questions", map[string]any{"action": "retrieve", "pk": "5", "request_id": "inflight"})
	waitRecv(t, "the call to reach the backend", slow.started)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- e.bridge.Shutdown(ctx)
	}()
	shutdownStarted(t, c)

	if code, body, _ := httpGet(t, e.http.URL+"/readyz"); code != 503 || body != "shutting down\n" {
		t.Fatalf("readyz while draining: %d %q", code, body)
	}
	if e.bridge.Ready() {
		t.Fatal("Ready() is true while draining")
	}
	if code, body := dialRefused(t, e.url); code != 503 || body != "shutting down" {
		t.Fatalf("handshake while draining: HTTP %d %q, want 503", code, body)
	}
	if !strings.Contains(logs.String(), "handshake refused") || !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("the refused handshake was not logged:\n%s", logs)
	}

	slow.releaseAll()
	f := c.next()
	wantStatus(t, f, 200)
	if f.Payload["request_id"] != "inflight" {
		t.Fatalf("got %s", f.raw)
	}
	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := waitRecv(t, "Shutdown to return", done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code, _ := dialRefused(t, e.url); code != 503 {
		t.Fatalf("handshake after shutdown: HTTP %d, want 503", code)
	}
}

// TestShutdownDrainTimeout: a call stuck past Shutdown's deadline is cancelled without a
// reply, Shutdown still returns (with the context's error) and logs it, and the client
// gets 1001.
func TestShutdownDrainTimeout(t *testing.T) {
	logs := &syncBuffer{}
	e, slow := newSlowEnv(t, bridge.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	c := e.dial()
	c.send("questions", map[string]any{"action": "retrieve", "pk": "5", "request_id": "stuck"})
	waitRecv(t, "the call to reach the backend", slow.started)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.bridge.Shutdown(ctx) }()
	shutdownStarted(t, c)
	cancel() // the drain's deadline passes with the call still stuck

	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := waitRecv(t, "Shutdown to return", done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown returned %v, want the context's error", err)
	}
	waitFor(t, "the backend call to be cancelled", func() bool { return slow.cancelled.Load() == 1 })
	// The close frame came after everything the bridge sent: no reply to the stuck call.
	select {
	case f := <-c.frames:
		t.Fatalf("frame for a cancelled call: %s", f.raw)
	default:
	}
	if !strings.Contains(logs.String(), "drain timed out") || !strings.Contains(logs.String(), "requests=1") {
		t.Fatalf("the drain timeout was not logged:\n%s", logs)
	}
}
