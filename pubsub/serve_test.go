package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wsbridge/wsbridge/pubsub"
)

// fakeStream records what Serve does to its stream.
type fakeStream struct {
	grpc.ServerStream // nil: calling anything not overridden panics
	ctx               context.Context
	sendErr           error

	mu     sync.Mutex
	md     metadata.MD // the header
	log    []string
	header chan struct{} // closed by SendHeader
	sent   chan struct{} // signalled after each Send
}

func newFakeStream(ctx context.Context) *fakeStream {
	return &fakeStream{ctx: ctx, header: make(chan struct{}), sent: make(chan struct{}, 100)}
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) SendHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.md = md
	s.log = append(s.log, "header")
	close(s.header)
	return nil
}

func (s *fakeStream) Send(m *wrapperspb.StringValue) error {
	if s.sendErr != nil {
		return s.sendErr
	}
	s.mu.Lock()
	s.log = append(s.log, m.GetValue())
	s.mu.Unlock()
	s.sent <- struct{}{}
	return nil
}

func (s *fakeStream) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func toString(ev pubsub.Event) (*wrapperspb.StringValue, error) {
	return wrapperspb.String(ev.Action + ":" + ev.PK), nil
}

// publishOnSubscribe publishes an event right after each subscription is
// made, before Serve can send the header.
type publishOnSubscribe struct {
	pubsub.Broker
	ev pubsub.Event
}

func (b publishOnSubscribe) Subscribe(ctx context.Context, topic string, f pubsub.Filter, since string) (pubsub.Subscription, error) {
	s, err := b.Broker.Subscribe(ctx, topic, f, since)
	if err == nil {
		err = b.Publish(ctx, topic, b.ev)
	}
	return s, err
}

func serveAsync(stream *fakeStream, b pubsub.Broker, f pubsub.Filter, toMsg func(pubsub.Event) (*wrapperspb.StringValue, error)) <-chan error {
	done := make(chan error, 1)
	go func() { done <- pubsub.Serve(stream, b, "t", f, "", toMsg) }()
	return done
}

func TestServeHeaderFirstAndNothingLost(t *testing.T) {
	mb := newMemory(t)
	defer mb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	stream := newFakeStream(ctx)
	done := serveAsync(stream, publishOnSubscribe{mb, ev("create", "1")}, pubsub.Filter{}, toString)

	<-stream.sent
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after the client left = %v, want nil", err)
	}
	if got := stream.events(); len(got) != 2 || got[0] != "header" || got[1] != "create:1" {
		t.Fatalf("stream saw %q, want [header create:1]", got)
	}
}

func TestServeFilters(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := newFakeStream(ctx)
	skip7 := func(ev pubsub.Event) (*wrapperspb.StringValue, error) {
		if ev.PK == "7" {
			return nil, nil
		}
		return toString(ev)
	}
	done := serveAsync(stream, publishOnSubscribe{b, ev("create", "7")}, pubsub.Filter{Actions: []string{"create"}}, skip7)
	<-stream.header
	publish(t, b, "t", ev("update", "1"), ev("create", "2"))
	<-stream.sent
	b.Close()
	if code := status.Code(<-done); code != codes.Unavailable {
		t.Fatalf("Serve after broker Close: code %v, want Unavailable", code)
	}
	if got := stream.events(); len(got) != 2 || got[1] != "create:2" {
		t.Fatalf("stream saw %q, want [header create:2]", got)
	}
}

func TestServeSlowSubscriber(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(1))
	defer b.Close()
	stream := newFakeStream(context.Background())
	block := make(chan struct{})
	blocking := func(ev pubsub.Event) (*wrapperspb.StringValue, error) {
		<-block
		return toString(ev)
	}
	done := serveAsync(stream, publishOnSubscribe{b, ev("create", "1")}, pubsub.Filter{}, blocking)
	<-stream.header
	// Serve is stuck on event 1; the buffer takes 2; 3 overflows it.
	publish(t, b, "t", ev("create", "2"), ev("create", "3"))
	close(block)
	if code := status.Code(<-done); code != codes.ResourceExhausted {
		t.Fatalf("code %v, want ResourceExhausted", code)
	}
}

