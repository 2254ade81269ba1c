package bridge

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// WithUpstreamPerIdentity gives each forwarded identity its own upstream Subscribe stream on
// these streams, carrying the identity's metadata (subject, forwarded claims, token and
// headers), as the proto option upstream_per_identity does: for a backend that filters
// events by caller. Default: identical subscriptions of all users share one upstream, which
// carries no user's metadata. Each call adds to the streams of the previous ones.
func WithUpstreamPerIdentity(streams ...string) Option {
	return optionFunc(func(o *options) {
		if o.perIdentity == nil {
			o.perIdentity = make(map[string]bool)
		}
		for _, s := range streams {
			o.perIdentity[s] = true
		}
	})
}

// perIdentity reports whether res has one upstream per identity.
func (h *hub) perIdentity(res *resource) bool {
	return res.perIdentity || h.srv.opts.perIdentity[res.stream]
}

// The subscription registry: which connection subscribed to what, and the upstream each
// subscription shares. subscribe, unsubscribe and their DCRF forms run on the connection's
// read loop, in the order the client sent them; the upstreams themselves live in upstream.go
// and the frames they send are built in reply.go.

// hub owns the upstream Subscribe streams. Identical subscriptions (same stream and filter)
// share one upstream whoever made them, and the upstream carries no user's metadata; a
// stream with upstream_per_identity has one per forwarded identity instead, carrying it.
// Each event is encoded once and queued to every subscriber with only its request_id
// differing; permissions are checked per subscriber (at subscribe, and per event when they
// may depend on the pk).
type hub struct {
	srv *Server

	mu        sync.Mutex // guards upstreams and every connSubs; taken before upstream.mu
	upstreams map[subKey]*upstream
	closed    bool
	wg        sync.WaitGroup
	serial    uint64 // numbers catch-up upstreams that leave their since key (resume.go)

	writers writerPool // the connections' writer goroutines (conn.go)

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
	identity string // the forwarded metadata's key (auth.go), only with upstream_per_identity
	instance bool   // subscribe_instance: delete events carry data.pk (encodeEvent)
	since    string // a catch-up upstream's since until its header (resume.go)
	serial   uint64 // a catch-up upstream that went on alone (resume.go)
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
	allowed   uint64 // the last event the permission allowed it; the pump's alone (upstream.go)
	checked   uint64 // the last event the permission was asked for; the pump's alone
	instance  bool   // made by DCRF's subscribe_instance
	obs       subObs // the subscribe until its reply (tracing.go)
	hasSince  bool   // made with data.since: its replies say recovered
}

// setBytes copies what the subscription keeps of its frame into one allocation: the tail,
// whose request_id is requestID, then actionRaw and pkRaw. Thousands of subscriptions
// are held by idle connections.
func (s *subscription) setBytes(requestID, actionRaw, pkRaw []byte) {
	const key = `,"request_id":`
	mem := make([]byte, 0, len(key)+len(orNull(requestID))+len("}}")+len(actionRaw)+len(pkRaw))
	mem = appendFrameEnd(mem, requestID, nil) // reply.go
	s.tail = mem[:len(mem):len(mem)]
	if requestID != nil {
		s.requestID = mem[len(key) : len(key)+len(requestID) : len(key)+len(requestID)]
	}
	if actionRaw != nil {
		n := len(mem)
		mem = append(mem, actionRaw...)
		s.actionRaw = mem[n:len(mem):len(mem)]
	}
	if pkRaw != nil {
		n := len(mem)
		mem = append(mem, pkRaw...)
		s.pkRaw = mem[n:len(mem):len(mem)]
	}
}

type subFilter struct {
	pk     string
	hasPK  bool
	events eventSet
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
	sub := &subscription{conn: c, stream: res.stream, filter: f, instance: instance, hasSince: r.since != ""}
	sub.setBytes(r.requestID, r.eventsRaw, r.pk)
	key := subKey{stream: res.stream, pk: f.pk, hasPK: f.hasPK, events: f.events, instance: instance}
	var md metadata.MD // a shared upstream speaks for nobody: no subject, claims, token or headers
	if h.perIdentity(res) {
		key.identity, md = c.identityKey, metadata.Pairs(c.mdPairs...)
	}

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
	joined := false
	if r.since != "" && sm.hasOffsets() {
		// Resume (resume.go): the live upstream at since, else a catch-up one for since.
		if up != nil {
			up.mu.Lock()
			if joined = up.joinableAt(r.since); joined {
				sub.up = up
				up.subs = append(up.subs, sub)
				c.send(sub.confirm(false, position{offset: up.pos, recovered: true}))
			}
			up.mu.Unlock()
		}
		if !joined {
			key.since = r.since
			up = h.upstreams[key]
		}
	}
	if up == nil {
		up = &upstream{key: key, res: res, md: md, pkVal: pkVal, catchUp: key.since != ""}
		up.ctx, up.cancel = context.WithCancel(h.srv.ctx)
		h.upstreams[key] = up
		h.wg.Add(1)
		go h.run(up)
	}
	sub.up = up
	r.movedTo(sub) // tracing.go
	c.subs.list = append(c.subs.list, sub)
	h.subs.Add(1)
	if !joined {
		up.mu.Lock()
		// A subscribe waits while the upstream replays: it must get no event from before it.
		if up.live && up.replayLeft == 0 && !up.catchUp {
			up.subs = append(up.subs, sub)
			c.send(sub.confirm(false, position{offset: up.pos}))
		} else {
			up.pending = append(up.pending, sub)
		}
		up.mu.Unlock()
	}
	h.mu.Unlock()
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
		c.send(s.confirm(false, position{}))
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
	c.answered(r, http.StatusOK)
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
		s.answered(0) // a subscribe never answered: the connection ended (tracing.go)
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
