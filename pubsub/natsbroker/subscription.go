package natsbroker

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/pubsub"
)

// subscription is one subscriber: a NATS subscription whose messages are
// decoded into a bounded channel.
type subscription struct {
	b  *Broker
	ch chan pubsub.Event

	mu    sync.Mutex  // guards the fields below and sends on ch
	stop  func() bool // stops the context watch
	ns    *nats.Subscription
	ended bool
	err   error
}

func (s *subscription) Events() <-chan pubsub.Event { return s.ch }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *subscription) Close() { s.end(nil) }

// deliver is the NATS message handler. NATS calls it from one goroutine per
// subscription, in order.
func (s *subscription) deliver(m *nats.Msg) {
	ev, err := decode(m.Data)
	if err != nil {
		s.end(fmt.Errorf("%w on %s", err, m.Subject))
		return
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	select {
	case s.ch <- ev:
		s.mu.Unlock()
	default:
		s.mu.Unlock()
		s.end(pubsub.ErrSlowSubscriber)
	}
}

// watch ends s when ctx is done.
func (s *subscription) watch(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.stop = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	}
}

// attach records the NATS subscription, dropping it if s ended meanwhile.
func (s *subscription) attach(ns *nats.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ns = ns
	if s.ended {
		_ = ns.Unsubscribe()
	}
}

// end ends s with err unless it has already ended.
func (s *subscription) end(err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.err = true, err
	close(s.ch)
	if s.ns != nil {
		_ = s.ns.Unsubscribe() // fails only if the connection is closed, which drops it anyway
	}
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.b.forget(s)
}
