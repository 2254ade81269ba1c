package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
)

func TestMemoryPublishSubscribe(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s := subscribe(t, b, "polls.v1.Question")
	other := subscribe(t, b, "polls.v1.Choice")

	want := []pubsub.Event{ev("create", "1"), ev("update", "1"), ev("delete", "1")}
	publish(t, b, "polls.v1.Question", want...)
	for _, w := range want {
		sameEvent(t, next(t, s), w)
	}
	// Another topic's subscriber got none of them: its first event is the marker.
	barrier(t, b, "polls.v1.Choice", other)
	barrier(t, b, "polls.v1.Question", s)
}

// Without since nothing is replayed: an event published before a subscription exists never
// reaches it, before or after the topic's last subscriber left.
func TestMemoryNoReplay(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	publish(t, b, "t", ev("create", "early"))
	s := subscribe(t, b, "t")
	barrier(t, b, "t", s)

	publish(t, b, "t", ev("create", "1"))
	s.Close()
	ended(t, s, nil) // drains "create 1"
	publish(t, b, "t", ev("create", "between"))
	again := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "2"))
	sameEvent(t, next(t, again), ev("create", "2"))
	barrier(t, b, "t", again)
}

// Two subscriptions of one topic are independent: closing one does not affect the other.
func TestMemorySubscriptionsAreIndependent(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s1, s2 := subscribe(t, b, "t"), subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"))
	sameEvent(t, next(t, s1), ev("create", "1"))
	s1.Close()
	publish(t, b, "t", ev("update", "1"))
	sameEvent(t, next(t, s2), ev("create", "1"))
	sameEvent(t, next(t, s2), ev("update", "1"))
	barrier(t, b, "t", s2)
	if err := s2.Err(); err != nil {
		t.Fatalf("Err of a live subscription = %v, want nil", err)
	}
}

// A Publish whose context is done fails with its error and delivers nothing.
func TestMemoryPublishWithDoneContext(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s := subscribe(t, b, "t")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, "t", ev("create", "1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a done context: %v, want context.Canceled", err)
	}
	barrier(t, b, "t", s)
}

// Every subscriber gets the event as published, Data included (nil stays nil).
func TestMemoryEventsArriveAsPublished(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s1, s2 := subscribe(t, b, "t"), subscribe(t, b, "t")
	e := pubsub.Event{Action: pubsub.ActionDelete, PK: "7", Data: []byte{0x08, 0x07, 0x00}}
	publish(t, b, "t", e, pubsub.Event{Action: pubsub.ActionCreate, PK: "8"})
	for _, s := range []pubsub.Subscription{s1, s2} {
		sameEvent(t, next(t, s), e)
		if got := next(t, s); got.Action != pubsub.ActionCreate || got.PK != "8" || got.Data != nil {
			t.Fatalf("event without data arrived as %+v", got)
		}
	}
}

func TestMemorySubscribersEachGetEveryEventInOrder(t *testing.T) {
	b := newMemory(t)
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
	b := newMemory(t, pubsub.WithBufferSize(1000))
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
	last := map[string]int{}
	for range 1000 {
		got := next(t, s1)
		sameEvent(t, next(t, s2), got)
		// One publisher's events keep their order among the others'.
		var p, i int
		if _, err := fmt.Sscanf(got.PK, "%d-%d", &p, &i); err != nil {
			t.Fatalf("unexpected event %+v", got)
		}
		if prev, ok := last[fmt.Sprint(p)]; ok && i != prev+1 {
			t.Fatalf("publisher %d: event %d after %d", p, i, prev)
		}
		last[fmt.Sprint(p)] = i
	}
	barrier(t, b, "t", s1)
	barrier(t, b, "t", s2)
}

func TestMemoryUnsubscribeStopsDelivery(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s, stays := subscribe(t, b, "t"), subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"))
	s.Close()
	s.Close() // idempotent
	// What was buffered before Close can still be read, then the channel closes, with Err nil.
	sameEvent(t, next(t, s), ev("create", "1"))
	if _, ok := <-s.Events(); ok {
		t.Fatal("an event after Close")
	}
	if err := s.Err(); err != nil {
		t.Fatalf("Err after Close = %v, want nil", err)
	}

	publish(t, b, "t", ev("create", "2"))
	sameEvent(t, next(t, stays), ev("create", "1"))
	sameEvent(t, next(t, stays), ev("create", "2"))
}

