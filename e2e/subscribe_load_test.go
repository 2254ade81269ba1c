package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// Many subscribers and slow subscribers.

// subLightConn is a bare WebSocket client for tests with many connections: no background reader
// and no frame buffer, so a thousand of them stay cheap.
type subLightConn struct {
	ws *websocket.Conn
	id string // its subscription's request_id
}

// event is the part of an event frame the load tests look at.
type subEventFrame struct {
	Stream  string `json:"stream"`
	Payload struct {
		Action         string          `json:"action"`
		PK             string          `json:"pk"`
		RequestID      string          `json:"request_id"`
		Model          string          `json:"model"`
		ResponseStatus *int            `json:"response_status"`
		Data           json.RawMessage `json:"data"`
	} `json:"payload"`
}

func (ev *subEventFrame) questionText() string {
	var q struct {
		Text string `json:"question_text"`
	}
	_ = json.Unmarshal(ev.Payload.Data, &q)
	return q.Text
}

var subLightDialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}

// subDialLight connects and subscribes to updates of question pk, waiting for the 200.
func subDialLight(ctx context.Context, url, id, pk string) (*subLightConn, error) {
	ws, _, err := subLightDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c := &subLightConn{ws: ws, id: id}
	if err := c.subscribe(pk); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

func (c *subLightConn) subscribe(pk string) error {
	req := fmt.Sprintf(`{"stream":"questions","payload":{"action":"subscribe","pk":%q,"data":{"action":"update"},"request_id":%q}}`, pk, c.id)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		return err
	}
	ev, err := c.read(10 * time.Second)
	if err != nil {
		return err
	}
	if ev.Payload.ResponseStatus == nil || *ev.Payload.ResponseStatus != 200 || ev.Payload.RequestID != c.id {
		return fmt.Errorf("subscribe %s: not a 200 reply for it", c.id)
	}
	return nil
}

func (c *subLightConn) read(timeout time.Duration) (*subEventFrame, error) {
	if err := c.ws.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	ev := new(subEventFrame)
	if err := json.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("invalid JSON %q: %w", b, err)
	}
	return ev, nil
}

// readUpdates reads n update events of question pk, which must carry texts
// text(0)..text(n-1) in that order.
func (c *subLightConn) readUpdates(pk string, n int, text func(int) string) error {
	for i := range n {
		ev, err := c.read(20 * time.Second)
		if err != nil {
			return fmt.Errorf("%s: event %d: %w", c.id, i, err)
		}
		p := &ev.Payload
		if ev.Stream != "questions" || p.Action != "update" || p.PK != pk || p.RequestID != c.id ||
			p.Model != subQuestionModel || p.ResponseStatus != nil {
			return fmt.Errorf("%s: event %d is not an update of %s for it: %+v", c.id, i, pk, ev)
		}
		if got, want := ev.questionText(), text(i); got != want {
			return fmt.Errorf("%s: event %d has %q, want %q (lost or out of order)", c.id, i, got, want)
		}
	}
	return nil
}

// subForEach runs fn(i) for i in [0, n) on workers goroutines and returns the first error.
func subForEach(n, workers int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// TestSubscribeFanOut: a thousand clients with the same subscription share one upstream
// stream and all receive every event, in order.
func TestSubscribeFanOut(t *testing.T) {
	const (
		clients = 1000
		updates = 20
	)
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Fan out?")

	conns := make([]*subLightConn, clients)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.ws.Close()
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := subForEach(clients, 16, func(i int) (err error) {
		conns[i], err = subDialLight(ctx, e.url, fmt.Sprintf("c%d", i), q)
		return err
	})
	if err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	if n := e.bridge.Stats().UpstreamStreams; n != 1 {
		t.Fatalf("%d clients with the same subscription use %d upstream streams, want 1", clients, n)
	}

	text := func(i int) string { return fmt.Sprintf("Fan out, version %02d?", i) }
	readers := make(chan error, 1)
	go func() {
		readers <- subForEach(clients, 64, func(i int) error { return conns[i].readUpdates(q, updates, text) })
	}()
	for i := range updates {
		w.subUpdate(q, text(i))
	}
	if err := <-readers; err != nil {
		t.Fatal(err)
	}
	if n := e.bridge.Stats().UpstreamStreams; n != 1 {
		t.Fatalf("%d upstream streams after the events, want 1", n)
	}

	for _, c := range conns {
		c.ws.Close()
	}
	subWaitUpstreams(t, e, 0)
}

// subSmallBufferListener shrinks the kernel send buffer of the bridge's side of each connection,
// so a client that does not read fills the bridge's outbound queue after a few kilobytes
// instead of after the megabytes loopback sockets can otherwise absorb.
type subSmallBufferListener struct{ net.Listener }

func (l subSmallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4 << 10)
	}
	return c, err
}

