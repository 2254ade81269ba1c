package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// frame is what the client reads: a reply, an event or a subscription notice.
type frame struct {
	Payload struct {
		Action    string          `json:"action"`
		Data      json.RawMessage `json:"data"`
		Status    *int            `json:"response_status"`
		RequestID json.RawMessage `json:"request_id"`
		Model     string          `json:"model"`
	} `json:"payload"`
}

// request is one request frame waiting for its reply.
type request struct {
	id    string
	write uint64 // position in the connection's write order
	sub   *subState
	seq   int // patch sequence number, for a patch of a subscribed row
	win   int // the subscription's window when the patch was written; -1: not live
	// counted: the 200 came in the same window, so the event is owed. Set by the reader
	// before the reply is handed over.
	counted bool
	done    chan reply
}

type reply struct {
	status int
	data   json.RawMessage
}

// client is one simulated browser: it keeps one connection open, reconnecting and
// resubscribing after every close, as the TypeScript client does.
type client struct {
	id    int
	h     *harness
	rng   *rand.Rand
	qpks  []string // one question per subscription, created once
	cpk   string   // the choice it created, if it is one of the clients that do
	subs  []*subState
	ready bool // rows created

	mu        sync.Mutex
	sess      *session
	nextReq   uint64
	sessCount int
}

// session is one WebSocket connection of a client.
type session struct {
	ws      *websocket.Conn
	seq     int           // the client's sessions are numbered from 1
	done    chan struct{} // closed when the read loop ends
	ours    atomic.Bool   // the client closed the connection itself
	peer    atomic.Bool   // the read loop ended by the bridge's doing (close frame or error)
	broken  atomic.Bool   // it ended without a close frame (1006): counted as a violation already
	key     string        // the bridge's address and the client's: names it in the bridge's log
	wmu     sync.Mutex    // serializes writes, so write positions are the wire order
	writes  uint64        // guarded by wmu
	pinged  uint64        // last write position a ping was sent after; guarded by wmu
	pongs   chan struct{}
	mu      sync.Mutex // guards pending and acked
	pending map[string]*request
	acked   uint64 // every write up to here was read by the bridge before it closed
}

func newClient(h *harness, id int) *client {
	c := &client{id: id, h: h, rng: rand.New(rand.NewPCG(uint64(id), h.cfg.seed))}
	for j := 0; j < h.cfg.subs; j++ {
		c.subs = append(c.subs, &subState{client: id, index: j})
	}
	return c
}

