package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
)

func TestEventsReachEveryReplica(t *testing.T) {
	a, b := replicas(t)
	onA, onB := subscribe(t, a, "polls.v1.Question"), subscribe(t, b, "polls.v1.Question")
	other := subscribe(t, b, "polls.v1.Choice")

	evs := []pubsub.Event{
		{Action: pubsub.ActionCreate, PK: "1", Data: []byte{0x08, 0x01, 0x00, 0xff}},
		{Action: pubsub.ActionDelete, PK: "1"}, // no data
		{Action: pubsub.ActionUpdate, PK: "", Data: []byte("x")},
	}
	publish(t, a, "polls.v1.Question", evs...)
	for _, s := range []pubsub.Subscription{onA, onB} {
		for _, want := range evs {
			sameEvent(t, next(t, s), want)
		}
	}
	// The other topic's subscriber got none of them: the marker, published after them by the
	// same replica, is the first thing it receives.
	barrier(t, a, "polls.v1.Choice", other)
}

// The liveness guarantee: once Subscribe returns on one replica, an event
// published at once on another reaches it.
func TestLiveWhenSubscribeReturns(t *testing.T) {
	a, b := replicas(t)
	for i := range 50 {
		topic := fmt.Sprintf("t%d", i)
		s := subscribe(t, b, topic)
		publish(t, a, topic, pubsub.Event{Action: pubsub.ActionCreate, PK: topic})
		sameEvent(t, next(t, s), pubsub.Event{Action: pubsub.ActionCreate, PK: topic})
		s.Close()
	}
}

func TestOrderAcrossReplicas(t *testing.T) {
	a, b := replicas(t, pubsub.WithBufferSize(1000))
	s := subscribe(t, b, "t")
	var want []pubsub.Event
	for i := range 1000 {
		want = append(want, pubsub.Event{Action: pubsub.ActionUpdate, PK: fmt.Sprint(i)})
	}
	publish(t, a, "t", want...)
	for _, w := range want {
		sameEvent(t, next(t, s), w)
	}
}

func TestUnsubscribe(t *testing.T) {
	a, b := replicas(t)
	s, stays := subscribe(t, b, "t"), subscribe(t, b, "t")
	s.Close()
	s.Close()
	endedWith(t, s, nil)

	publish(t, a, "t", pubsub.Event{Action: pubsub.ActionCreate, PK: "1"})
	sameEvent(t, next(t, stays), pubsub.Event{Action: pubsub.ActionCreate, PK: "1"})
	barrier(t, a, "t", stays)
}

func TestContextEndsSubscription(t *testing.T) {
	_, b := replicas(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := b.Subscribe(ctx, "t", pubsub.Filter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	endedWith(t, s, context.Canceled)
}

func TestSlowSubscriberIsEnded(t *testing.T) {
	a, b := replicas(t, pubsub.WithBufferSize(2))
	slow, fast := subscribe(t, b, "t"), subscribe(t, b, "t")
	var want []pubsub.Event
	for i := range 5 {
		e := pubsub.Event{Action: pubsub.ActionUpdate, PK: fmt.Sprint(i)}
		want = append(want, e)
		publish(t, a, "t", e)
		sameEvent(t, next(t, fast), e)
	}
	sameEvent(t, next(t, slow), want[0])
	sameEvent(t, next(t, slow), want[1])
	endedWith(t, slow, pubsub.ErrSlowSubscriber)
}

func TestCloseEndsSubscriptionsButNotConnection(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	a, b := newBroker(t, connect(t, s)), newBroker(t, nc)
	sub := subscribe(t, b, "t")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	endedWith(t, sub, pubsub.ErrClosed)
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Publish(context.Background(), "t", pubsub.Event{}); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := b.Subscribe(context.Background(), "t", pubsub.Filter{}, ""); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if !nc.IsConnected() {
		t.Fatal("Close closed the caller's connection")
	}
	// Another broker on the same connection still works.
	c := newBroker(t, nc)
	fresh := subscribe(t, c, "t")
	publish(t, a, "t", pubsub.Event{Action: pubsub.ActionCreate})
	sameEvent(t, next(t, fresh), pubsub.Event{Action: pubsub.ActionCreate})
}

// Events published while the connection is down are lost, so losing it
// ends every subscription rather than let it miss some silently.
func TestConnectionLossEndsSubscriptions(t *testing.T) {
	s := startServer(t)
	b := newBroker(t, connect(t, s))
	sub := subscribe(t, b, "t")
	s.Shutdown()
	endedWith(t, sub, natsbroker.ErrConnectionLost)
}

func TestMalformedMessageEndsSubscription(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	sub := subscribe(t, newBroker(t, nc), "t")
	if err := nc.Publish(natsbroker.DefaultSubjectPrefix+"t", []byte{0x0a, 0x05, 'x'}); err != nil {
		t.Fatal(err)
	}
	if err := ended(t, sub); err == nil || errors.Is(err, pubsub.ErrSlowSubscriber) {
		t.Fatalf("Err() = %v, want a decoding error", err)
	}
}

func TestSubjectPrefix(t *testing.T) {
	s := startServer(t)
	nc := connect(t, s)
	raw, err := nc.SubscribeSync("tenant1.t")
	if err != nil {
		t.Fatal(err)
	}
	t1 := newBroker(t, nc, natsbroker.WithSubjectPrefix("tenant1."))
	t2 := newBroker(t, connect(t, s), natsbroker.WithSubjectPrefix("tenant2."))
	sub2 := subscribe(t, t2, "t")

	publish(t, t1, "t", pubsub.Event{Action: pubsub.ActionCreate, PK: "1"})
	if _, err := raw.NextMsg(waitTimeout); err != nil {
		t.Fatalf("no message on tenant1.t: %v", err)
	}
	// The marker goes to tenant2.t over the connection that published to tenant1.t, so NATS
	// delivers it after that message: if sub2 had got the message, it would come first.
	barrier(t, newBroker(t, nc, natsbroker.WithSubjectPrefix("tenant2.")), "t", sub2)
}

func TestInvalidTopics(t *testing.T) {
	a, _ := replicas(t)
	for _, topic := range []string{"", "a.*", "a.>", "a..b", "a.", "a b"} {
		if _, err := a.Subscribe(context.Background(), topic, pubsub.Filter{}, ""); err == nil {
			t.Errorf("Subscribe(%q) succeeded", topic)
		}
		if err := a.Publish(context.Background(), topic, pubsub.Event{}); err == nil {
			t.Errorf("Publish(%q) succeeded", topic)
		}
	}
}
