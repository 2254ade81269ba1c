package pubsub

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// MemoryBroker is the in-process Broker: it serves the subscribers of one
// process only, which is all a backend running as a single replica needs.
// The zero value is not usable; create one with NewMemoryBroker.
//
// Each topic numbers its events and keeps the last History of them (see
// WithHistory) for Subscribe's since. Offsets carry the broker's epoch, a
// random number drawn by NewMemoryBroker, so that after a restart of the
// process an offset from before it is never taken for one of the new
// counter: it is not recovered.
type MemoryBroker struct {
	bufSize int
	history int
	epoch   string

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

	seq  uint64  // the last event's number; 0 before the first
	hist []Event // ring of the last events, at most the broker's history
	head int     // index in hist of the oldest event once hist is full
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

// record keeps ev, whose number is t.seq, in the ring of capacity n.
func (t *memTopic) record(ev Event, n int) {
	switch {
	case n == 0:
	case len(t.hist) < n:
		t.hist = append(t.hist, ev)
	default:
		t.hist[t.head] = ev
		t.head = (t.head + 1) % n
	}
}

// after returns the kept events numbered above seq that f matches, oldest
// first, and whether the ring reaches back to seq (nothing after it is gone).
func (t *memTopic) after(seq uint64, f Filter) ([]Event, bool) {
	if seq > t.seq {
		return nil, false // from the future: not this counter's
	}
	missing := t.seq - seq // events after seq
	if missing > uint64(len(t.hist)) {
		return nil, false
	}
	var out []Event
	for i := len(t.hist) - int(missing); i < len(t.hist); i++ {
		ev := t.hist[(t.head+i)%len(t.hist)]
		if f.Match(ev) {
			out = append(out, ev)
		}
	}
	return out, true
}

// deliver hands ev to the subscriptions of set that match it, ending those whose buffer
// is full.
func (t *memTopic) deliver(set map[*memSub]struct{}, ev Event) {
	for s := range set {
		if !s.filter.Match(ev) {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			t.delete(s)
			s.end(ErrSlowSubscriber)
		}
	}
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns an in-process broker. Its options are
// WithBufferSize and WithHistory; an option of another broker is an error.
func NewMemoryBroker(opts ...Option) (*MemoryBroker, error) {
	s := Settings{BufferSize: DefaultBufferSize, History: DefaultHistory}
	if err := Apply(&s, opts...); err != nil {
		return nil, err
	}
	if s.Extra != nil {
		return nil, fmt.Errorf("pubsub: NewMemoryBroker: an option of another broker (%T)", s.Extra)
	}
	return &MemoryBroker{
		bufSize: s.BufferSize,
		history: s.History,
		epoch:   strconv.FormatUint(rand.Uint64()>>16, 36),
		topics:  make(map[string]*memTopic),
	}, nil
}

// offset is the Offset of event number seq.
func (b *MemoryBroker) offset(seq uint64) string {
	return b.epoch + ":" + strconv.FormatUint(seq, 10)
}

// parseOffset returns the event number of an offset of this broker.
func (b *MemoryBroker) parseOffset(off string) (uint64, bool) {
	epoch, n, ok := strings.Cut(off, ":")
	if !ok || epoch != b.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
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
	if t := b.topics[topic]; t != nil {
		b.publish(t, ev)
		b.mu.RUnlock()
		return nil
	}
	// The topic's first event creates it, which needs mu exclusively.
	b.mu.RUnlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.publish(b.topic(topic), ev)
	return nil
}

// publish numbers ev, records it and hands it to t's subscriptions. b.mu must
// be held. A topic with events is kept for its history, even without
// subscribers, so nothing is dropped here.
func (b *MemoryBroker) publish(t *memTopic, ev Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	ev.Offset = b.offset(t.seq)
	t.record(ev, b.history)
	t.deliver(t.byPK[""], ev)
	if ev.PK != "" {
		t.deliver(t.byPK[ev.PK], ev)
	}
}

// topic returns the topic named name, creating it. b.mu must be held exclusively.
func (b *MemoryBroker) topic(name string) *memTopic {
	t := b.topics[name]
	if t == nil {
		t = &memTopic{subs: make(map[*memSub]struct{}), byPK: make(map[string]map[*memSub]struct{})}
		b.topics[name] = t
	}
	return t
}

// Subscribe registers a subscription on topic, delivering the events f
// matches; it ends when ctx is done. A publish visits only the
// subscriptions whose filter names its key or no key. With since, the
// replayed events are in the subscription's buffer when Subscribe returns.
func (b *MemoryBroker) Subscribe(ctx context.Context, topic string, f Filter, since string) (Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	// With mu held exclusively no publisher runs: the replay and the
	// registration below see the same last event.
	t := b.topic(topic)
	start := Start{Offset: b.offset(t.seq)}
	var replay []Event
	if since != "" {
		if seq, ok := b.parseOffset(since); ok {
			if replay, start.Recovered = t.after(seq, f); start.Recovered {
				start.Offset, start.Replayed = b.offset(seq), len(replay)
			}
		}
	}
	// The replay never counts against the buffer: it is bounded by the history.
	s := &memSub{b: b, topic: topic, filter: f, start: start, ch: make(chan Event, b.bufSize+len(replay))}
	for _, ev := range replay {
		s.ch <- ev
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

// dropIfEmpty forgets topic if it is still t, has no subscribers and never
// had an event, so that topics only subscribed to do not pile up. A topic
// with events stays: its counter must never restart, and its history serves
// later subscriptions. b.mu must be held exclusively.
func (b *MemoryBroker) dropIfEmpty(topic string, t *memTopic) {
	if b.topics[topic] == t && len(t.subs) == 0 && t.seq == 0 {
		delete(b.topics, topic)
	}
}
