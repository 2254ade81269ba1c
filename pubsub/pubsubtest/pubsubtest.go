// Package pubsubtest has test helpers for pubsub.Broker implementations: subscribe,
// publish, wait for events or for a subscription's end, failing the test on a timeout, and
// check that nothing arrived with an in-band barrier rather than a wait.
package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/pubsub"
)

// Timeout bounds every wait of this package: generous, for loaded machines.
const Timeout = 30 * time.Second

// Subscribe subscribes to every event of topic and closes the subscription when the test ends.
func Subscribe(t testing.TB, b pubsub.Broker, topic string) pubsub.Subscription {
	t.Helper()
	return SubscribeSince(t, b, topic, pubsub.Filter{}, "")
}

// SubscribeSince subscribes to the events of topic that f matches, after since, and closes
// the subscription when the test ends.
func SubscribeSince(t testing.TB, b pubsub.Broker, topic string, f pubsub.Filter, since string) pubsub.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic, f, since)
	if err != nil {
		t.Fatalf("Subscribe(%q, %+v, %q): %v", topic, f, since, err)
	}
	t.Cleanup(s.Close)
	return s
}

// Publish publishes each event to topic.
func Publish(t testing.TB, b pubsub.Broker, topic string, evs ...pubsub.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := b.Publish(context.Background(), topic, ev); err != nil {
			t.Fatalf("Publish(%q, %v): %v", topic, ev, err)
		}
	}
}

// Next receives the next event, failing if none arrives in time or the subscription ended.
func Next(t testing.TB, s pubsub.Subscription) pubsub.Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("subscription ended early: %v", s.Err())
		}
		return ev
	case <-time.After(Timeout):
		t.Fatal("no event within timeout")
	}
	panic("unreachable")
}

// Ended drains s until it ends and returns why.
func Ended(t testing.TB, s pubsub.Subscription) error {
	t.Helper()
	timeout := time.After(Timeout)
	for {
		select {
		case _, ok := <-s.Events():
			if !ok {
				return s.Err()
			}
		case <-timeout:
			t.Fatal("subscription did not end")
		}
	}
}

// EndedWith drains s until it ends and checks that it ended because of want.
func EndedWith(t testing.TB, s pubsub.Subscription, want error) {
	t.Helper()
	if err := Ended(t, s); !errors.Is(err, want) {
		t.Fatalf("Err() = %v, want %v", err, want)
	}
}

// Marker is the event Barrier publishes; tests publish no other event with its PK.
var Marker = pubsub.Event{Action: pubsub.ActionUpdate, PK: "pubsubtest-marker", Data: []byte("marker")}

// Barrier checks that nothing but Marker reached s: it publishes Marker to topic through b and
// fails unless Marker is the next thing s receives. A broker delivers one publisher's events
// to a subscription in publish order, so an event published through b before the Barrier that
// wrongly reached s would arrive first. For a distributed broker, b must be the broker (the
// connection) that published those events.
func Barrier(t testing.TB, b pubsub.Broker, topic string, s pubsub.Subscription) {
	t.Helper()
	Publish(t, b, topic, Marker)
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("subscription ended before the marker: %v", s.Err())
		}
		if ev.Action != Marker.Action || ev.PK != Marker.PK || string(ev.Data) != string(Marker.Data) {
			t.Fatalf("received %+v before the marker", ev)
		}
	case <-time.After(Timeout):
		t.Fatal("the marker did not arrive within the timeout")
	}
}

// SeamPK is the PK of publisher p's i-th event in a ResumeSeam test.
func SeamPK(p, i int) string { return fmt.Sprintf("%d-%d", p, i) }

// ResumeSeam receives n events from s whose PKs are SeamPK's. Every `every` events it closes
// the subscription and resumes from the last offset seen with resume(k, since), k counting
// the resumes from 0, and checks that the resume recovered. It fails on an event received
// twice or out of its publisher's order (a gap), and returns the last subscription.
func ResumeSeam(t testing.TB, s pubsub.Subscription, n, every int, resume func(k int, since string) pubsub.Subscription) pubsub.Subscription {
	t.Helper()
	seen := map[string]bool{}
	lastOf := map[int]int{}
	var since string
	for got := 0; got < n; got++ {
		if got%every == every-1 {
			s.Close()
			s = resume(got/every, since)
			if !s.Start().Recovered {
				t.Fatalf("resume from %q not recovered", since)
			}
		}
		e := Next(t, s)
		if seen[e.PK] {
			t.Fatalf("event %s delivered twice", e.PK)
		}
		seen[e.PK] = true
		var p, i int
		if _, err := fmt.Sscanf(e.PK, "%d-%d", &p, &i); err != nil {
			t.Fatalf("unexpected event %+v", e)
		}
		if prev, ok := lastOf[p]; (ok && i != prev+1) || (!ok && i != 0) {
			t.Fatalf("publisher %d: event %d after %d: a gap", p, i, prev)
		}
		lastOf[p] = i
		since = e.Offset
	}
	return s
}