func TestServeConversionError(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	stream := newFakeStream(context.Background())
	bad := func(pubsub.Event) (*wrapperspb.StringValue, error) { return nil, errors.New("corrupt") }
	done := serveAsync(stream, publishOnSubscribe{b, ev("create", "1")}, pubsub.Filter{}, bad)
	if code := status.Code(<-done); code != codes.Internal {
		t.Fatalf("code %v, want Internal", code)
	}
}

func TestServeSendError(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	stream := newFakeStream(context.Background())
	stream.sendErr = errors.New("broken pipe")
	done := serveAsync(stream, publishOnSubscribe{b, ev("create", "1")}, pubsub.Filter{}, toString)
	if err := <-done; err != stream.sendErr {
		t.Fatalf("Serve = %v, want Send's error", err)
	}
}

func TestServeClosedBroker(t *testing.T) {
	b := newMemory(t)
	b.Close()
	stream := newFakeStream(context.Background())
	err := pubsub.Serve(stream, b, "t", pubsub.Filter{}, "", toString)
	if s, _ := status.FromError(err); s.Code() != codes.Unavailable || s.Message() != "server shutting down" {
		t.Fatalf("Serve on a closed broker = %v", err)
	}
	if got := stream.events(); len(got) != 0 {
		t.Fatalf("stream saw %q, want nothing", got)
	}
}

func (s *fakeStream) header1(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.md.Get(key)
}

// The header tells where the stream starts; with since, whether it recovered and how many
// of the messages that follow are the replay (after toMsg skipped some). The replayed
// messages come first, in order, then the live ones.
func TestServeResumeHeader(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first := newFakeStream(ctx)
	done := serveAsync(first, b, pubsub.Filter{}, toString)
	<-first.header
	since := first.header1(pubsub.HeaderOffset)
	if len(since) != 1 || since[0] == "" {
		t.Fatalf("header %s = %q, want one offset", pubsub.HeaderOffset, since)
	}
	if got := first.header1(pubsub.HeaderRecovered); got != nil {
		t.Fatalf("header %s = %q without since", pubsub.HeaderRecovered, got)
	}
	publish(t, b, "t", ev("create", "1"), ev("create", "7"), ev("update", "1"))

	skip7 := func(ev pubsub.Event) (*wrapperspb.StringValue, error) {
		if ev.PK == "7" {
			return nil, nil
		}
		return toString(ev)
	}
	resumed := newFakeStream(ctx)
	rdone := make(chan error, 1)
	go func() { rdone <- pubsub.Serve(resumed, b, "t", pubsub.Filter{}, since[0], skip7) }()
	<-resumed.header
	for key, want := range map[string]string{pubsub.HeaderOffset: since[0], pubsub.HeaderRecovered: "true", pubsub.HeaderReplayed: "2"} {
		if got := resumed.header1(key); len(got) != 1 || got[0] != want {
			t.Fatalf("header %s = %q, want %q", key, got, want)
		}
	}
	publish(t, b, "t", ev("delete", "1"))
	for range 3 {
		<-resumed.sent
	}
	if got, want := fmt.Sprint(resumed.events()), "[header create:1 update:1 delete:1]"; got != want {
		t.Fatalf("stream saw %s, want %s", got, want)
	}

	lost := newFakeStream(ctx)
	ldone := make(chan error, 1)
	go func() { ldone <- pubsub.Serve(lost, b, "t", pubsub.Filter{}, "not an offset", toString) }()
	<-lost.header
	if got := lost.header1(pubsub.HeaderRecovered); len(got) != 1 || got[0] != "false" {
		t.Fatalf("header %s = %q for an unknown since, want false", pubsub.HeaderRecovered, got)
	}
	if got := lost.header1(pubsub.HeaderReplayed); len(got) != 1 || got[0] != "0" {
		t.Fatalf("header %s = %q for an unknown since, want 0", pubsub.HeaderReplayed, got)
	}
	cancel()
	for _, d := range []<-chan error{done, rdone, ldone} {
		if err := <-d; err != nil {
			t.Fatalf("Serve after the client left = %v", err)
		}
	}
}
