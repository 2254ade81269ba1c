package pubsub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/pubsub"
)

const waitTimeout = 5 * time.Second

func subscribe(t *testing.T, b pubsub.Broker, topic string) pubsub.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	t.Cleanup(s.Close)
	return s
}

func publish(t *testing.T, b pubsub.Broker, topic string, evs ...pubsub.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := b.Publish(context.Background(), topic, ev); err != nil {
			t.Fatalf("Publish(%q, %v): %v", topic, ev, err)
		}
	}
}

// next receives the next event, failing if none arrives in time or the
// subscription has ended.
func next(t *testing.T, s pubsub.Subscription) pubsub.Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("subscription ended early: %v", s.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event within timeout")
	}
	panic("unreachable")
}

// ended drains s until its channel closes and checks why it ended.
func ended(t *testing.T, s pubsub.Subscription, want error) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-s.Events():
			if !ok {
				if err := s.Err(); !errors.Is(err, want) {
					t.Fatalf("Err() = %v, want %v", err, want)
				}
				return
			}
		case <-timeout:
			t.Fatal("subscription did not end")
		}
	}
}

// quiet checks that no event arrives for a moment.
func quiet(t *testing.T, s pubsub.Subscription) {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		t.Fatalf("unexpected receive %v (open %v)", ev, ok)
	case <-time.After(50 * time.Millisecond):
	}
}

func ev(action, pk string) pubsub.Event {
	return pubsub.Event{Action: action, PK: pk, Data: []byte(action + "/" + pk)}
}

func sameEvent(t *testing.T, got, want pubsub.Event) {
	t.Helper()
	if got.Action != want.Action || got.PK != want.PK || string(got.Data) != string(want.Data) {
		t.Fatalf("got event %+v, want %+v", got, want)
	}
}
