package pubsub

import (
	"errors"
	"fmt"
)

// DefaultBufferSize is the number of events a subscription buffers unless
// configured otherwise.
const DefaultBufferSize = 256

// DefaultHistory is the number of events a MemoryBroker keeps per topic for
// Subscribe's since, unless configured otherwise.
const DefaultHistory = 1000

// Settings are what Options set. A broker fills in its defaults, then applies
// the options in order. BufferSize and History are shared by every broker of
// this module; Extra holds the settings of a broker package's own options
// (package natsbroker's), nil for MemoryBroker.
type Settings struct {
	BufferSize int // events each subscription buffers before ErrSlowSubscriber
	History    int // events kept for replay; what it counts depends on the broker
	Extra      any
}

// Option configures a broker: a MemoryBroker or, with the options of package
// natsbroker too, a natsbroker.Broker. An invalid value is reported by the
// broker's constructor, naming the option.
type Option func(*Settings) error

// Apply applies opts to s in order and returns the first error. Broker
// implementations call it from their constructors.
func Apply(s *Settings, opts ...Option) error {
	for _, o := range opts {
		if o == nil {
			return errors.New("pubsub: nil Option")
		}
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// WithBufferSize sets how many events each subscription buffers before it
// is ended with ErrSlowSubscriber (default DefaultBufferSize). n must be at
// least 1.
func WithBufferSize(n int) Option {
	return func(s *Settings) error {
		if n < 1 {
			return fmt.Errorf("pubsub.WithBufferSize(%d): the buffer must hold at least 1 event", n)
		}
		s.BufferSize = n
		return nil
	}
}

// WithHistory sets how many past events the broker keeps, so that a
// subscription with since can replay what its subscriber missed. A
// MemoryBroker keeps n events per topic (default DefaultHistory; 0 keeps
// none); a natsbroker.Broker keeps n events in its JetStream stream, across
// all topics (default natsbroker.DefaultHistory; at least 1).
func WithHistory(n int) Option {
	return func(s *Settings) error {
		if n < 0 {
			return fmt.Errorf("pubsub.WithHistory(%d): the history cannot be negative", n)
		}
		s.History = n
		return nil
	}
}
