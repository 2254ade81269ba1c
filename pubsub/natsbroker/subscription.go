package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsbridge/wsbridge/pubsub"
)

// subscription is one subscriber: an ordered JetStream consumer whose
// messages are decoded into a bounded channel, after the replay.
type subscription struct {
	b      *Broker
	filter pubsub.Filter
	epoch  string
	start  pubsub.Start
	ch     chan pubsub.Event

	mu    sync.Mutex  // guards the fields below and sends on ch
	stop  func() bool // stops the context watch
	cc    jetstream.ConsumeContext
	ended bool
	err   error
}

func (s *subscription) Events() <-chan pubsub.Event { return s.ch }

func (s *subscription) Start() pubsub.Start { return s.start }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *subscription) Close() { s.end(nil) }

// deliver is the consumer's message handler, called in stream order.
func (s *subscription) deliver(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		s.end(fmt.Errorf("natsbroker: message on %s without JetStream metadata: %w", m.Subject(), err))
		return
	}
	ev, err := decode(m.Data())
	if err != nil {
		s.end(fmt.Errorf("%w on %s at %d", err, m.Subject(), md.Sequence.Stream))
		return
	}
	if !s.filter.Match(ev) {
		return
	}
	ev.Offset = offset(s.epoch, md.Sequence.Stream)
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

// consumeError ends s on any error of the consumer: a missed heartbeat, a deleted consumer or
// stream, a lost responder. The ordered consumer would recreate itself, but silently past any
// events the stream removed meanwhile; ended, the subscriber resumes with since and learns
// whether it lost anything.
//
// nats.go calls it holding the consumer's lock, which Stop takes: end runs on a goroutine of
// its own, which returns as soon as the lock is released.
//
// A server going away can reach the consumer first ("server shutdown", "no responders"), before the connection
// notices: that is the connection lost too.
func (s *subscription) consumeError(_ jetstream.ConsumeContext, err error) {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, nats.ErrConnectionClosed) || !s.b.nc.IsConnected() {
		go s.end(fmt.Errorf("%w (consuming stream %s: %v)", ErrConnectionLost, s.b.name, err))
		return
	}
	go s.end(fmt.Errorf("natsbroker: consuming stream %s: %w", s.b.name, err))
}

// watch ends s when ctx is done.
func (s *subscription) watch(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.stop = context.AfterFunc(ctx, func() { s.end(ctx.Err()) })
	}
}

// attach records the consumer, stopping it if s ended meanwhile.
func (s *subscription) attach(cc jetstream.ConsumeContext) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cc = cc
	if s.ended {
		cc.Stop()
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
	cc, stop := s.cc, s.stop
	s.mu.Unlock()
	if cc != nil {
		cc.Stop() // does not wait for the handler, which may be the caller
	}
	if stop != nil {
		stop()
	}
	s.b.forget(s)
}
