package bridge

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// hub owns the upstream Subscribe streams. Identical subscriptions (same stream, filter and
// forwarded identity) share one upstream; each event is encoded once and queued to every
// subscriber with only its request_id differing.
type hub struct {
	srv *Server

	mu        sync.Mutex // guards upstreams and every connSubs; taken before upstream.mu
	upstreams map[subKey]*upstream
	closed    bool
	wg        sync.WaitGroup

	live atomic.Int64 // upstream streams currently established
	subs atomic.Int64 // client subscriptions, confirmed or waiting: read by /metrics without mu

	// resumeAfter is how long a re-established stream must stay up, unless it delivers an
	// event first, before its subscribers are told it resumed; stableAfter is how long it
	// must stay up before the reconnect backoff starts again from its minimum. A backend
	// that accepts a stream and breaks it at once thus gets spaced retries, and its
	// subscribers one 503 notice and one resumed per outage. Fields so tests can shorten them.
	resumeAfter time.Duration
	stableAfter time.Duration
}

// subKey identifies an upstream.
type subKey struct {
	stream   string
	pk       string // canonical key text; "" with hasPK false means any
	hasPK    bool
	events   eventSet
	identity string
	instance bool // subscribe_instance: delete events carry data.pk (encodeEvent)
}

// connSubs are one connection's subscriptions. Guarded by hub.mu.
type connSubs struct {
	list []*subscription
}

type subscription struct {
	conn      *conn
	up        *upstream
	stream    string
	requestID []byte // raw JSON as sent
	filter    subFilter
	actionRaw []byte // data.action as sent, for echoes
	pkRaw     []byte // pk as sent, nil when absent
	tail      []byte // `,"request_id":<id>}}`, appended to each shared event head
	notified  bool   // got the 503 notice of the current outage; guarded by up.mu
	instance  bool   // made by DCRF's subscribe_instance
}

type subFilter struct {
	pk     string
	hasPK  bool
	events eventSet
}

// upstream is one gRPC Subscribe stream and its subscribers.
type upstream struct {
	key    subKey
	res    *resource
	md     metadata.MD
	ctx    context.Context
	cancel context.CancelFunc
	pkVal  protoreflect.Value

	mu      sync.Mutex
	live    bool
	gen     int // counts the streams opened, so a late resume timer of an old one does nothing
	subs    []*subscription
	pending []*subscription // waiting for the stream to be established
}

func newHub(s *Server) *hub {
	return &hub{srv: s, upstreams: make(map[subKey]*upstream), resumeAfter: time.Second, stableAfter: 10 * time.Second}
}

func (h *hub) subscribe(c *conn, res *resource, r *request) {
	if res.subscribe == nil {
		c.replyError(r, errNoEvents) // aip.go
		return
	}
	if r.eventsErr != nil {
		c.replyError(r, r.eventsErr)
		return
	}
	h.add(c, res, r, r.events, false)
}

// instanceActions are the events of DCRF's subscribe_instance: one resource's changes.
var instanceActions = eventOf("delete") | eventOf("update")

var errPKRequired = &errorReply{Status: http.StatusBadRequest, Fields: []fieldError{{Field: "pk", Messages: []string{"This field is required."}}}}

// subscribeInstance is djangochannelsrestframework's {"action": "subscribe_instance", "pk": 1}:
// update and delete events of one resource, each event carrying the subscribe's request_id,
// and a delete event's data holding pk (docs/protocol.md, "The DCRF dialect").
func (h *hub) subscribeInstance(c *conn, res *resource, r *request) {
	if res.subscribe == nil {
		c.replyError(r, errNoEvents)
		return
	}
	if r.pk == nil {
		c.replyError(r, errPKRequired)
		return
	}
	h.add(c, res, r, instanceActions, true)
}

