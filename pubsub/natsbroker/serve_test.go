package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wsbridge/wsbridge/pubsub"
)

// stream is a minimal grpc.ServerStreamingServer for pubsub.Serve.
type stream struct {
	grpc.ServerStream // nil: calling anything not overridden panics
	ctx               context.Context
	header            chan struct{}
	sent              chan string
}

func (s *stream) Context() context.Context     { return s.ctx }
func (s *stream) SendHeader(metadata.MD) error { close(s.header); return nil }
func (s *stream) Send(m *wrapperspb.StringValue) error {
	s.sent <- m.GetValue()
	return nil
}

// Serve on one replica, with a filter, sees what another replica publishes.
func TestServeFiltersAcrossReplicas(t *testing.T) {
	a, b := replicas(t)
	st := &stream{ctx: context.Background(), header: make(chan struct{}), sent: make(chan string, 10)}
	f := pubsub.Filter{PK: "1", Actions: []string{pubsub.ActionUpdate, pubsub.ActionDelete}}
	done := make(chan error, 1)
	go func() {
		done <- pubsub.Serve(st, b, "t", f, "", func(ev pubsub.Event) (*wrapperspb.StringValue, error) {
			return wrapperspb.String(ev.Action + ":" + ev.PK), nil
		})
	}()
	select {
	case <-st.header:
	case err := <-done:
		t.Fatalf("Serve returned before its header: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("no header: Serve did not announce the subscription")
	}
	publish(t, a, "t",
		pubsub.Event{Action: pubsub.ActionCreate, PK: "1"},
		pubsub.Event{Action: pubsub.ActionUpdate, PK: "2"},
		pubsub.Event{Action: pubsub.ActionUpdate, PK: "1"},
		pubsub.Event{Action: pubsub.ActionDelete, PK: "1"},
	)
	for _, want := range []string{"update:1", "delete:1"} {
		select {
		case got := <-st.sent:
			if got != want {
				t.Fatalf("sent %q, want %q", got, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%q not sent", want)
		}
	}
	b.Close()
	select {
	case err := <-done:
		if code := status.Code(err); code != codes.Unavailable {
			t.Fatalf("Serve after broker Close: code %v, want Unavailable", code)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after the broker's Close")
	}
	// Nothing else was sent: the create, and the update of another pk, were filtered out.
	if len(st.sent) != 0 {
		t.Fatalf("sent %q after the filtered events", <-st.sent)
	}
}
