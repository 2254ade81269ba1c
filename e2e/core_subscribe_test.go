package e2e_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// Subscriptions in order, and upstream streams that fail in the ways real backends do.

// TestSubscribeUnsubscribeBackToBack: a client that drops a subscription before it is
// confirmed (the TypeScript client does) sends subscribe and unsubscribe back to back.
// They take effect in order: subscribe 200, then unsubscribe 200 naming it, and nothing
// is left behind.
func TestSubscribeUnsubscribeBackToBack(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	const pairs = 150
	acts := []string{"create", "update", "delete"}
	for i := range pairs {
		s := fmt.Sprintf("s%d", i)
		c.send("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": acts[i%3]}, "request_id": s})
		c.send("questions", map[string]any{"action": "unsubscribe", "data": map[string]any{"request_id": s}, "request_id": fmt.Sprintf("u%d", i)})
	}
	for i := range pairs {
		s := fmt.Sprintf("s%d", i)
		f := c.next()
		if f.Payload["action"] != "subscribe" || f.Payload["request_id"] != s {
			t.Fatalf("pair %d: want the subscribe reply of %s, got %s", i, s, f.raw)
		}
		wantStatus(t, f, 200)
		f = c.next()
		if f.Payload["request_id"] != fmt.Sprintf("u%d", i) {
			t.Fatalf("pair %d: want the unsubscribe reply, got %s", i, f.raw)
		}
		subWantUnsubscribed(t, f, s)
	}
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("frames after the last pair: %s", extra[0].raw)
	}
	waitFor(t, "no subscriptions and no upstream streams", func() bool {
		st := e.bridge.Stats()
		return st.Subscriptions == 0 && st.UpstreamStreams == 0
	})
}

// flakyQuestions is a real gRPC backend whose Subscribe misbehaves on demand.
type flakyQuestions struct {
	pollsv1.UnimplementedQuestionServiceServer
	mode   atomic.Int32
	calls  atomic.Int64
	active atomic.Int64 // Subscribe handlers running
	kick   chan struct{}

	mu    sync.Mutex
	times []time.Time // start of each Subscribe call
}

const (
	subHealthy int32 = iota // header, then stays up until kicked
	subFlap                 // header, then fails at once
	subDown                 // fails without a header
	subHold                 // never sends the header: the subscription stays pending
)

func (f *flakyQuestions) Subscribe(_ *pollsv1.SubscribeQuestionsRequest, stream grpc.ServerStreamingServer[pollsv1.QuestionEvent]) error {
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	f.mu.Unlock()
	f.calls.Add(1)
	f.active.Add(1)
	defer f.active.Add(-1)
	ctx := stream.Context()
	switch f.mode.Load() {
	case subDown:
		return status.Error(codes.Unavailable, "backend down")
	case subFlap:
		if err := stream.SendHeader(metadata.MD{}); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "backend flapping")
	case subHold:
		<-ctx.Done()
		return nil
	}
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return nil
	case <-f.kick:
		return status.Error(codes.Unavailable, "kicked")
	}
}

func (f *flakyQuestions) callTime(i int64) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.times[i]
}

func newFlakyEnv(t *testing.T) (*env, *flakyQuestions) {
	t.Helper()
	f := &flakyQuestions{kick: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pollsv1.RegisterQuestionServiceServer(gs, f)
	reflection.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return newEnvFor(t, &backend{t: t, addr: lis.Addr().String()}), f
}

// outage breaks the subscriber's live upstream with the backend in mode, waits for the 503
// notice and for `retries` more failed Subscribe calls, heals the backend and checks that
// exactly one resumed notice follows. It returns when the last retry started and when the
// stream broke.
func outage(t *testing.T, e *env, f *flakyQuestions, c *client, mode int32, retries int64) (broke, last time.Time) {
	t.Helper()
	waitFor(t, "the upstream to be live", func() bool { return e.bridge.Stats().UpstreamStreams == 1 })
	f.mode.Store(mode)
	n0 := f.calls.Load()
	broke = time.Now()
	select {
	case f.kick <- struct{}{}:
	case <-time.After(15 * time.Second):
		t.Fatal("the live Subscribe was not there to break")
	}
	notice := c.next()
	wantStatus(t, notice, 503)
	if notice.Payload["request_id"] != "s" || notice.Payload["action"] != "subscribe" || notice.errors() == "[]" {
		t.Fatalf("want the 503 notice of s, got %s", notice.raw)
	}
	waitFor(t, "the bridge to retry", func() bool { return f.calls.Load() >= n0+retries })
	last = f.callTime(n0 + retries - 1)
	f.mode.Store(subHealthy)
	subWantResumed(t, c.next(), "s")
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("more notices for one outage: %s", extra[0].raw)
	}
	return broke, last
}