// run connects and reconnects until the load ends, then proves every live subscription
// still delivers and closes. It returns when it is finished or the settle deadline passed.
func (c *client) run(load, settle context.Context) {
	backoff := 50 * time.Millisecond
	for {
		began := time.Now()
		finished, connected := c.session(load, settle)
		if finished || settle.Err() != nil {
			if !finished {
				c.h.stats.add(&c.h.stats.unsettled, 1)
			}
			return
		}
		if connected && time.Since(began) > time.Second {
			backoff = 50 * time.Millisecond
		}
		// Jittered exponential backoff, like the TypeScript client's.
		d := backoff/2 + time.Duration(c.rng.Int64N(int64(backoff)))
		select {
		case <-time.After(d):
		case <-settle.Done():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// session runs one connection. finished reports that the final check ran to its end.
func (c *client) session(load, settle context.Context) (finished, connected bool) {
	s, err := c.dial(settle)
	if err != nil {
		c.h.stats.add(&c.h.stats.dialFailures, 1)
		return false, false
	}
	c.h.stats.add(&c.h.stats.connects, 1)
	defer c.endSession(s)

	if !c.ready && !c.setup(s, settle) {
		return false, true
	}
	for _, sub := range c.subs {
		c.subscribe(s, sub)
	}

	// The load: -inflight workers sharing the connection's rate.
	lim := rate.NewLimiter(rate.Limit(c.h.cfg.rate), c.h.cfg.inflight)
	work, stop := context.WithCancel(load)
	go func() {
		select {
		case <-s.done:
			stop()
		case <-work.Done():
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < c.h.cfg.inflight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lim.Wait(work) == nil {
				c.op(s)
			}
		}()
	}
	wg.Wait()
	stop()
	if isDone(s.done) {
		return false, true
	}
	return c.final(s, settle), true
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (c *client) dial(ctx context.Context) (*session, error) {
	addr := c.h.bridgeAddr()
	if addr == "" {
		return nil, errors.New("no bridge")
	}
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	// Clients bind to 127.0.0.2.., never 127.0.0.1 where the backend and the bridges listen:
	// a client's ephemeral port could otherwise take the port of a backend killed a moment
	// ago and fail its restart ("address already in use"). Several addresses also spread
	// 10,000 connections and their reconnects over more ephemeral ports.
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+c.id%c.h.cfg.sourceAddrs))}
	nd := &net.Dialer{LocalAddr: local, Timeout: 15 * time.Second}
	d.NetDialContext = nd.DialContext
	ws, _, err := d.DialContext(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		return nil, err
	}
	s := &session{ws: ws, done: make(chan struct{}), pending: map[string]*request{}, pongs: make(chan struct{}, 1),
		key: connKey(addr, ws.LocalAddr().String())}
	// Answer pings as a browser does: gorilla's default handler gives the pong 1 s and ends
	// the read loop when that passes, which a CPU-starved load program mistook for a 1006.
	ws.SetPingHandler(func(data string) error {
		_ = ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(15*time.Second))
		return nil // a broken connection shows on the next read
	})
	ws.SetPongHandler(func(data string) error {
		if n, err := strconv.ParseUint(data, 10, 64); err == nil {
			s.mu.Lock()
			s.acked = max(s.acked, n)
			s.mu.Unlock()
		}
		select {
		case s.pongs <- struct{}{}:
		default:
		}
		return nil
	})
	c.mu.Lock()
	c.sess = s
	c.sessCount++
	s.seq = c.sessCount
	c.mu.Unlock()
	go c.readLoop(s)
	go c.pinger(s)
	return s, nil
}

// pinger keeps one ping in flight after the last request written. The bridge answers a
// ping only before it sends its close frame, and reads frames in order, so a pong for
// write position n proves it read every request up to n while it could still answer.
func (c *client) pinger(s *session) {
	for {
		s.wmu.Lock()
		n := s.writes
		send := n > s.pinged
		if send {
			s.pinged = n
			_ = s.ws.WriteControl(websocket.PingMessage, []byte(strconv.FormatUint(n, 10)), time.Now().Add(10*time.Second))
		}
		s.wmu.Unlock()
		if !send {
			// Nothing new: wait for the next write's nudge.
			select {
			case <-s.pongs:
			case <-s.done:
				return
			}
			continue
		}
		select {
		case <-s.pongs:
		case <-s.done:
			return
		}
	}
}

func (c *client) readLoop(s *session) {
	defer close(s.done)
	for {
		_, msg, err := s.ws.ReadMessage()
		if err != nil {
			if s.ours.Load() {
				return
			}
			s.peer.Store(true)
			var ce *websocket.CloseError
			code := websocket.CloseAbnormalClosure
			if errors.As(err, &ce) {
				code = ce.Code
			}
			s.broken.Store(code == websocket.CloseAbnormalClosure)
			c.h.stats.closeCode(code)
			if code == websocket.CloseAbnormalClosure {
				c.h.stats.abnormal(s.key, abnormalReason(err))
			}
			return
		}
		c.h.stats.add(&c.h.stats.frames, 1)
		var f frame
		if err := json.Unmarshal(msg, &f); err != nil {
			c.h.stats.violation("unreadable frame: %.200s", msg)
			continue
		}
		c.handleFrame(s, &f)
	}
}

var addrRE = regexp.MustCompile(`\d{1,3}(\.\d{1,3}){3}:\d+`)