// add subscribes c to the events of res, filtered by r.pk when given.
func (h *hub) add(c *conn, res *resource, r *request, events eventSet, instance bool) {
	sm := res.subscribe
	f := subFilter{events: events}
	var pkVal protoreflect.Value
	if r.pk != nil {
		keyField := sm.key
		if keyField == nil {
			c.replyError(r, errNotFound)
			return
		}
		v, ok := parseKey(keyField, r.pk)
		if !ok {
			c.replyError(r, errNotFound)
			return
		}
		pkVal, f.pk, f.hasPK = v, v.String(), true
	}
	sub := &subscription{
		conn:      c,
		stream:    res.stream,
		requestID: slices.Clone(r.requestID),
		filter:    f,
		actionRaw: slices.Clone(r.eventsRaw),
		pkRaw:     slices.Clone(r.pk),
		instance:  instance,
	}
	sub.tail = append(append([]byte(`,"request_id":`), orNull(sub.requestID)...), "}}"...)
	key := subKey{stream: res.stream, pk: f.pk, hasPK: f.hasPK, events: f.events, identity: c.identityKey, instance: instance}

	h.mu.Lock()
	// Draining is set before Shutdown ends the connections' subscriptions under h.mu: a
	// subscription added after that would never be answered.
	if h.closed || h.srv.isDraining() {
		h.mu.Unlock()
		c.replyError(r, errShuttingDown)
		return
	}
	if c.ctx.Err() != nil {
		// The connection is ending: dropConn (which runs after the cancel, under h.mu) may
		// already have ended its subscriptions, and one added now would keep its upstream
		// open forever. Nobody is left to answer.
		h.mu.Unlock()
		return
	}
	if c.subs == nil {
		c.subs = &connSubs{}
	}
	if len(c.subs.list) >= h.srv.opts.maxSubs {
		h.mu.Unlock()
		c.replyError(r, errTooManySubs)
		return
	}
	up := h.upstreams[key]
	if up == nil {
		up = &upstream{key: key, res: res, md: c.md, pkVal: pkVal}
		up.ctx, up.cancel = context.WithCancel(h.srv.ctx)
		h.upstreams[key] = up
		h.wg.Add(1)
		go h.run(up)
	}
	sub.up = up
	c.subs.list = append(c.subs.list, sub)
	h.subs.Add(1)
	up.mu.Lock()
	if up.live {
		up.subs = append(up.subs, sub)
		c.send(sub.confirm(false))
	} else {
		up.pending = append(up.pending, sub)
	}
	up.mu.Unlock()
	h.mu.Unlock()
}

// confirm is the 200 reply to a subscribe, or with resumed the notice that a broken
// upstream is back.
func (s *subscription) confirm(resumed bool) outFrame {
	buf := getBuf()
	b := append(*buf, `{"stream":`...)
	b = append(b, s.up.res.streamJSON...)
	if s.instance {
		b = append(b, `,"payload":{"action":"subscribe_instance","data":{"pk":`...)
		b = append(b, s.pkRaw...)
	} else {
		b = append(b, `,"payload":{"action":"subscribe","data":{"action":`...)
		b = append(b, s.actionRaw...)
		if s.pkRaw != nil {
			b = append(b, `,"pk":`...)
			b = append(b, s.pkRaw...)
		}
	}
	if resumed {
		b = append(b, `,"resumed":true`...)
	}
	b = append(b, `},"errors":[],"response_status":200,"request_id":`...)
	b = append(b, orNull(s.requestID)...)
	b = append(b, "}}"...)
	*buf = b
	return outFrame{head: b, buf: buf}
}

// failure is the reply (or notice) that the subscription's upstream is unavailable.
func (s *subscription) failure(e *errorReply) outFrame {
	buf := getBuf()
	action := []byte(`"subscribe"`)
	if s.instance {
		action = []byte(`"subscribe_instance"`)
	}
	*buf = appendReply(*buf, s.up.res.streamJSON, action, nil, e.appendErrors(nil), e.Status, s.requestID, nil)
	return outFrame{head: *buf, buf: buf}
}

// unsubscribeInstance ends the connection's subscribe_instance subscriptions of r.pk.
func (h *hub) unsubscribeInstance(c *conn, res *resource, r *request) {
	if r.pk == nil {
		c.replyError(r, errPKRequired)
		return
	}
	var pk string
	if sm := res.subscribe; sm != nil {
		v, ok := parseKey(sm.key, r.pk)
		if !ok {
			c.replyError(r, errNotFound)
			return
		}
		pk = v.String()
	}
	h.end(c, res, r, func(s *subscription) bool { return s.instance && s.filter.pk == pk })
}

