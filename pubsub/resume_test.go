package pubsub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/pubsubtest"
)

var subscribeSince = pubsubtest.SubscribeSince

func wantStart(t *testing.T, s pubsub.Subscription, offset string, recovered bool, replayed int) {
	t.Helper()
	if got := s.Start(); got.Offset != offset || got.Recovered != recovered || got.Replayed != replayed {
		t.Fatalf("Start() = %+v, want {Offset:%q Recovered:%v Replayed:%d}", got, offset, recovered, replayed)
	}
}

// Every delivered event has an offset, distinct within its topic; the publisher's is ignored.
func TestMemoryOffsets(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s := subscribe(t, b, "t")
	e := ev("create", "1")
	e.Offset = "chosen by the publisher"
	publish(t, b, "t", e, ev("update", "1"))
	first, second := next(t, s), next(t, s)
	if first.Offset == "" || first.Offset == e.Offset || second.Offset == "" || first.Offset == second.Offset {
		t.Fatalf("offsets %q and %q: want two distinct broker offsets", first.Offset, second.Offset)
	}
}

// A subscription resumed from the last offset its predecessor saw gets what was published
// in between, then the live events.
func TestMemoryResume(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"), ev("update", "1"))
	next(t, s)
	last := next(t, s).Offset
	s.Close()

	publish(t, b, "t", ev("update", "2"), ev("delete", "1"))
	r := subscribeSince(t, b, "t", pubsub.Filter{}, last)
	wantStart(t, r, last, true, 2)
	publish(t, b, "t", ev("create", "3"))
	for _, w := range []pubsub.Event{ev("update", "2"), ev("delete", "1"), ev("create", "3")} {
		sameEvent(t, next(t, r), w)
	}
	barrier(t, b, "t", r)
}

// The replay applies the filter, and Replayed counts what it kept.
func TestMemoryResumeFiltered(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	since := subscribe(t, b, "t").Start().Offset
	publish(t, b, "t", ev("create", "1"), ev("create", "2"), ev("update", "1"), ev("delete", "2"))
	r := subscribeSince(t, b, "t", pubsub.Filter{PK: "1"}, since)
	wantStart(t, r, since, true, 2)
	sameEvent(t, next(t, r), ev("create", "1"))
	sameEvent(t, next(t, r), ev("update", "1"))
	publish(t, b, "t", ev("update", "2"), ev("delete", "1"))
	sameEvent(t, next(t, r), ev("delete", "1"))
}

// Start.Offset of a subscription that saw no event is a since that loses nothing, an empty
// topic's included.
func TestMemoryResumeFromStart(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s := subscribe(t, b, "fresh")
	since := s.Start().Offset
	if since == "" {
		t.Fatal("Start().Offset is empty")
	}
	s.Close()
	publish(t, b, "fresh", ev("create", "1"))
	r := subscribeSince(t, b, "fresh", pubsub.Filter{}, since)
	wantStart(t, r, since, true, 1)
	sameEvent(t, next(t, r), ev("create", "1"))
}

// A since the history no longer reaches back to, or that is not this broker's, starts live
// and says so; the offset it reports is the latest, a since that works.
func TestMemoryResumeNotRecovered(t *testing.T) {
	b := newMemory(t, pubsub.WithHistory(2))
	defer b.Close()
	s := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"), ev("update", "1"), ev("update", "2"), ev("update", "3"))
	var offs []string
	for range 4 {
		offs = append(offs, next(t, s).Offset)
	}
	latest := offs[3]
	other := newMemory(t)
	defer other.Close()
	o := subscribe(t, other, "t")
	publish(t, other, "t", ev("create", "1"))
	foreign := next(t, o).Offset
	future := strings.TrimSuffix(latest, "4") + "9"

	for _, since := range []string{offs[0], foreign, future, "garbage", ":", latest + "x"} {
		r := subscribeSince(t, b, "t", pubsub.Filter{}, since)
		wantStart(t, r, latest, false, 0) // nothing replayed
		r.Close()
	}
	// The oldest since the history still covers: the two kept events.
	r := subscribeSince(t, b, "t", pubsub.Filter{}, offs[1])
	wantStart(t, r, offs[1], true, 2)
	sameEvent(t, next(t, r), ev("update", "2"))
	sameEvent(t, next(t, r), ev("update", "3"))
}

// With no history, only the latest offset is recovered: nothing was missed.
func TestMemoryNoHistory(t *testing.T) {
	b := newMemory(t, pubsub.WithHistory(0))
	defer b.Close()
	s := subscribe(t, b, "t")
	publish(t, b, "t", ev("create", "1"), ev("update", "1"))
	older, latest := next(t, s).Offset, next(t, s).Offset
	wantStart(t, subscribeSince(t, b, "t", pubsub.Filter{}, latest), latest, true, 0)
	wantStart(t, subscribeSince(t, b, "t", pubsub.Filter{}, older), latest, false, 0)
}

// The replay is not limited by the buffer: it holds the whole history on top of it.
func TestMemoryReplayLargerThanBuffer(t *testing.T) {
	b := newMemory(t, pubsub.WithBufferSize(1), pubsub.WithHistory(50))
	defer b.Close()
	since := subscribe(t, b, "t").Start().Offset
	var want []pubsub.Event
	for i := range 50 {
		want = append(want, ev("update", fmt.Sprint(i)))
	}
	publish(t, b, "t", want...)
	r := subscribeSince(t, b, "t", pubsub.Filter{}, since)
	wantStart(t, r, since, true, 50)
	publish(t, b, "t", ev("create", "live"))
	for _, w := range append(want, ev("create", "live")) {
		sameEvent(t, next(t, r), w)
	}
}

// The seam: a subscriber that keeps dropping its subscription and resuming from the last
// offset it saw, while publishers never stop, sees every event exactly once, in order.
func TestMemoryResumeSeamWhilePublishing(t *testing.T) {
	const publishers, each = 4, 500
	b := newMemory(t, pubsub.WithHistory(publishers*each))
	defer b.Close()
	s := subscribe(t, b, "t")
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				publish(t, b, "t", ev("update", pubsubtest.SeamPK(p, i)))
			}
		})
	}
	// Resume every 37 events, wherever the publishers are.
	s = pubsubtest.ResumeSeam(t, s, publishers*each, 37, func(_ int, since string) pubsub.Subscription {
		return subscribeSince(t, b, "t", pubsub.Filter{}, since)
	})
	wg.Wait()
	barrier(t, b, "t", s)
}

func TestMemoryOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  pubsub.Option
		want string
	}{
		{pubsub.WithBufferSize(0), "pubsub.WithBufferSize(0)"},
		{pubsub.WithHistory(-1), "pubsub.WithHistory(-1)"},
		{nil, "nil Option"},
		{func(s *pubsub.Settings) error { s.Extra = struct{}{}; return nil }, "another broker"},
	} {
		b, err := pubsub.NewMemoryBroker(tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewMemoryBroker: %v, want an error naming %q", err, tc.want)
		}
		if b != nil {
			t.Errorf("NewMemoryBroker returned a broker with its error")
		}
	}
}

// A topic's history outlives its subscribers, and a subscribe-only topic does not pile up.
func TestMemoryHistoryWithoutSubscribers(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	s, err := b.Subscribe(context.Background(), "t", pubsub.Filter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	since := s.Start().Offset
	s.Close()
	publish(t, b, "t", ev("create", "1")) // no subscriber now
	r := subscribeSince(t, b, "t", pubsub.Filter{}, since)
	wantStart(t, r, since, true, 1)
	sameEvent(t, next(t, r), ev("create", "1"))
}