// abnormalReason is why a connection ended without a close frame, as the client's read
// saw it, with addresses removed so that the reasons can be counted.
func abnormalReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unexpected EOF"):
		return "EOF without a close frame"
	case strings.Contains(msg, "connection reset by peer"):
		return "connection reset (RST)"
	}
	return addrRE.ReplaceAllString(msg, "ADDR")
}

func (c *client) handleFrame(s *session, f *frame) {
	var id string
	_ = json.Unmarshal(f.Payload.RequestID, &id)
	if f.Payload.Status == nil { // an event
		sub := c.subByID(id)
		if sub == nil {
			c.h.stats.violation("event for unknown request_id %q", id)
			return
		}
		var q struct {
			Text string `json:"question_text"`
		}
		_ = json.Unmarshal(f.Payload.Data, &q)
		c.h.events.event(sub, q.Text)
		return
	}
	status := *f.Payload.Status
	s.mu.Lock()
	r := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if r == nil {
		// Not a pending request: a subscription notice, or a reply too many.
		if sub := c.subByID(id); sub != nil && f.Payload.Action == "subscribe" {
			c.h.events.notice(sub, status, f.Payload.Data)
			return
		}
		c.h.stats.add(&c.h.stats.duplicates, 1)
		c.h.stats.violation("reply with no pending request (duplicate?): request_id %q status %d", id, status)
		return
	}
	c.h.stats.status(status)
	// Windows open and patches count where the client sees the replies, in frame order.
	if r.sub != nil && r.seq == 0 && status == 200 {
		c.h.events.confirmed(r.sub)
	}
	if r.sub != nil && r.seq > 0 {
		c.h.events.patched(r.sub, r, status)
	}
	r.done <- reply{status: status, data: f.Payload.Data}
}

func (c *client) subByID(id string) *subState {
	for _, sub := range c.subs {
		if sub.currentID() == id {
			return sub
		}
	}
	return nil
}

// send writes a request frame and registers it; the reply arrives on r.done unless the
// connection ends first.
func (c *client) send(s *session, r *request, stream, action string, pk any, data any) error {
	payload := map[string]any{"action": action, "request_id": r.id}
	if pk != nil {
		payload["pk"] = pk
	}
	if data != nil {
		payload["data"] = data
	}
	msg, err := json.Marshal(map[string]any{"stream": stream, "payload": payload})
	if err != nil {
		return err
	}
	r.done = make(chan reply, 1)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if isDone(s.done) {
		s.mu.Unlock()
		return errors.New("connection closed")
	}
	s.writes++
	r.write = s.writes
	s.pending[r.id] = r
	s.mu.Unlock()
	// After this point the request counts as sent even if the write fails: the bridge may
	// have read part of it. Only a pong can prove it read it.
	c.h.stats.add(&c.h.stats.sent, 1)
	_ = s.ws.SetWriteDeadline(time.Now().Add(15 * time.Second))
	if err := s.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		return err
	}
	select {
	case s.pongs <- struct{}{}: // nudge the pinger
	default:
	}
	return nil
}

func (c *client) newID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextReq++
	return "r" + strconv.FormatUint(c.nextReq, 10)
}

// call sends a request and waits for its reply; ok is false when the connection ended.
func (c *client) call(s *session, r *request, stream, action string, pk, data any) (reply, bool) {
	if r.id == "" {
		r.id = c.newID()
	}
	if err := c.send(s, r, stream, action, pk, data); err != nil {
		<-s.done
		return reply{}, false
	}
	select {
	case rep := <-r.done:
		return rep, true
	case <-s.done:
		// A reply can still have been delivered just before the close.
		select {
		case rep := <-r.done:
			return rep, true
		default:
			return reply{}, false
		}
	}
}

// writeCall is call for the writes of the setup and the final check, which every client
// makes at about the same moment: a few at a time across all clients, so that the backend's
// single SQLite writer is not flooded into answering everything with 504.
func (c *client) writeCall(ctx context.Context, s *session, r *request, stream, action string, pk, data any) (reply, bool) {
	select {
	case c.h.writeSlots <- struct{}{}:
	case <-s.done:
		return reply{}, false
	case <-ctx.Done():
		return reply{}, false
	}
	defer func() { <-c.h.writeSlots }()
	return c.call(s, r, stream, action, pk, data)
}

