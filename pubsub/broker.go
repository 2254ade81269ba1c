package pubsub

import (
	"context"
	"errors"
)

var (
	// ErrClosed is returned by a closed Broker and reported by the
	// subscriptions its Close ended.
	ErrClosed = errors.New("pubsub: broker closed")
	// ErrSlowSubscriber ends a subscription whose buffer overflowed.
	ErrSlowSubscriber = errors.New("pubsub: subscriber too slow, events would be lost")
)

// Broker fans events out to subscribers. Implementations are safe for
// concurrent use.
type Broker interface {
	// Publish delivers ev to every current subscriber of topic (on every
	// replica, for a distributed broker) and records it in the topic's
	// history.
	Publish(ctx context.Context, topic string, ev Event) error
	// Subscribe registers interest in the events of topic that f matches.
	// When it returns, every later Publish, from any replica, reaches the
	// subscription. The subscription ends when ctx is done.
	//
	// since is "" or the Offset of an event of topic that an earlier
	// subscription delivered. With since, the subscription first delivers
	// the events after since that the broker still has, then continues
	// live, with no gap and no duplicate at the seam; Subscription.Start
	// tells whether the history reached back to since. A since the broker
	// cannot place (malformed, from another broker or another epoch, in the
	// future) is not an error: the subscription starts live, not recovered.
	Subscribe(ctx context.Context, topic string, f Filter, since string) (Subscription, error)
	// Close ends every subscription (their Events channels close, Err
	// reports ErrClosed) and refuses further use.
	Close() error
}

// Start tells where a subscription begins.
type Start struct {
	// Offset is the position delivery starts after: every event of the topic
	// after it that the filter matches is delivered, in order. It is since
	// when Recovered, else the topic's latest position when the subscription
	// began. Like an event's Offset, it can be the since of a later Subscribe.
	Offset string
	// Recovered is true when since was given and every event after it is
	// delivered. False without since, and when the broker no longer had all
	// the events after since: those up to Offset are lost, and the
	// subscriber must reload what it shows.
	Recovered bool
	// Replayed is how many of the first events on Events were published
	// before Subscribe (the replay from history); the rest are live.
	Replayed int
}

// Subscription is one subscriber's stream of events on one topic.
type Subscription interface {
	// Events delivers the topic's events in publish order, replayed ones
	// first. It is closed when the subscription ends.
	Events() <-chan Event
	// Start tells where the subscription begins. It does not change.
	Start() Start
	// Err tells why the subscription ended: nil after Close, ErrClosed
	// after the broker's Close, ErrSlowSubscriber if its buffer
	// overflowed, the context's error if the Subscribe context ended, or a
	// broker-specific error. It is nil while the subscription is live.
	Err() error
	// Close ends the subscription. It is idempotent.
	Close()
}
