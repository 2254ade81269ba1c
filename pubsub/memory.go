package pubsub

import (
	"context"
	"sync"
)

// MemoryBroker is the in-process Broker: it serves the subscribers of one
// process only, which is all a backend running as a single replica needs.
// The zero value is not usable; create one with NewMemoryBroker.
type MemoryBroker struct {
	bufSize int

	// mu guards topics and closed. Publish holds it shared for the whole
	// fan-out, so ending a subscription, which needs it exclusively, never
	// closes a channel a publisher is sending on.
	mu     sync.RWMutex
	topics map[string]*memTopic
	closed bool
}

type memTopic struct {
	// mu serialises publishers on the topic so that all its subscribers
	// see one order. Held with the broker's mu shared.
	mu   sync.Mutex
	subs map[*memSub]struct{} // every live subscription of the topic
	// Subscriptions by the key their filter names ("" for any key), so that a publish
	// visits only the subscriptions that can match it.
	byPK map[string]map[*memSub]struct{}
}

func (t *memTopic) add(s *memSub) {
	t.subs[s] = struct{}{}
	m := t.byPK[s.filter.PK]
	if m == nil {
		m = make(map[*memSub]struct{})
		t.byPK[s.filter.PK] = m
	}
	m[s] = struct{}{}
}

func (t *memTopic) delete(s *memSub) {
	delete(t.subs, s)
	if m := t.byPK[s.filter.PK]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(t.byPK, s.filter.PK)
		}
	}
}

// deliver hands ev to the subscriptions of set that match it, ending those whose buffer
// is full. It reports whether it ended any.
func (t *memTopic) deliver(set map[*memSub]struct{}, ev Event) (slow bool) {
	for s := range set {
		if !s.filter.Match(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			t.delete(s)
			s.end(ErrSlowSubscriber)
			slow = true
		}
	}
	return slow
}

var _ FilteredBroker = (*MemoryBroker)(nil)

// NewMemoryBroker returns an in-process broker.
func NewMemoryBroker(opts ...Option) *MemoryBroker {
	b := &MemoryBroker{bufSize: DefaultBufferSize, topics: make(map[string]*memTopic)}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Publish delivers ev to every current subscriber of topic without
// blocking: a subscriber whose buffer is full is ended with
// ErrSlowSubscriber instead.
func (b *MemoryBroker) Publish(ctx context.Context, topic string, ev Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return ErrClosed
	}
	t := b.topics[topic]
	if t == nil {
		b.mu.RUnlock()
		return nil
	}
	t.mu.Lock()
	slow := t.deliver(t.byPK[""], ev)
	if ev.PK != "" && t.deliver(t.byPK[ev.PK], ev) {
		slow = true
	}
	empty := slow && len(t.subs) == 0
	t.mu.Unlock()
	b.mu.RUnlock()

	if empty {
		b.mu.Lock()
		b.dropIfEmpty(topic, t)
		b.mu.Unlock()
	}
	return nil
}

// Subscribe registers a subscription on topic; it ends when ctx is done.
func (b *MemoryBroker) Subscribe(ctx context.Context, topic string) (Subscription, error) {
	return b.SubscribeFiltered(ctx, topic, Filter{})
}

// SubscribeFiltered is Subscribe, delivering only the events f matches. A publish visits
// only the subscriptions whose filter names its key or no key.
func (b *MemoryBroker) SubscribeFiltered(ctx context.Context, topic string, f Filter) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &memSub{b: b, topic: topic, filter: f, ch: make(chan Event, b.bufSize)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	t := b.topics[topic]
	if t == nil {
		t = &memTopic{subs: make(map[*memSub]struct{}), byPK: make(map[string]map[*memSub]struct{})}
		b.topics[topic] = t
	}
	t.add(s)
	s.stop = context.AfterFunc(ctx, func() { s.remove(ctx.Err()) })
	return s, nil
}

// Close ends every subscription with ErrClosed. Later calls to Publish and
// Subscribe return ErrClosed.
func (b *MemoryBroker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for _, t := range b.topics {
		for s := range t.subs {
			s.end(ErrClosed)
		}
	}
	b.topics = nil
	return nil
}

// dropIfEmpty forgets topic if it is still t and has no subscribers, so
// that topics do not pile up. b.mu must be held exclusively.
func (b *MemoryBroker) dropIfEmpty(topic string, t *memTopic) {
	if b.topics[topic] == t && len(t.subs) == 0 {
		delete(b.topics, topic)
	}
}