// setup creates the client's rows: one question per subscription and a choice. It goes
// on after the load ends, so that every client takes part in the final check.
func (c *client) setup(s *session, settle context.Context) bool {
	for settle.Err() == nil {
		for len(c.qpks) < len(c.subs) {
			rep, ok := c.writeCall(settle, s, &request{}, "questions", "create", nil, map[string]any{"question_text": fmt.Sprintf("soak c%d q%d n0", c.id, len(c.qpks))})
			if !ok {
				return false
			}
			if rep.status != 201 {
				break
			}
			c.qpks = append(c.qpks, pkOf(rep.data))
		}
		// One client in 100 creates a choice for everyone's votes: fewer writes to set up.
		if len(c.qpks) == len(c.subs) && c.cpk == "" && c.id%100 == 0 {
			rep, ok := c.writeCall(settle, s, &request{}, "choices", "create", nil, map[string]any{"question_id": c.qpks[0], "choice_text": "soak"})
			if !ok {
				return false
			}
			if rep.status == 201 {
				c.cpk = pkOf(rep.data)
				c.h.addChoice(c.cpk)
			}
		}
		if len(c.qpks) == len(c.subs) && (c.cpk != "" || c.id%100 != 0) {
			c.ready = true
			for j, sub := range c.subs {
				sub.pk = c.qpks[j]
			}
			return true
		}
		// The backend is down: try again shortly.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-s.done:
			return false
		case <-settle.Done():
		}
	}
	return false
}

func pkOf(data json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(data, &v)
	return v.ID
}

// subscribe sends a subscribe for sub; its reply opens the subscription's first window.
// A refused subscribe is retried with a new request_id while the connection lasts.
func (c *client) subscribe(s *session, sub *subState) {
	r := &request{id: c.newID(), sub: sub}
	if !sub.subscribing(s.seq, r.id) {
		return
	}
	go func() {
		for {
			rep, ok := c.call(s, r, "questions", "subscribe", sub.pk, map[string]any{"action": "update"})
			if !ok {
				return
			}
			if rep.status == 200 {
				return
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-s.done:
				return
			}
			r = &request{id: c.newID(), sub: sub}
			if !sub.subscribing(s.seq, r.id) {
				return // a newer connection has subscribed it since
			}
		}
	}()
}

// op sends one request of the mix and waits for its reply.
func (c *client) op(s *session) {
	c.mu.Lock()
	n := c.rng.IntN(100)
	j := c.rng.IntN(len(c.subs))
	page := 1 + c.rng.IntN(3)
	c.mu.Unlock()
	sub := c.subs[j]
	switch {
	case n < 25:
		if r := c.h.events.startPatch(sub); r != nil {
			r.id = c.newID()
			c.call(s, r, "questions", "patch", sub.pk, map[string]any{"question_text": patchText(c.id, j, r.seq)})
			return
		}
		fallthrough
	case n < 55:
		c.call(s, &request{}, "questions", "retrieve", sub.pk, nil)
	case n < 70:
		c.call(s, &request{}, "questions", "list", nil, map[string]any{"page": page, "page_size": 5})
	case n < 75:
		c.call(s, &request{}, "questions", "create", nil, map[string]any{"question_text": fmt.Sprintf("soak c%d extra", c.id)})
	case n < 90:
		c.call(s, &request{}, "questions", "report", nil, nil)
	default:
		if pk := c.h.choice(c.id); pk != "" {
			c.call(s, &request{}, "choices", "vote", pk, nil)
		} else {
			c.call(s, &request{}, "questions", "retrieve", sub.pk, nil)
		}
	}
}

// finalEventWait bounds the wait for the event of a final patch on a live subscription.
const finalEventWait = 30 * time.Second

// pause waits a moment; false if the connection or the settle time ended.
func pause(s *session, settle context.Context) bool {
	select {
	case <-time.After(50 * time.Millisecond):
		return true
	case <-s.done:
		return false
	case <-settle.Done():
		return false
	}
}

