package pubsub

import "sync"

// memSub is a MemoryBroker subscription. It is in its topic's subs exactly
// while it is live; it leaves them and ends in the same critical section.
type memSub struct {
	b      *MemoryBroker
	topic  string
	filter Filter
	start  Start
	ch     chan Event
	stop   func() bool // stops the context watch; set before any end

	mu  sync.Mutex // guards err, which Err may read at any time
	err error
}

func (s *memSub) Events() <-chan Event { return s.ch }

func (s *memSub) Start() Start { return s.start }

func (s *memSub) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *memSub) Close() { s.remove(nil) }

// remove takes s out of its topic and ends it with err, unless it has
// already ended.
func (s *memSub) remove(err error) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[s.topic]
	if t == nil {
		return // broker closed, or s ended and its topic dropped
	}
	if _, ok := t.subs[s]; !ok {
		return
	}
	t.delete(s)
	s.end(err)
	b.dropIfEmpty(s.topic, t)
}

// end records err and closes the channel. The caller must have removed s
// from its topic under locks that exclude every publisher sending to it.
func (s *memSub) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	close(s.ch)
	s.stop()
}
