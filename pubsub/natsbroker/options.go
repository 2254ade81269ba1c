package natsbroker

// DefaultSubjectPrefix is prepended to a topic to make its NATS subject.
const DefaultSubjectPrefix = "wsbridge.events."

// Option configures a Broker.
type Option func(*Broker)

// WithSubjectPrefix replaces DefaultSubjectPrefix, e.g. to keep the events
// of several deployments sharing a NATS cluster apart. Include the trailing
// dot.
func WithSubjectPrefix(prefix string) Option {
	return func(b *Broker) { b.prefix = prefix }
}

// WithBufferSize sets how many events each subscription buffers before it
// is ended with pubsub.ErrSlowSubscriber (default
// pubsub.DefaultBufferSize). It panics if n < 1.
func WithBufferSize(n int) Option {
	if n < 1 {
		panic("natsbroker: WithBufferSize needs n >= 1")
	}
	return func(b *Broker) { b.bufSize = n }
}