func patchText(client, sub, seq int) string { return fmt.Sprintf("soak c%d q%d n%d", client, sub, seq) }

// parsePatchText returns the sequence number of a patch made by patchText for client and sub.
func parsePatchText(text string, client, sub int) (int, bool) {
	rest, ok := strings.CutPrefix(text, fmt.Sprintf("soak c%d q%d n", client, sub))
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// final runs after the load: every answer is in, every subscription is live again, and
// one last patch per subscription comes back as its event, which proves that no earlier
// change of the window was lost. Then the client closes normally.
func (c *client) final(s *session, settle context.Context) bool {
	// No fault may start during the check.
	select {
	case <-c.h.calm:
	case <-s.done:
		return false
	case <-settle.Done():
		return false
	}
	// Wait for every reply still owed.
	for {
		s.mu.Lock()
		owed := len(s.pending)
		s.mu.Unlock()
		if owed == 0 {
			break
		}
		if !pause(s, settle) {
			return false
		}
	}
	for j, sub := range c.subs {
		for {
			// The subscription must be live, and stay live until the event is in: a
			// notice in between means the change may have been made during the outage.
			for !sub.isLive() {
				if !pause(s, settle) {
					return false
				}
			}
			r := c.h.events.startPatch(sub)
			if r == nil {
				return false // cannot happen: no patch is in flight
			}
			r.id = c.newID()
			rep, ok := c.writeCall(settle, s, r, "questions", "patch", sub.pk, map[string]any{"question_text": patchText(c.id, j, r.seq)})
			if !ok {
				return false
			}
			if rep.status != 200 || !r.counted {
				// A 503 or 504 from an overloaded machine (the patch's fate is unknown), or
				// an outage began before the reply: the patch proves nothing; again.
				c.h.stats.add(&c.h.stats.finalRetries, 1)
				if !pause(s, settle) {
					return false
				}
				continue
			}
			// An event takes milliseconds; finalEventWait is for a machine under load.
			wait, cancel := context.WithTimeout(settle, finalEventWait)
			seen, ended := c.h.events.waitSeen(sub, r.seq, r.win, s.done, wait.Done())
			timedOut := wait.Err() != nil && settle.Err() == nil
			cancel()
			if seen {
				break
			}
			if ended && !isDone(s.done) {
				c.h.stats.add(&c.h.stats.finalRetries, 1)
				continue
			}
			if !timedOut {
				return false // the connection or the settle time ended: unsettled
			}
			c.h.stats.violation("final patch event of c%d q%d (pk %s) did not arrive within %s, and no notice came either", c.id, j, sub.pk, finalEventWait)
			break
		}
	}
	for _, sub := range c.subs {
		c.h.events.closeWindow(sub, true)
	}
	s.wmu.Lock()
	_ = s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	s.wmu.Unlock()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	return true
}

// endSession accounts for what the connection leaves behind.
func (c *client) endSession(s *session) {
	s.ours.Store(true)
	_ = s.ws.Close()
	<-s.done
	s.mu.Lock()
	for _, r := range s.pending {
		if !s.peer.Load() {
			// The client gave up (the end of -settle): it did not wait for the reply.
			c.h.stats.add(&c.h.stats.abandoned, 1)
			continue
		}
		if s.broken.Load() {
			// No close frame arrived: the connection broke (its close code is the
			// violation), and what it carried is lost with it.
			c.h.stats.add(&c.h.stats.lostWithConn, 1)
			continue
		}
		if r.write <= s.acked {
			c.h.stats.add(&c.h.stats.noReply, 1)
			c.h.stats.violation("no reply to request %s of client %d (read by the bridge before it closed)", r.id, c.id)
		} else {
			c.h.stats.add(&c.h.stats.crossed, 1)
		}
	}
	s.pending = map[string]*request{}
	s.mu.Unlock()
	for _, sub := range c.subs {
		c.h.events.connClosed(sub)
	}
}