// TestSubscribeFlappingBackend: a backend that accepts each Subscribe (sends its header)
// and fails it at once is one outage, not a recovery per retry: its subscribers get one
// 503 and, once the stream holds, one resumed; the retries are spaced exponentially.
func TestSubscribeFlappingBackend(t *testing.T) {
	e, f := newFlakyEnv(t)
	c := e.dial()
	c.subSubscribe("s", nil, "update")
	broke, last := outage(t, e, f, c, subFlap, 4)
	// Backoff with jitter waits at least half of 100, 200, 400, 800 ms before the four
	// retries: a lower bound, which a loaded machine can only exceed.
	if d := last.Sub(broke); d < 750*time.Millisecond {
		t.Fatalf("4 retries within %v of the break: the backoff was reset by a stream that failed at once", d)
	}
	// A second outage after the recovery is again one 503 and one resumed.
	outage(t, e, f, c, subFlap, 1)
}

// TestSubscribeBackendDownThroughRetries: a backend that stays down through several
// reconnect attempts gets its subscribers one 503 and one resumed.
func TestSubscribeBackendDownThroughRetries(t *testing.T) {
	e, f := newFlakyEnv(t)
	c := e.dial()
	c.subSubscribe("s", nil, "update")
	outage(t, e, f, c, subDown, 3)
}

// TestUnsubscribeWhilePending: a subscription removed before its upstream answered still
// gets its 200, then the unsubscribe its 200, and the backend's Subscribe is cancelled.
func TestUnsubscribeWhilePending(t *testing.T) {
	e, f := newFlakyEnv(t)
	f.mode.Store(subHold)
	c := e.dial()
	c.send("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}, "request_id": "p"})
	waitFor(t, "the Subscribe call to reach the backend", func() bool { return f.active.Load() == 1 })
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("a pending subscribe was answered: %s", extra[0].raw)
	}
	c.send("questions", map[string]any{"action": "unsubscribe", "data": map[string]any{"request_id": "p"}, "request_id": "u"})
	sub := c.next()
	wantStatus(t, sub, 200)
	if sub.Payload["action"] != "subscribe" || sub.Payload["request_id"] != "p" {
		t.Fatalf("want the subscribe reply first, got %s", sub.raw)
	}
	subWantUnsubscribed(t, c.next(), "p")
	waitFor(t, "the backend's Subscribe to be cancelled", func() bool { return f.active.Load() == 0 })
	if st := e.bridge.Stats(); st.Subscriptions != 0 || st.UpstreamStreams != 0 {
		t.Fatalf("left behind: %+v", st)
	}
}

// TestDisconnectWhilePendingCleansUp: clients that go away while their subscriptions wait
// for the backend leave no subscription and no Subscribe call behind.
func TestDisconnectWhilePendingCleansUp(t *testing.T) {
	e, f := newFlakyEnv(t)
	f.mode.Store(subHold)
	for i := range 10 {
		c := e.dial()
		c.send("questions", map[string]any{"action": "subscribe", "pk": i%3 + 1, "data": map[string]any{"action": "update"}})
		c.send("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}})
		c.barrier() // both subscriptions registered
		c.close()
	}
	waitFor(t, "every pending subscription and Subscribe call to end", func() bool {
		st := e.bridge.Stats()
		return st.Subscriptions == 0 && st.UpstreamStreams == 0 && f.active.Load() == 0
	})
}

// TestShutdownAnswersPendingSubscribe: a subscribe still waiting for its backend when
// Shutdown starts gets its reply, 503 "shutting down", before the 1001 close; so does one
// sent during the drain; and the backend's Subscribe call is cancelled.
func TestShutdownAnswersPendingSubscribe(t *testing.T) {
	e, f := newFlakyEnv(t)
	f.mode.Store(subHold)
	c := e.dial()
	c.send("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}, "request_id": "p"})
	waitFor(t, "the Subscribe call to reach the backend", func() bool { return f.active.Load() == 1 })
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("a pending subscribe was answered: %s", extra[0].raw)
	}
	done := make(chan error, 1)
	go func() { done <- e.bridge.Shutdown(context.Background()) }()
	r := c.next()
	wantErrors(t, r, 503, `["The bridge is shutting down."]`)
	if r.Payload["action"] != "subscribe" || r.Payload["request_id"] != "p" {
		t.Fatalf("want the pending subscribe's reply, got %s", r.raw)
	}
	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := waitRecv(t, "Shutdown to return", done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	waitFor(t, "the backend's Subscribe to be cancelled", func() bool { return f.active.Load() == 0 })
}