func TestMemoryContextEndsSubscription(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := b.Subscribe(ctx, "t", pubsub.Filter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, "t", ev("create", "1"))
	cancel()
	sameEvent(t, next(t, s), ev("create", "1"))
	ended(t, s, context.Canceled)
	s.Close() // no effect: Err stays
	if !errors.Is(s.Err(), context.Canceled) {
		t.Fatalf("Err after Close = %v, want context.Canceled", s.Err())
	}

	if _, err := b.Subscribe(ctx, "t", pubsub.Filter{}, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with a done context: %v, want context.Canceled", err)
	}
}

func TestMemorySlowSubscriberIsEnded(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(2))
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

// A topic whose only subscriber was ended as slow is forgotten, and works again for a new one.
func TestMemorySlowOnlySubscriber(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(1))
	defer b.Close()
	slow := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"), ev("create", "2"))
	sameEvent(t, next(t, slow), ev("create", "1"))
	ended(t, slow, pubsub.ErrSlowSubscriber)

	fresh := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "3"))
	sameEvent(t, next(t, fresh), ev("create", "3"))
}

func TestMemoryCloseEndsEverything(t *testing.T) {
	b := newMemory(t)
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
	if _, err := b.Subscribe(context.Background(), "a", pubsub.Filter{}, ""); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Subscribing, publishing, unsubscribing and closing all at once: besides the race detector's
// verdict, every subscription sees each publisher's events in order and ends for a documented
// reason, and every call fails only with ErrClosed.
func TestMemoryChurn(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(4))
	errs := make(chan error, 1000)
	report := func(format string, args ...any) {
		select {
		case errs <- fmt.Errorf(format, args...):
		default:
		}
	}
	publishAll := func(p string, n int) {
		for i := range n {
			if err := b.Publish(context.Background(), "t", ev("update", fmt.Sprintf("%s-%d", p, i))); err != nil && !errors.Is(err, pubsub.ErrClosed) {
				report("Publish: %v", err)
			}
		}
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { publishAll(fmt.Sprint(i), 200) })
		wg.Go(func() {
			for range 50 {
				s, err := b.Subscribe(context.Background(), "t", pubsub.Filter{}, "")
				if errors.Is(err, pubsub.ErrClosed) {
					return
				}
				if err != nil {
					report("Subscribe: %v", err)
					return
				}
				last := map[string]int{}
				for range 3 {
					e, ok := <-s.Events()
					if !ok {
						break
					}
					var p string
					var n int
					if _, err := fmt.Sscanf(strings.Replace(e.PK, "-", " ", 1), "%s %d", &p, &n); err != nil {
						report("unexpected event %+v", e)
						continue
					}
					if prev, seen := last[p]; seen && n <= prev {
						report("publisher %s: event %d after %d", p, n, prev)
					}
					last[p] = n
				}
				s.Close()
				for range s.Events() { // Close has closed it, or it had ended already
				}
				if err := s.Err(); err != nil && !errors.Is(err, pubsub.ErrSlowSubscriber) && !errors.Is(err, pubsub.ErrClosed) {
					report("subscription ended with %v", err)
				}
			}
		})
	}
	wg.Go(func() {
		publishAll("x", 1000)
		if err := b.Close(); err != nil {
			report("Close: %v", err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := b.Publish(context.Background(), "t", ev("update", "late")); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
}

// SubscribeFiltered delivers only what the filter matches, and a publish never touches a
// subscription it does not match: a subscription on another key, with a buffer of one, is
// not ended as slow by events of other keys.
func TestMemorySubscribeFiltered(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(1))
	defer b.Close()
	sub := func(f pubsub.Filter) pubsub.Subscription {
		s, err := b.Subscribe(context.Background(), "t", f, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	one := sub(pubsub.Filter{PK: "1"})
	oneUpdates := sub(pubsub.Filter{PK: "1", Actions: []string{"update"}})
	two := sub(pubsub.Filter{PK: "2"})

	for i := range 5 { // five events of key 3: none for these three subscriptions
		publish(t, b, "t", ev("update", fmt.Sprint(3+i*10)))
	}
	publish(t, b, "t", ev("create", "1"))
	sameEvent(t, next(t, one), ev("create", "1"))
	publish(t, b, "t", ev("update", "1"))
	sameEvent(t, next(t, one), ev("update", "1"))
	sameEvent(t, next(t, oneUpdates), ev("update", "1"))
	publish(t, b, "t", ev("delete", "2"))
	sameEvent(t, next(t, two), ev("delete", "2"))
	// Every one of them is still live, and its next event is the marker of its own filter:
	// nothing else reached it.
	publish(t, b, "t", ev("update", "2"), ev("update", "1"))
	sameEvent(t, next(t, two), ev("update", "2"))
	sameEvent(t, next(t, one), ev("update", "1"))
	sameEvent(t, next(t, oneUpdates), ev("update", "1"))
}
