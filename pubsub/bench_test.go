package pubsub_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
)

// BenchmarkMemoryFanOut1000 publishes one event to 1,000 subscribers of a
// topic and receives it on each: the cost of one change on a busy backend.
func BenchmarkMemoryFanOut1000(b *testing.B) {
	br := newMemory(b)
	defer br.Close()
	ctx := context.Background()
	subs := make([]pubsub.Subscription, 1000)
	for i := range subs {
		s, err := br.Subscribe(ctx, "polls.v1.Question", pubsub.Filter{}, "")
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	ev := pubsub.Event{Action: pubsub.ActionUpdate, PK: "42", Data: make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Publish(ctx, "polls.v1.Question", ev); err != nil {
			b.Fatal(err)
		}
		for _, s := range subs {
			<-s.Events()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/delivery")
}

// BenchmarkMemoryPublishKeyed10000 publishes one event while 10,000 subscriptions each
// watch their own key, as 10,000 clients each following one row do: the publish should
// cost the one matching subscription, not all 10,000.
func BenchmarkMemoryPublishKeyed10000(b *testing.B) {
	br := newMemory(b)
	defer br.Close()
	ctx := context.Background()
	subs := make([]pubsub.Subscription, 10000)
	for i := range subs {
		s, err := br.Subscribe(ctx, "polls.v1.Question", pubsub.Filter{PK: strconv.Itoa(i)}, "")
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	ev := pubsub.Event{Action: pubsub.ActionUpdate, PK: "42", Data: make([]byte, 64)}
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Publish(ctx, "polls.v1.Question", ev); err != nil {
			b.Fatal(err)
		}
		<-subs[42].Events()
	}
}
