package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsbridge/wsbridge/pubsub"
)

// ErrConnectionLost ends the subscriptions of a Broker whose NATS
// connection dropped or closed.
var ErrConnectionLost = errors.New("natsbroker: NATS connection lost, events may have been missed")

// requestTimeout bounds each JetStream request when the caller's context has
// no earlier deadline.
const requestTimeout = 5 * time.Second

// Broker is a pubsub.Broker over a NATS connection with JetStream. Close it
// to release its subscriptions and its connection watcher; Close leaves the
// connection open.
type Broker struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	name    string // the stream's
	prefix  string
	bufSize int

	status    chan nats.Status // connection-loss notices
	watchDone chan struct{}

	mu     sync.Mutex // guards subs and closed; taken after a subscription's mu, never before
	subs   map[*subscription]struct{}
	closed bool
}

var _ pubsub.Broker = (*Broker)(nil)

// New returns a Broker publishing and subscribing on nc, after creating its
// JetStream stream or updating it to opts. Its options are this package's
// and pubsub.WithBufferSize and pubsub.WithHistory.
func New(ctx context.Context, nc *nats.Conn, opts ...pubsub.Option) (*Broker, error) {
	cfg := &config{prefix: DefaultSubjectPrefix, replicas: 1}
	s := pubsub.Settings{BufferSize: pubsub.DefaultBufferSize, History: DefaultHistory, Extra: cfg}
	if err := pubsub.Apply(&s, opts...); err != nil {
		return nil, err
	}
	if s.History < 1 {
		return nil, fmt.Errorf("natsbroker: pubsub.WithHistory(%d): the stream keeps at least 1 event", s.History)
	}
	if cfg.stream == "" {
		cfg.stream = streamName(cfg.prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	stream, err := js.CreateOrUpdateStream(rctx, jetstream.StreamConfig{
		Name:      cfg.stream,
		Subjects:  []string{cfg.prefix + ">"},
		Retention: jetstream.LimitsPolicy,
		Discard:   jetstream.DiscardOld, // oldest first: see the package doc
		MaxMsgs:   int64(s.History),
		MaxAge:    cfg.maxAge,
		Storage:   jetstream.FileStorage,
		Replicas:  cfg.replicas,
	})
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("natsbroker: JetStream is not enabled on the NATS server (run nats-server with -js): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbroker: creating stream %s on %s>: %w", cfg.stream, cfg.prefix, err)
	}
	b := &Broker{
		nc:        nc,
		js:        js,
		stream:    stream,
		name:      cfg.stream,
		prefix:    cfg.prefix,
		bufSize:   s.BufferSize,
		watchDone: make(chan struct{}),
		subs:      make(map[*subscription]struct{}),
	}
	b.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	go b.watch()
	return b, nil
}

// Publish stores ev in the stream, for the subscribers of topic on every
// replica, and returns once JetStream has acknowledged it.
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
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := b.js.Publish(ctx, subj, encode(ev)); err != nil {
		return fmt.Errorf("natsbroker: publishing to %s: %w", subj, err)
	}
	return nil
}

// Subscribe subscribes to the events of topic that f matches. With a since
// the stream still reaches back to, it first reads the events after since up
// to the stream's last one (the replay, in the subscription's buffer when it
// returns), then consumes from the next sequence: no gap, no duplicate. Every
// Publish after it returns, from any replica, reaches the subscription. The
// subscription ends when ctx is done.
func (b *Broker) Subscribe(ctx context.Context, topic string, f pubsub.Filter, since string) (pubsub.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	subj, err := b.subject(topic)
	if err != nil {
		return nil, err
	}
	if b.isClosed() {
		return nil, pubsub.ErrClosed
	}
	info, err := b.info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: reading stream %s: %w", b.name, err)
	}
	epoch := epochOf(info)
	last := info.State.LastSeq
	start := pubsub.Start{Offset: offset(epoch, last)}
	var replay []pubsub.Event
	if seq, ok := parseOffset(since, epoch); ok && seq <= last && seq+1 >= info.State.FirstSeq {
		if replay, err = b.replay(ctx, subj, f, epoch, seq, last); err != nil {
			return nil, err
		}
		start = pubsub.Start{Offset: since, Recovered: true, Replayed: len(replay)}
		if seq < last {
			// Retention removes the oldest first: if the stream still starts at or before
			// seq+1, none of the events replay read past was removed before it got to them.
			if info, err = b.info(ctx); err != nil {
				return nil, fmt.Errorf("natsbroker: reading stream %s: %w", b.name, err)
			}
			if info.State.FirstSeq > seq+1 {
				start, replay = pubsub.Start{Offset: offset(epoch, last)}, nil
			}
		}
	}

	s := &subscription{b: b, filter: f, epoch: epoch, start: start, ch: make(chan pubsub.Event, b.bufSize+len(replay))}
	for _, ev := range replay {
		s.ch <- ev
	}
	// Registered before the consumer exists, so that a connection loss from
	// here on ends it.
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, pubsub.ErrClosed
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	s.watch(ctx)

	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cons, err := b.js.OrderedConsumer(rctx, b.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    last + 1,
		// One attempt: a consumer error ends the subscription anyway (consumeError), and
		// nats.go retries a reset holding the lock Stop needs, forever by default, so a
		// subscription ended while the server is away would never stop.
		MaxResetAttempts: 1,
	})
	if err == nil {
		var cc jetstream.ConsumeContext
		// Consume creates the consumer on the server before it returns: from then on
		// every publish, numbered after last, reaches it.
		if cc, err = cons.Consume(s.deliver, jetstream.ConsumeErrHandler(s.consumeError)); err == nil {
			s.attach(cc)
			return s, nil
		}
	}
	s.end(err)
	return nil, fmt.Errorf("natsbroker: consuming %s from stream %s: %w", subj, b.name, err)
}

// info reads the stream's state.
func (b *Broker) info(ctx context.Context) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return b.stream.Info(ctx)
}

// replay reads the events of subj after seq, up to last, that f matches.
func (b *Broker) replay(ctx context.Context, subj string, f pubsub.Filter, epoch string, seq, last uint64) ([]pubsub.Event, error) {
	var out []pubsub.Event
	for next := seq + 1; next <= last; {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		m, err := b.stream.GetMsg(rctx, next, jetstream.WithGetMsgSubject(subj))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("natsbroker: reading the history of %s: %w", subj, err)
		}
		if m.Sequence > last {
			break // the consumer delivers it
		}
		ev, err := decode(m.Data)
		if err != nil {
			return nil, fmt.Errorf("%w on %s at %d", err, subj, m.Sequence)
		}
		ev.Offset = offset(epoch, m.Sequence)
		if f.Match(ev) {
			out = append(out, ev)
		}
		next = m.Sequence + 1
	}
	return out, nil
}

// Close ends every subscription with pubsub.ErrClosed and makes Publish
// and Subscribe return it. The NATS connection and the stream stay.
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

// watch ends every subscription when the connection drops: the subscriber
// resumes with the last offset it saw, and learns whether it lost anything.
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

// epochOf tells streams of the same name apart: its creation time.
func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 36)
}

func offset(epoch string, seq uint64) string {
	return epoch + ":" + strconv.FormatUint(seq, 10)
}

// parseOffset returns the stream sequence of an offset of the stream of epoch.
func parseOffset(off, epoch string) (uint64, bool) {
	e, n, ok := strings.Cut(off, ":")
	if !ok || e != epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}