func (h *hub) unsubscribe(c *conn, res *resource, r *request) {
	byID := r.unsubID
	var f subFilter
	if byID == nil {
		if r.eventsErr != nil {
			c.replyError(r, r.eventsErr)
			return
		}
		f.events = r.events
		if r.pk != nil && res.subscribe != nil {
			v, ok := parseKey(res.subscribe.key, r.pk)
			if !ok {
				c.replyError(r, errNotFound)
				return
			}
			f.pk, f.hasPK = v.String(), true
		}
	}

	h.end(c, res, r, func(s *subscription) bool {
		return (byID != nil && string(s.requestID) == string(byID)) || (byID == nil && s.filter == f)
	})
}

// end ends c's subscriptions to res that match, and replies to r with their request_ids
// (404 when none did).
func (h *hub) end(c *conn, res *resource, r *request, match func(*subscription) bool) {
	var ended [][]byte
	var unconfirmed []*subscription
	h.mu.Lock()
	if c.subs != nil {
		kept := c.subs.list[:0]
		for _, s := range c.subs.list {
			if s.stream != res.stream || !match(s) {
				kept = append(kept, s)
				continue
			}
			if h.detach(s) {
				unconfirmed = append(unconfirmed, s)
			}
			h.subs.Add(-1)
			ended = append(ended, s.requestID)
		}
		clear(c.subs.list[len(kept):])
		c.subs.list = kept
	}
	h.mu.Unlock()

	// A subscribe still waiting for its upstream gets its 200 before the unsubscribe's
	// reply: every frame is answered, in the order the client sent them.
	for _, s := range unconfirmed {
		c.send(s.confirm(false))
	}
	if len(ended) == 0 {
		c.replyError(r, errNotFound)
		return
	}
	data := []byte(`{"request_ids":[`)
	for i, id := range ended {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, orNull(id)...)
	}
	data = append(data, "]}"...)
	out := getBuf()
	*out = appendReply(*out, res.streamJSON, r.action, data, nil, http.StatusOK, r.requestID, nil)
	c.reply(out)
}

// detach removes s from its upstream, ending the upstream when it was the last. It reports
// whether s was still waiting for its upstream, and so has had no reply. Caller holds h.mu.
func (h *hub) detach(s *subscription) (wasPending bool) {
	up := s.up
	up.mu.Lock()
	up.subs = slices.DeleteFunc(up.subs, func(x *subscription) bool { return x == s })
	n := len(up.pending)
	up.pending = slices.DeleteFunc(up.pending, func(x *subscription) bool { return x == s })
	wasPending = len(up.pending) < n
	empty := len(up.subs) == 0 && len(up.pending) == 0
	up.mu.Unlock()
	if empty {
		if h.upstreams[up.key] == up {
			delete(h.upstreams, up.key)
		}
		up.cancel()
	}
	return wasPending
}

// dropConn ends every subscription of a closed connection.
func (h *hub) dropConn(c *conn) { h.endConn(c, nil) }

// endConn ends every subscription of c. With pendingReply, each subscription still waiting
// for its upstream is answered with it: Shutdown does that before it closes the connection,
// so that every subscribe gets its reply.
func (h *hub) endConn(c *conn, pendingReply *errorReply) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.subs == nil {
		return
	}
	for _, s := range c.subs.list {
		if h.detach(s) && pendingReply != nil {
			c.send(s.failure(pendingReply))
		}
	}
	h.subs.Add(-int64(len(c.subs.list)))
	c.subs.list = nil
}

// close ends every upstream and waits for them.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for k, up := range h.upstreams {
		up.cancel()
		delete(h.upstreams, k)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// run keeps one upstream stream open, reconnecting with backoff, until its last subscriber leaves.