// smallBufferServer serves the env's bridge on a second listener whose connections have small
// kernel buffers on both sides (subSmallBufferListener, and a 4 KiB receive buffer on the
// client's side), so that a client that stops reading backs the bridge up quickly. It returns
// that server's WebSocket URL and a dialer for it.
func (e *env) smallBufferServer() (string, websocket.Dialer) {
	hs := httptest.NewUnstartedServer(e.bridge)
	hs.Listener = subSmallBufferListener{hs.Listener}
	hs.Start()
	e.t.Cleanup(hs.Close)
	d := subLightDialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", d
}

// TestSubscribeSlowConsumer: a subscriber that does not read is disconnected with 4008 when
// its outbound queue overflows, and the other subscribers get every event regardless.
func TestSubscribeSlowConsumer(t *testing.T) {
	const (
		fast    = 5
		updates = 100
		// The slow client's subscriptions: each gets its own copy of every event, so the
		// slow client is sent 20 times what a fast one is. A fast subscriber could not
		// overflow its queue even if it read nothing until the last update.
		slowSubs = 20
		queue    = 64 << 10
	)
	// The close frame waits for the slow client to read what is stuck in the socket, which it
	// does only once the fast subscribers are done: give it ample time on a loaded machine.
	e := newEnv(t, bridge.WithOutboundQueue(queue), bridge.WithWriteTimeout(30*time.Second))
	w := e.dial()
	q := w.createQuestion("Slow?")

	// The slow client reaches the same bridge through a listener with small socket buffers
	// and has a small receive buffer itself.
	slowURL, d := e.smallBufferServer()
	ws, _, err := d.Dial(slowURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	slow := &subLightConn{ws: ws}
	for i := range slowSubs {
		slow.id = fmt.Sprintf("slow%d", i)
		if err := slow.subscribe(q); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fasts := make([]*subLightConn, fast)
	for i := range fasts {
		if fasts[i], err = subDialLight(ctx, e.url, fmt.Sprintf("fast%d", i), q); err != nil {
			t.Fatal(err)
		}
		defer fasts[i].ws.Close()
	}
	subWaitUpstreams(t, e, 1)

	// 200 characters: as large as a question gets.
	text := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("x", 197) }
	readers := make(chan error, 1)
	go func() {
		readers <- subForEach(fast, fast, func(i int) error { return fasts[i].readUpdates(q, updates, text) })
	}()
	for i := range updates {
		w.subUpdate(q, text(i))
	}
	if err := <-readers; err != nil {
		t.Fatalf("a fast subscriber missed events: %v", err)
	}

	// Now read what the slow client was sent: a gapless prefix of its events, then the close.
	var got int
	for {
		ev, err := slow.read(10 * time.Second)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != bridge.CloseSlowConsumer {
				t.Fatalf("slow consumer: %v after %d frames, want close code %d", err, got, bridge.CloseSlowConsumer)
			}
			break
		}
		if want := text(got / slowSubs); ev.Payload.Action != "update" || ev.questionText() != want {
			t.Fatalf("slow consumer frame %d: %s %q, want update %q", got, ev.Payload.Action, ev.questionText(), want)
		}
		if want := fmt.Sprintf("slow%d", got%slowSubs); ev.Payload.RequestID != want {
			t.Fatalf("slow consumer frame %d for %s, want %s", got, ev.Payload.RequestID, want)
		}
		got++
	}
	if got >= updates*slowSubs {
		t.Fatalf("the slow consumer got all %d events and was still closed", got)
	}
	if v := metric(t, e, `wsbridge_closes_total{code="4008"}`); v != 1 { // metrics_test.go
		t.Fatalf(`wsbridge_closes_total{code="4008"} = %v, want 1`, v)
	}
	t.Logf("slow consumer cut off after %d of %d frames", got, updates*slowSubs)

	// The fast subscribers are unaffected afterwards too.
	w.subUpdate(q, text(updates))
	for _, c := range fasts {
		if err := c.readUpdates(q, 1, func(int) string { return text(updates) }); err != nil {
			t.Fatal(err)
		}
	}
}
