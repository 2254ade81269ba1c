package bridge

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The upstream lifecycle: one gRPC Subscribe stream per distinct subscription, opened when
// its first subscriber arrives, reopened with backoff when it breaks, and pumping each event
// to every subscriber until its last one leaves.

// upstream is one gRPC Subscribe stream and its subscribers.
type upstream struct {
	key    subKey
	res    *resource
	md     metadata.MD
	ctx    context.Context
	cancel context.CancelFunc
	pkVal  protoreflect.Value
	seq    uint64 // counts the events pumped; the run goroutine's alone
	// When the last event was sent to the subscribers (WithWriteDelay); the run goroutine's.
	lastEvent time.Time
	header    streamHeader // the current stream's header (resume.go); the run goroutine's alone

	mu      sync.Mutex
	live    bool
	gen     int // counts the streams opened, so a late resume timer of an old one does nothing
	subs    []*subscription
	pending []*subscription // waiting for the stream to be established, or its replay to end

	// Resume (resume.go). pos: the stream's header offset, then each received event's;
	// recovered: the current stream's x-bridge-recovered; replayLeft: its replayed
	// messages not yet received; opened: a stream was established once; catchUp: made for
	// a subscribe's since, until its first header. Written by the run goroutine only.
	pos        string
	recovered  bool
	replayLeft int
	opened     bool
	catchUp    bool
}

// run keeps one upstream stream open, reconnecting with backoff, until its last subscriber leaves.
func (h *hub) run(up *upstream) {
	defer h.wg.Done()
	defer up.cancel()
	backoff := newBackoff(100*time.Millisecond, 5*time.Second) // backoff.go
	for {
		stream, cancel, err := h.open(up)
		if err != nil {
			if up.ctx.Err() != nil {
				return
			}
			if h.failed(up, errorFromCall(err)) {
				return
			}
			if !sleep(up.ctx, backoff.NextBackOff()) {
				return
			}
			continue
		}
		opened := time.Now()
		h.live.Add(1)
		resume := h.established(up)
		delivered, err := h.pump(up, stream)
		resume.Stop()
		up.mu.Lock()
		up.live = false // before anything else: a late resume timer must not fire now
		up.mu.Unlock()
		cancel()
		h.live.Add(-1)
		if up.ctx.Err() != nil {
			return
		}
		// A stream that broke right after its header is not a recovery: keep backing off.
		if delivered || time.Since(opened) >= h.stableAfter {
			backoff.Reset()
		}
		h.srv.opts.logger.Warn("upstream subscription broke", "stream", up.key.stream, "err", err)
		if h.failed(up, newError(http.StatusServiceUnavailable, "Subscription interrupted: "+errorFromCall(err).firstMessage())) {
			return
		}
		if !sleep(up.ctx, backoff.NextBackOff()) {
			return
		}
	}
}

