package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
)

// WithWriteDelay holds the events of a busy subscription so that those arriving meanwhile
// share a write; it must never lose, reorder or duplicate one, never hold a reply, and never
// hold the event of a quiet subscription.

// subscribeCreates subscribes c to created questions.
func subscribeCreates(t *testing.T, c *client) {
	t.Helper()
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
}

// TestWriteDelayDeliversEveryEvent: with a short delay, every event reaches the subscriber
// once and in order, without any reply to carry it.
func TestWriteDelayDeliversEveryEvent(t *testing.T) {
	e := newEnv(t, bridge.WithWriteDelay(50*time.Millisecond))
	sub, writer := e.dial(), e.dial()
	subscribeCreates(t, sub)
	var ids []string
	for i := range 20 {
		ids = append(ids, writer.createQuestion(fmt.Sprintf("held %d", i)))
	}
	for i, id := range ids {
		f := sub.next()
		if f.Payload["action"] != "create" || f.data()["id"] != id {
			t.Fatalf("event %d: want the create of %s, got %s", i, id, f.raw)
		}
	}
	if extra := sub.barrier(); len(extra) > 0 {
		t.Fatalf("frames after the last event: %s", extra[0].raw)
	}
}

// TestWriteDelayReplyTakesHeldEvents: the first event of a quiet subscription goes out at
// once; the two that follow it within the delay are held, for far longer than the test
// waits, until a reply queued behind them takes them, in order, before it. The delay (twice
// waitLimit) is what makes the test fail if either did not happen: it never has to pass.
func TestWriteDelayReplyTakesHeldEvents(t *testing.T) {
	e := newEnv(t, bridge.WithWriteTimeout(3*waitLimit), bridge.WithWriteDelay(2*waitLimit))
	sub, writer := e.dial(), e.dial()
	subscribeCreates(t, sub)
	var ids []string
	for i := range 3 {
		ids = append(ids, writer.createQuestion(fmt.Sprintf("held %d", i)))
	}
	// The three events are queued to sub (and held) once the bridge has counted them.
	waitFor(t, "3 events queued", func() bool {
		return metric(t, e, `wsbridge_events_delivered_total{stream="questions"}`) >= 3
	})
	before := sub.barrier() // an error reply of the read loop, queued behind the held events
	if len(before) != len(ids) {
		t.Fatalf("%d frames before the reply, want the %d held events", len(before), len(ids))
	}
	for i, id := range ids {
		if f := before[i]; f.Payload["action"] != "create" || f.data()["id"] != id {
			t.Fatalf("frame %d: want the create of %s, got %s", i, id, f.raw)
		}
	}
}

// TestWriteDelayQuietSubscriptionNotHeld: an event that comes after a quiet spell longer
// than the delay goes out at once, with no reply to carry it (a delay of twice waitLimit
// would fail the test otherwise).
func TestWriteDelayQuietSubscriptionNotHeld(t *testing.T) {
	e := newEnv(t, bridge.WithWriteTimeout(3*waitLimit), bridge.WithWriteDelay(2*waitLimit))
	sub, writer := e.dial(), e.dial()
	subscribeCreates(t, sub)
	id := writer.createQuestion("quiet")
	if f := sub.next(); f.Payload["action"] != "create" || f.data()["id"] != id {
		t.Fatalf("want the create of %s, got %s", id, f.raw)
	}
}
