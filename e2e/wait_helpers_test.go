package e2e_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitRecv waits for a value on ch, failing the test after a generous timeout.
func waitRecv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// barrier makes a round trip on c that reaches no backend (an unknown stream, 404) and
// returns the frames that arrived before its reply: anything the bridge had queued for c
// before it read the barrier request.
func (c *client) barrier() []frame {
	c.t.Helper()
	id := c.send("no-such-stream", map[string]any{"action": "barrier"})
	var before []frame
	for {
		f := c.next()
		if f.Payload["request_id"] == id && f.Payload["action"] == "barrier" {
			wantErrors(c.t, f, 404, `["Unknown stream."]`)
			return before
		}
		before = append(before, f)
	}
}

// httpGet returns the status and body of a GET.
func httpGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// dialRefused dials url and returns the HTTP status of the refused handshake; it fails
// the test if the handshake succeeds or no HTTP answer comes.
func dialRefused(t *testing.T, url string) (int, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil {
		ws.Close()
		t.Fatalf("handshake to %s succeeded, want it refused", url)
	}
	if resp == nil {
		t.Fatalf("handshake to %s failed without an HTTP answer: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
