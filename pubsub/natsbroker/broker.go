package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/pubsub"
)

// ErrConnectionLost ends the subscriptions of a Broker whose NATS
// connection dropped or closed.
var ErrConnectionLost = errors.New("natsbroker: NATS connection lost, events may have been missed")

// flushTimeout bounds Subscribe's wait for the server to confirm interest
// when the caller's context has no earlier deadline.
const flushTimeout = 5 * time.Second

// Broker is a pubsub.Broker over a NATS connection. Close it to release its
// subscriptions and its connection watcher; Close leaves the connection
// open.
type Broker struct {
	nc      *nats.Conn
	prefix  string
	bufSize int

	status    chan nats.Status // connection-loss notices
	watchDone chan struct{}

	mu     sync.Mutex // guards subs and closed; taken after a subscription's mu, never before
	subs   map[*subscription]struct{}
	closed bool
}

var _ pubsub.Broker = (*Broker)(nil)

// New returns a Broker publishing and subscribing on nc.
func New(nc *nats.Conn, opts ...Option) *Broker {
	b := &Broker{
		nc:        nc,
		prefix:    DefaultSubjectPrefix,
		bufSize:   pubsub.DefaultBufferSize,
		watchDone: make(chan struct{}),
		subs:      make(map[*subscription]struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	b.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	go b.watch()
	return b
}

// Publish sends ev to the subscribers of topic on every replica. It returns
// once NATS has accepted the message for sending; the connection delivers
// a replica's messages in order.
func (b *Broker) Publish(ctx context.Context, topic string, ev pubsub.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	subj, err := b.subject(topic)
	if err != nil {
		return err
	}
	if b.isClosed() {
		return pubsub.ErrClosed
	}
	return b.nc.Publish(subj, encode(ev))
}

// Subscribe subscribes to topic and waits until the NATS server has
// registered the interest, so that every Publish after it returns, from any
// replica, reaches the subscription. The subscription ends when ctx is
// done.
func (b *Broker) Subscribe(ctx context.Context, topic string) (pubsub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	subj, err := b.subject(topic)
	if err != nil {
		return nil, err
	}
	s := &subscription{b: b, ch: make(chan pubsub.Event, b.bufSize)}
	// Registered before the NATS subscription exists, so that a
	// connection loss from here on ends it.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	s.watch(ctx)

	ns, err := b.nc.Subscribe(subj, s.deliver)
	if err != nil {
		s.end(err)
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", subj, err)
	}
	// deliver never blocks, so NATS's own queue stays short; with no limit
	// on it NATS never drops a message without telling us.
	_ = ns.SetPendingLimits(-1, -1)
	s.attach(ns)

	fctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	if err := b.nc.FlushWithContext(fctx); err != nil {
		s.end(err)
		return nil, fmt.Errorf("natsbroker: registering interest in %s: %w", subj, err)
	}
	return s, nil
}

// Close ends every subscription with pubsub.ErrClosed and makes Publish
// and Subscribe return it. The NATS connection stays open.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()

	b.nc.RemoveStatusListener(b.status)
	<-b.watchDone
	for s := range subs {
		s.end(pubsub.ErrClosed)
	}
	return nil
}

// watch ends every subscription when the connection drops: NATS core does
// not replay what was published meanwhile.
func (b *Broker) watch() {
	defer close(b.watchDone)
	for st := range b.status {
		b.mu.Lock()
		subs := make([]*subscription, 0, len(b.subs))
		for s := range b.subs {
			subs = append(subs, s)
		}
		b.mu.Unlock()
		for _, s := range subs {
			s.end(fmt.Errorf("%w (%v)", ErrConnectionLost, st))
		}
	}
}

func (b *Broker) forget(s *subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// subject maps topic to its NATS subject, refusing wildcards and malformed
// subjects, which NATS would reject or, worse, match against other topics.
func (b *Broker) subject(topic string) (string, error) {
	subj := b.prefix + topic
	if topic == "" || strings.ContainsAny(subj, " \t\r\n*>") ||
		strings.HasPrefix(subj, ".") || strings.HasSuffix(subj, ".") || strings.Contains(subj, "..") {
		return "", fmt.Errorf("natsbroker: topic %q does not make a valid subject", topic)
	}
	return subj, nil
}