func (h *hub) run(up *upstream) {
	defer h.wg.Done()
	defer up.cancel()
	backoff := newBackoff()
	for {
		stream, cancel, err := h.open(up)
		if err != nil {
			if up.ctx.Err() != nil {
				return
			}
			if h.failed(up, errorFromCall(err)) {
				return
			}
			if !backoff.wait(up.ctx) {
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
			backoff.reset()
		}
		h.srv.opts.logger.Warn("upstream subscription broke", "stream", up.key.stream, "err", err)
		if h.failed(up, newError(http.StatusServiceUnavailable, "Subscription interrupted: "+errorFromCall(err).firstMessage())) {
			return
		}
		if !backoff.wait(up.ctx) {
			return
		}
	}
}

// firstMessage is the first message of e, or its status text.
func (e *errorReply) firstMessage() string {
	if len(e.Messages) > 0 {
		return e.Messages[0]
	}
	return http.StatusText(e.Status)
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
	up.mu.Lock()
	defer up.mu.Unlock()
	up.live = true
	up.gen++
	gen := up.gen
	for _, s := range up.pending {
		up.subs = append(up.subs, s)
		s.conn.send(s.confirm(false))
	}
	up.pending = nil
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
			s.conn.send(s.confirm(true))
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
	model := []byte(`null`)
	if up.res.model != nil {
		model = appendJSONString(nil, string(up.res.model.FullName()))
	}
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
		action := ev.Get(sm.evActon).String()
		if !up.key.events.has(action) {
			continue // the backend ignored the filter; enforce it here
		}
		if up.key.hasPK && sm.pk == nil && ev.Get(sm.evPK).String() != up.key.pk {
			continue // the backend's Subscribe has no pk filter: the key is checked only here
		}
		head, err := encodeEvent(up, ev, action, model, h.srv.opts.int64AsNumber)
		if err != nil {
			h.srv.opts.logger.Error("cannot encode event", "stream", up.key.stream, "err", err)
			continue
		}
		// permission.go: checked per subscriber only when the permission may depend on the pk.
		check, pk := up.res.access.eventPerEvent, ""
		if check && sm.evPK != nil {
			pk = ev.Get(sm.evPK).String()
		}
		up.mu.Lock()
		for _, s := range up.subs {
			if check && !up.res.mayReceive(s.conn.identity, pk) {
				continue
			}
			s.conn.send(outFrame{head: head, tail: s.tail})
		}
		up.mu.Unlock()
	}
}

// encodeEvent builds the part of an event frame shared by all subscribers.
func encodeEvent(up *upstream, ev *dynamicpb.Message, action string, model []byte, num bool) ([]byte, error) {
	sm := up.res.subscribe
	b := make([]byte, 0, 256)
	b = append(b, `{"stream":`...)
	b = append(b, up.res.streamJSON...)
	b = append(b, `,"payload":{"action":`...)
	b = appendJSONString(b, action)
	b = append(b, `,"pk":`...)
	if sm.evPK != nil {
		b = appendScalar(b, sm.evPK, ev.Get(sm.evPK), num)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"data":`...)
	msg := ev.Get(sm.evData).Message().Interface()
	if !up.key.instance || action != "delete" || sm.evPK == nil {
		var err error
		if b, err = marshalAppend(b, msg, num); err != nil {
			return nil, err
		}
	} else {
		// DCRF's clients find a deleted instance by data.pk: it goes first in data, unless
		// the resource has a field of that name.
		data, err := marshalAppend(nil, msg, num)
		if err != nil {
			return nil, err
		}
		if data[0] == '{' && !hasMember(data, "pk") {
			b = append(b, `{"pk":`...)
			b = appendScalar(b, sm.evPK, ev.Get(sm.evPK), num)
			if data = data[skipSpace(data, 1):]; data[0] != '}' {
				b = append(b, ',')
			}
		}
		b = append(b, data...)
	}
	b = append(b, `,"model":`...)
	b = append(b, model...)
	return b, nil
}

// backoff is exponential with jitter, from 100ms to 5s.
type backoff struct{ next time.Duration }

func newBackoff() *backoff { return &backoff{next: 100 * time.Millisecond} }

func (b *backoff) reset() { b.next = 100 * time.Millisecond }

func (b *backoff) wait(ctx context.Context) bool {
	d := b.next/2 + rand.N(b.next/2+1)
	b.next = min(b.next*2, 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// hasMember reports whether the JSON object obj has the key name.
func hasMember(obj []byte, name string) bool {
	found := false
	eachMember(obj, func(k, _ []byte) { found = found || keyIs(k, name) })
	return found
}
