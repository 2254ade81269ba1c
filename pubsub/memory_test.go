package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
)

func TestMemoryPublishSubscribe(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	defer b.Close()
	s := subscribe(t, b, "polls.v1.Question")
	other := subscribe(t, b, "polls.v1.Choice")

	want := []pubsub.Event{ev("create", "1"), ev("update", "1"), ev("delete", "1")}
	publish(t, b, "polls.v1.Question", want...)
	for _, w := range want {
		sameEvent(t, next(t, s), w)
	}
	quiet(t, other)
}

func TestMemoryPublishWithoutSubscribers(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	defer b.Close()
	publish(t, b, "nobody", ev("create", "1"))
}

func TestMemorySubscribersEachGetEveryEventInOrder(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	defer b.Close()
	subs := make([]pubsub.Subscription, 5)
	for i := range subs {
		subs[i] = subscribe(t, b, "t")
	}
	var want []pubsub.Event
	for i := range 100 {
		want = append(want, ev("update", fmt.Sprint(i)))
	}
	publish(t, b, "t", want...)
	for _, s := range subs {
		for _, w := range want {
			sameEvent(t, next(t, s), w)
		}
	}
}

// Concurrent publishers on one topic: every subscriber still sees one and
// the same order.
func TestMemoryConcurrentPublishersOneOrder(t *testing.T) {
	b := pubsub.NewMemoryBroker(pubsub.WithBufferSize(1000))
	defer b.Close()
	s1, s2 := subscribe(t, b, "t"), subscribe(t, b, "t")
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Go(func() {
			for i := range 250 {
				publish(t, b, "t", ev("update", fmt.Sprintf("%d-%d", p, i)))
			}
		})
	}
	wg.Wait()
	for range 1000 {
		sameEvent(t, next(t, s2), next(t, s1))
	}
}

func TestMemoryUnsubscribeStopsDelivery(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	defer b.Close()
	s, stays := subscribe(t, b, "t"), subscribe(t, b, "t")
	s.Close()
	s.Close() // idempotent
	ended(t, s, nil)

	publish(t, b, "t", ev("create", "1"))
	sameEvent(t, next(t, stays), ev("create", "1"))
}

func TestMemoryContextEndsSubscription(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	ended(t, s, context.Canceled)
	s.Close()

	if _, err := b.Subscribe(ctx, "t"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a done context: %v, want context.Canceled", err)
	}
}

func TestMemorySlowSubscriberIsEnded(t *testing.T) {
	b := pubsub.NewMemoryBroker(pubsub.WithBufferSize(2))
	defer b.Close()
	slow, fast := subscribe(t, b, "t"), subscribe(t, b, "t")

	var want []pubsub.Event
	for i := range 5 {
		e := ev("update", fmt.Sprint(i))
		want = append(want, e)
		publish(t, b, "t", e)
		sameEvent(t, next(t, fast), e)
	}
	// The slow subscriber gets what fitted in its buffer, with no gap,
	// then learns it was ended.
	sameEvent(t, next(t, slow), want[0])
	sameEvent(t, next(t, slow), want[1])
	ended(t, slow, pubsub.ErrSlowSubscriber)

	publish(t, b, "t", ev("delete", "9"))
	sameEvent(t, next(t, fast), ev("delete", "9"))
}

func TestMemoryCloseEndsEverything(t *testing.T) {
	b := pubsub.NewMemoryBroker()
	s1, s2 := subscribe(t, b, "a"), subscribe(t, b, "b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ended(t, s1, pubsub.ErrClosed)
	ended(t, s2, pubsub.ErrClosed)
	s1.Close() // after the broker's Close: no effect, Err stays
	if !errors.Is(s1.Err(), pubsub.ErrClosed) {
		t.Fatalf("Err after Close = %v", s1.Err())
	}

	if err := b.Publish(context.Background(), "a", ev("create", "1")); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := b.Subscribe(context.Background(), "a"); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Subscribing, publishing, unsubscribing and closing all at once, for the
// race detector.
func TestMemoryChurn(t *testing.T) {
	b := pubsub.NewMemoryBroker(pubsub.WithBufferSize(4))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				_ = b.Publish(context.Background(), "t", ev("update", fmt.Sprint(i)))
			}
		})
		wg.Go(func() {
			for range 50 {
				s, err := b.Subscribe(context.Background(), "t")
				if err != nil {
					return
				}
				for range 3 {
					<-s.Events()
				}
				s.Close()
			}
		})
	}
	wg.Go(func() {
		for range 1000 {
			_ = b.Publish(context.Background(), "t", ev("update", "x"))
		}
		b.Close()
	})
	wg.Wait()
}
