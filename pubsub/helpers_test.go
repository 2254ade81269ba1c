package pubsub_test

import (
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/pubsubtest"
)

const waitTimeout = pubsubtest.Timeout

var (
	subscribe = pubsubtest.Subscribe
	publish   = pubsubtest.Publish
	next      = pubsubtest.Next
	ended     = pubsubtest.EndedWith
)

// quiet checks that no event arrives for a moment.
func quiet(t *testing.T, s pubsub.Subscription) { pubsubtest.Quiet(t, s, 50*time.Millisecond) }

func ev(action, pk string) pubsub.Event {
	return pubsub.Event{Action: action, PK: pk, Data: []byte(action + "/" + pk)}
}

func sameEvent(t *testing.T, got, want pubsub.Event) {
	t.Helper()
	if got.Action != want.Action || got.PK != want.PK || string(got.Data) != string(want.Data) {
		t.Fatalf("got event %+v, want %+v", got, want)
	}
}