// open starts the Subscribe call and waits for the backend's response header, which the
// backend kit sends once the subscription is registered: from then on no change is missed.
func (h *hub) open(up *upstream) (grpc.ClientStream, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(up.ctx)
	// The whole set-up, connecting included, is bounded by the call timeout; the stream
	// itself then lives until cancel.
	timer := time.AfterFunc(h.srv.opts.callTimeout, cancel)
	stream, err := h.start(ctx, up)
	if !timer.Stop() {
		err = context.DeadlineExceeded
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return stream, cancel, nil
}

func (h *hub) start(ctx context.Context, up *upstream) (grpc.ClientStream, error) {
	sm := up.res.subscribe
	req := dynamicpb.NewMessage(sm.req)
	if up.key.hasPK && sm.pk != nil {
		req.Set(sm.pk, up.pkVal)
	}
	if sm.since != nil {
		if since := up.sinceForOpen(); since != "" { // resume.go
			req.Set(sm.since, protoreflect.ValueOfString(since))
		}
	}
	if sm.actions != nil {
		if sm.actions.IsList() {
			l := req.Mutable(sm.actions).List()
			for _, a := range up.key.events.names() {
				l.Append(protoreflect.ValueOfString(a))
			}
		} else if acts := up.key.events.names(); len(acts) == 1 {
			req.Set(sm.actions, protoreflect.ValueOfString(acts[0]))
		}
	}
	if len(up.md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, up.md)
	}
	stream, err := up.res.conn.NewStream(ctx, sm.desc, sm.method)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(req); err != nil {
		return nil, sendFailure(err, stream.RecvMsg(dynamicpb.NewMessage(sm.event)))
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	md, err := stream.Header()
	if err != nil {
		return nil, err
	}
	if md == nil {
		// No header: the call ended before the backend registered the subscription
		// (an error status, or an empty stream). RecvMsg says how.
		if err := stream.RecvMsg(dynamicpb.NewMessage(sm.event)); err != nil && err != io.EOF {
			return nil, err
		}
		return nil, status.Error(codes.Unavailable, "the backend ended the subscription at once")
	}
	up.header = parseStreamHeader(md) // resume.go
	return stream, nil
}

// sendFailure is the error of a stream whose SendMsg failed: gRPC documents that RecvMsg
// then tells the real status. It is never nil, whatever RecvMsg returned, so that start
// never returns a nil stream with a nil error.
func sendFailure(sendErr, recvErr error) error {
	if recvErr != nil && recvErr != io.EOF {
		return recvErr
	}
	return sendErr
}

// established marks the upstream live: pending subscribers get their 200. Subscribers
// told of an outage are told it resumed once the stream proves itself: its first event, or
// resumeAfter of staying up (the returned timer, which the caller stops when the stream ends).
func (h *hub) established(up *upstream) *time.Timer {
	if up.catchUp {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.settleCatchUp(up) // resume.go
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	up.live = true
	up.gen++
	gen := up.gen
	hd := up.header
	up.pos, up.recovered, up.replayLeft, up.opened = hd.offset, hd.recovered, hd.replayed, true
	if up.catchUp {
		// Its subscribes all came with its since: the replay is theirs.
		up.catchUp = false
		for _, s := range up.pending {
			up.subs = append(up.subs, s)
			s.conn.send(s.confirm(false, position{offset: up.pos, recovered: hd.recovered}))
		}
		up.pending = nil
	} else if up.replayLeft == 0 {
		up.confirmPendingLocked()
	}
	return time.AfterFunc(h.resumeAfter, func() {
		up.mu.Lock()
		defer up.mu.Unlock()
		if up.live && up.gen == gen {
			up.resumeLocked()
		}
	})
}

// resumeLocked sends the resumed notice to the subscribers told of the outage. Caller holds up.mu.
func (up *upstream) resumeLocked() {
	for _, s := range up.subs {
		if s.notified {
			s.notified = false
			s.conn.send(s.confirm(true, position{offset: up.pos, recovered: up.recovered}))
		}
	}
}

// failed handles a failed or broken stream. Pending subscribers get an error reply and are
// dropped; established ones get one 503 notice per outage and stay. It reports whether the
// upstream has no subscribers left and has ended.
func (h *hub) failed(up *upstream, e *errorReply) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	up.mu.Lock()
	up.live = false
	for _, s := range up.pending {
		s.conn.send(s.failure(e))
		if s.conn.subs != nil {
			s.conn.subs.list = slices.DeleteFunc(s.conn.subs.list, func(x *subscription) bool { return x == s })
		}
		h.subs.Add(-1)
	}
	up.pending = nil
	notice := e
	if notice.Status != http.StatusServiceUnavailable {
		notice = newError(http.StatusServiceUnavailable, e.firstMessage())
	}
	for _, s := range up.subs {
		if !s.notified { // one notice per outage, however many reconnects fail
			s.notified = true
			s.conn.send(s.failure(notice))
		}
	}
	empty := len(up.subs) == 0
	up.mu.Unlock()
	if !empty {
		h.srv.metrics.upstreamReopen(up.key.stream) // metrics.go
	}
	if empty {
		if h.upstreams[up.key] == up {
			delete(h.upstreams, up.key)
		}
		up.cancel()
	}
	return empty
}

// pump reads events and fans them out until the stream ends. It reports whether the
// stream delivered anything.
func (h *hub) pump(up *upstream, stream grpc.ClientStream) (delivered bool, err error) {
	sm := up.res.subscribe
	var subs []*subscription
	for {
		ev := dynamicpb.NewMessage(sm.event)
		if err := stream.RecvMsg(ev); err != nil {
			return delivered, err
		}
		if !delivered {
			delivered = true
			up.mu.Lock()
			up.resumeLocked() // an event proves the stream: resumed goes before it
			up.mu.Unlock()
		}
		offset := sm.eventOffset(ev) // resume.go: the position moves past every message
		action := ev.Get(sm.evActon).String()
		if !up.key.events.has(action) {
			up.skip(offset)
			continue // the backend ignored the filter; enforce it here
		}
		if up.key.hasPK && sm.pk == nil && ev.Get(sm.evPK).String() != up.key.pk {
			up.skip(offset)
			continue // the backend's Subscribe has no pk filter: the key is checked only here
		}
		head, err := encodeEvent(up, ev, action, h.srv.opts.int64AsNumber) // reply.go
		if err != nil {
			h.srv.opts.logger.Error("cannot encode event", "stream", up.key.stream, "err", err)
			up.skip(offset)
			continue
		}
		// A permission that may depend on the pk is asked for each subscriber and event
		// (permission.go). It is the embedding program's code, so it runs outside up.mu:
		// on the subscribers not yet asked for this event, each marked with the event's seq
		// when allowed, until none is new. A subscriber that joined while it was asked is
		// asked too: its confirmation's offset is before this event (resume.go). Only the
		// upstream's run goroutine reads and writes seq and the marks.
		up.seq++
		seq := up.seq
		check := up.res.access.eventPerEvent
		pk := ""
		if check && sm.evPK != nil {
			pk = ev.Get(sm.evPK).String()
		}
		up.mu.Lock()
		for check {
			subs = subs[:0]
			for _, s := range up.subs {
				if s.checked != seq {
					subs = append(subs, s)
				}
			}
			if len(subs) == 0 {
				break
			}
			up.mu.Unlock()
			for _, s := range subs {
				s.checked = seq
				if up.res.mayReceive(s.conn.identity, pk) {
					s.allowed = seq
				}
			}
			clear(subs)
			up.mu.Lock()
		}
		// With a write delay, the events of a busy subscription (the last one came less than
		// the delay before) wait for those that follow; a quiet one's go out at once.
		hold := false
		if d := h.srv.opts.writeDelay; d > 0 {
			now := time.Now()
			hold = now.Sub(up.lastEvent) < d
			up.lastEvent = now
		}
		// Sent under up.mu, to the subscribers still there: one that unsubscribed meanwhile
		// gets no event after its unsubscribe's reply.
		n := 0
		for _, s := range up.subs {
			if check && s.allowed != seq {
				continue
			}
			s.conn.queueFrame(outFrame{head: head, tail: s.tail}, hold)
			n++
		}
		up.advanceLocked(offset) // resume.go
		up.mu.Unlock()
		h.srv.metrics.eventsDelivered(up.key.stream, n) // metrics.go
	}
}
