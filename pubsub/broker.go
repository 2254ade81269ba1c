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
	// replica, for a distributed broker).
	Publish(ctx context.Context, topic string, ev Event) error
	// Subscribe registers interest in topic. When it returns, every later
	// Publish, from any replica, reaches the subscription. The subscription
	// ends when ctx is done.
	Subscribe(ctx context.Context, topic string) (Subscription, error)
	// Close ends every subscription (their Events channels close, Err
	// reports ErrClosed) and refuses further use.
	Close() error
}

// FilteredBroker is a Broker that can apply a Filter before it hands an event to a
// subscription, so an event wakes only the subscribers it matches. Serve uses it when the
// broker has it: with thousands of subscriptions on one topic, each on its own key, a
// publish then costs the matching subscriptions, not all of them.
type FilteredBroker interface {
	Broker
	// SubscribeFiltered is Subscribe, delivering only the events f matches.
	SubscribeFiltered(ctx context.Context, topic string, f Filter) (Subscription, error)
}

// Subscription is one subscriber's stream of events on one topic.
type Subscription interface {
	// Events delivers the topic's events in publish order. It is closed
	// when the subscription ends.
	Events() <-chan Event
	// Err tells why the subscription ended: nil after Close, ErrClosed
	// after the broker's Close, ErrSlowSubscriber if its buffer
	// overflowed, the context's error if the Subscribe context ended, or a
	// broker-specific error. It is nil while the subscription is live.
	Err() error
	// Close ends the subscription. It is idempotent.
	Close()
}
