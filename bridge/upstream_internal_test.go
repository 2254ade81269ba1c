package bridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestSendFailureNeverNil: when SendMsg fails, start returns what RecvMsg says, and the
// SendMsg error when RecvMsg says nothing useful (nil or io.EOF): never a nil error, which
// with the nil stream would make pump dereference nil.
func TestSendFailureNeverNil(t *testing.T) {
	sendErr := errors.New("send failed")
	recvErr := errors.New("rpc error: code = Unavailable")
	for _, tc := range []struct {
		name string
		recv error
		want error
	}{
		{"RecvMsg succeeded", nil, sendErr},
		{"RecvMsg at EOF", io.EOF, sendErr},
		{"RecvMsg has the status", recvErr, recvErr},
	} {
		if got := sendFailure(sendErr, tc.recv); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestStatsDoNotWaitForTheHub: a /metrics scrape reads counters, so it returns while the
// hub's lock is held (as it is while subscriptions change), instead of holding up fan-out.
func TestStatsDoNotWaitForTheHub(t *testing.T) {
	srv, err := New(WithBackend(Backend{Target: "127.0.0.1:1"}), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	srv.hub.mu.Lock()
	done := make(chan Stats, 1)
	go func() { done <- srv.Stats() }()
	select {
	case st := <-done:
		srv.hub.mu.Unlock()
		if st != (Stats{}) {
			t.Errorf("stats of an idle bridge: %+v", st)
		}
	case <-time.After(15 * time.Second):
		srv.hub.mu.Unlock()
		<-done
		t.Error("Stats waited for the hub's lock")
	}
}
