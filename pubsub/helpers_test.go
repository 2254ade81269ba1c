package pubsub_test

import (
	"testing"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/pubsubtest"
)

const waitTimeout = pubsubtest.Timeout

var (
	subscribe = pubsubtest.Subscribe
	publish   = pubsubtest.Publish
	next      = pubsubtest.Next
	ended     = pubsubtest.EndedWith
	barrier   = pubsubtest.Barrier
)

// newMemory is a MemoryBroker with opts; the test fails if they are refused.
func newMemory(t testing.TB, opts ...pubsub.Option) *pubsub.MemoryBroker {
	t.Helper()
	b, err := pubsub.NewMemoryBroker(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
