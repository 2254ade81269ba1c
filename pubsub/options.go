package pubsub

// DefaultBufferSize is the number of events a subscription buffers unless
// configured otherwise.
const DefaultBufferSize = 256

// Option configures a MemoryBroker.
type Option func(*MemoryBroker)

// WithBufferSize sets how many events each subscription buffers before it
// is ended with ErrSlowSubscriber. It panics if n < 1.
func WithBufferSize(n int) Option {
	if n < 1 {
		panic("pubsub: WithBufferSize needs n >= 1")
	}
	return func(b *MemoryBroker) { b.bufSize = n }
}
