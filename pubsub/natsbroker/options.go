package natsbroker

import (
	"fmt"
	"strings"
	"time"

	"github.com/wsbridge/wsbridge/pubsub"
)

// DefaultSubjectPrefix is prepended to a topic to make its NATS subject.
const DefaultSubjectPrefix = "wsbridge.events."

// DefaultHistory is how many events the stream keeps, across all topics,
// unless pubsub.WithHistory says otherwise.
const DefaultHistory = 100_000

// config is what this package's options set: pubsub.Settings.Extra of a Broker.
type config struct {
	prefix   string
	stream   string // "" : derived from prefix
	maxAge   time.Duration
	replicas int
}

// option makes a pubsub.Option that sets a field of config, refusing to
// configure another broker.
func option(name string, set func(*config) error) pubsub.Option {
	return func(s *pubsub.Settings) error {
		c, ok := s.Extra.(*config)
		if !ok {
			return fmt.Errorf("natsbroker.%s configures a natsbroker.Broker only", name)
		}
		return set(c)
	}
}

// WithSubjectPrefix replaces DefaultSubjectPrefix, e.g. to keep the events
// of several deployments sharing a NATS cluster apart. It must end with a
// dot. Each prefix has its own stream (see WithStream).
func WithSubjectPrefix(prefix string) pubsub.Option {
	return option("WithSubjectPrefix", func(c *config) error {
		if prefix == "." || !strings.HasSuffix(prefix, ".") || strings.ContainsAny(prefix, " \t\r\n*>") ||
			strings.HasPrefix(prefix, ".") || strings.Contains(prefix, "..") {
			return fmt.Errorf("natsbroker.WithSubjectPrefix(%q): want subject tokens each followed by a dot, such as \"myapp.events.\"", prefix)
		}
		c.prefix = prefix
		return nil
	})
}

// WithStream names the JetStream stream that holds the events (default: the
// subject prefix in upper case with dots as underscores, WSBRIDGE_EVENTS for
// the default prefix). Every replica must use the same name and options: each
// creates the stream, or updates it to its own configuration.
func WithStream(name string) pubsub.Option {
	return option("WithStream", func(c *config) error {
		if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") {
			return fmt.Errorf("natsbroker.WithStream(%q): a stream name cannot be empty or contain whitespace, '.', '*', '>', '/' or '\\'", name)
		}
		c.stream = name
		return nil
	})
}

// WithMaxAge bounds how long the stream keeps an event (default: no bound;
// pubsub.WithHistory bounds the count).
func WithMaxAge(d time.Duration) pubsub.Option {
	return option("WithMaxAge", func(c *config) error {
		if d < 0 {
			return fmt.Errorf("natsbroker.WithMaxAge(%v): the age cannot be negative", d)
		}
		c.maxAge = d
		return nil
	})
}

// WithReplicas sets how many copies of the stream a JetStream cluster keeps
// (default 1; at most 5).
func WithReplicas(n int) pubsub.Option {
	return option("WithReplicas", func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("natsbroker.WithReplicas(%d): JetStream keeps 1 to 5 replicas", n)
		}
		c.replicas = n
		return nil
	})
}

// streamName derives the default stream name from a subject prefix.
func streamName(prefix string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSuffix(prefix, "."), ".", "_"))
}
