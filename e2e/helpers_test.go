// Package e2e_test runs the real bridge in front of the real example backend on loopback
// and talks WebSocket to it.
package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// backend is the example backend running in-process on a loopback port.
type backend struct {
	t    *testing.T
	addr string
	db   string
	srv  *polls.Server
}

// startBackend starts the example backend on a fresh port with a fresh database.
func startBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{t: t, db: filepath.Join(t.TempDir(), "polls.db")}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *backend) start(addr string) {
	b.t.Helper()
	var lis net.Listener
	var err error
	for i := 0; i < 50; i++ { // a restarted port can take a moment to be free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("listen %s: %v", addr, err)
	}
	srv, err := polls.Start(context.Background(), polls.Config{GRPCListener: lis, DBPath: b.db, Logger: quiet})
	if err != nil {
		b.t.Fatalf("start backend: %v", err)
	}
	b.srv, b.addr = srv, lis.Addr().String()
}

// stop stops the backend at once; it is safe to call twice.
func (b *backend) stop() {
	if b.srv != nil {
		b.srv.Stop()
		b.srv = nil
	}
}

// restart stops the backend and starts it again on the same address and database.
func (b *backend) restart() {
	b.stop()
	b.start(b.addr)
}

// env is a bridge in front of a backend.
type env struct {
	t       *testing.T
	backend *backend
	bridge  *bridge.Server
	http    *httptest.Server
	url     string // ws://.../ws
	once    sync.Once
}

// newEnv starts a backend and a bridge in front of it, ready.
func newEnv(t *testing.T, opts ...bridge.Option) *env {
	t.Helper()
	return newEnvFor(t, startBackend(t), opts...)
}

func newEnvFor(t *testing.T, b *backend, opts ...bridge.Option) *env {
	t.Helper()
	return newEnvWith(t, b, bridge.Backend{Target: b.addr}, opts...)
}

// newEnvWith is newEnvFor with the bridge's backend configured by be (TLS, for instance).
func newEnvWith(t *testing.T, b *backend, be bridge.Backend, opts ...bridge.Option) *env {
	t.Helper()
	all := append([]bridge.Option{
		bridge.WithBackend(be),
		bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(200 * time.Millisecond),
	}, opts...)
	srv, err := bridge.New(all...)
	if err != nil {
		t.Fatalf("bridge.New: %v", err)
	}
	e := &env{t: t, backend: b, bridge: srv}
	e.http = httptest.NewServer(srv)
	e.url = "ws" + strings.TrimPrefix(e.http.URL, "http") + "/ws"
	t.Cleanup(e.close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatalf("bridge not ready: %v", err)
	}
	return e
}

// close shuts the bridge down; it is safe to call twice.
func (e *env) close() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.http.Listener.Close()
		if err := e.bridge.Shutdown(ctx); err != nil {
			e.t.Errorf("bridge shutdown: %v", err)
		}
		e.http.Close()
	})
}

// frame is a decoded frame from the bridge.
type frame struct {
	Stream  any            `json:"stream"`
	Payload map[string]any `json:"payload"`
	raw     []byte
}

func (f frame) status() int {
	n, _ := f.Payload["response_status"].(float64)
	return int(n)
}

func (f frame) data() map[string]any {
	m, _ := f.Payload["data"].(map[string]any)
	return m
}

func (f frame) list() []any {
	l, _ := f.Payload["data"].([]any)
	return l
}

func (f frame) errors() string {
	b, _ := json.Marshal(f.Payload["errors"])
	return string(b)
}

// client is a WebSocket client that reads in the background.
type client struct {
	t      *testing.T
	ws     *websocket.Conn
	frames chan frame
	done   chan struct{}
	closed atomic.Value // *websocket.CloseError once the bridge closed the connection
	seq    atomic.Int64
	wmu    sync.Mutex
}

func (e *env) dial() *client {
	e.t.Helper()
	return dialURL(e.t, e.url, nil)
}

func dialURL(t *testing.T, url string, header http.Header) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	c := &client{t: t, ws: ws, frames: make(chan frame, 4096), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				c.closed.Store(ce)
			}
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Errorf("bridge sent invalid JSON %q: %v", b, err)
			return
		}
		f.raw = b
		select {
		case c.frames <- f:
		default:
			c.t.Errorf("test client buffer full")
			return
		}
	}
}

func (c *client) close() {
	_ = c.ws.Close()
	<-c.done
}

// sendRaw writes one text frame.
func (c *client) sendRaw(s string) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes a request and returns its request_id.
func (c *client) send(stream string, payload map[string]any) string {
	c.t.Helper()
	if _, ok := payload["request_id"]; !ok {
		payload["request_id"] = fmt.Sprintf("r%d", c.seq.Add(1))
	}
	b, err := json.Marshal(map[string]any{"stream": stream, "payload": payload})
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
	return fmt.Sprint(payload["request_id"])
}

// next returns the next frame, failing the test after a while.
func (c *client) next() frame {
	c.t.Helper()
	select {
	case f := <-c.frames:
		return f
	case <-time.After(waitLimit):
		c.t.Fatalf("no frame from the bridge within %s", waitLimit)
		return frame{}
	}
}

// do sends a request and waits for its reply, which must be the next frame.
func (c *client) do(stream string, payload map[string]any) frame {
	c.t.Helper()
	id := c.send(stream, payload)
	f := c.next()
	if got := fmt.Sprint(f.Payload["request_id"]); got != id {
		c.t.Fatalf("reply for request_id %s, want %s: %s", got, id, f.raw)
	}
	return f
}

// closeCode waits for the bridge to close the connection and returns the close code.
func (c *client) closeCode() int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitLimit):
		c.t.Fatalf("connection not closed within %s", waitLimit)
	}
	if ce, ok := c.closed.Load().(*websocket.CloseError); ok {
		return ce.Code
	}
	return -1
}

// wantStatus fails unless f has the status.
func wantStatus(t *testing.T, f frame, status int) {
	t.Helper()
	if f.status() != status {
		t.Fatalf("response_status %d, want %d: %s", f.status(), status, f.raw)
	}
}

// wantErrors fails unless f's errors list encodes to want.
func wantErrors(t *testing.T, f frame, status int, want string) {
	t.Helper()
	wantStatus(t, f, status)
	if got := f.errors(); got != want {
		t.Fatalf("errors %s, want %s: %s", got, want, f.raw)
	}
	if f.Payload["data"] != nil {
		t.Fatalf("data %v on an error, want null", f.Payload["data"])
	}
}

// createQuestion creates a question and returns its id as the bridge writes it.
func (c *client) createQuestion(text string) string {
	c.t.Helper()
	f := c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": text}})
	wantStatus(c.t, f, 201)
	return f.data()["id"].(string)
}
