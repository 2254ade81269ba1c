package bridge

import (
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
)

// Close codes the bridge sends, besides the standard ones (1001 going away, 1003 binary
// frame, 1009 frame too big).
const (
	// CloseTokenExpired: the connection's credentials expired.
	CloseTokenExpired = 4001
	// CloseSlowConsumer: the client did not read fast enough and its outbound queue filled.
	CloseSlowConsumer = 4008
)

// conn is one WebSocket client: one reader (the read loop's goroutine), and a writer that
// runs only while there is something to write, so an idle connection holds one goroutine on
// the smallest stack and no buffer.
type conn struct {
	srv    *Server
	nc     net.Conn        // after gorilla's handshake, the bridge reads (wsread.go) and writes (writeRaw) frames itself
	rd     frameReader     // the read loop's; the writer uses only rd.raw, set before either starts
	ctx    context.Context // cancelled when the connection ends; parent of every call it makes
	cancel context.CancelFunc
	sem    chan struct{} // in-flight request slots

	// Requests in flight. Not a WaitGroup: the read loop starts requests while Shutdown
	// waits, and a WaitGroup forbids Add racing Wait. Once reqsStopped is set no request
	// starts: the read loop answers 503 itself.
	reqMu       sync.Mutex
	reqs        atomic.Int32 // changed under reqMu; the writer reads it without (writeLoop)
	reqsStopped bool
	reqsIdle    chan struct{} // closed when reqs drops to 0 after reqsStopped

	mu      sync.Mutex
	queue   []outFrame
	queued  int // bytes in queue
	writing bool
	held    bool // writing, but waiting in the writer pool's held list (WithWriteDelay)
	closing bool
	// closeSent: a close frame went out; closeSocket lingers (closing.go).
	closeSent atomic.Bool
	// A close frame the writer sends once it has written the queue (closeAfterFlush).
	closeCode   int
	closeReason string
	writer      sync.WaitGroup
	subs        *connSubs // guarded by hub.mu

	// Every frame the bridge writes after the handshake, control frames included, goes
	// through writeRaw under wmu, so nothing else moves the write deadline (writeRaw).
	wmu       sync.Mutex
	wdeadline time.Time // the deadline last set on the network connection
	writeDone bool      // a close frame went out, or a write failed: nothing may follow

	// Set at the handshake, read-only afterwards.
	mdPairs     []string  // key, value, …: the metadata forwarded on every call; pairs, not a map, to keep idle connections small
	identityKey string    // separates shared upstreams of different identities
	identity    *Identity // nil: anonymous
	limiter     *rate.Limiter
	expiresAt   int64 // Unix ns when the token expires (minus the margin); 0: never
	expiryIdx   int   // in srv.expiries (expiry.go); -1 when not queued

	// Set at the handshake too (tracing.go).
	id          uint64             // in logs and spans: connID
	traceParent *trace.SpanContext // the handshake's traceparent; nil if none (or tracing is off)
}

// outFrame is one message to write: head and tail are written as one WebSocket message, so a
// broadcast event can share its head among subscribers and differ only in the tail.
type outFrame struct {
	head, tail []byte
	buf        *[]byte // returned to the pool once written, when head came from it
}

func (f *outFrame) size() int { return len(f.head) + len(f.tail) }

func (f *outFrame) release() {
	if f.buf != nil {
		putBuf(f.buf)
		f.buf = nil
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // don't keep rare huge buffers alive
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, sem: make(chan struct{}, s.opts.maxInFlight), expiryIdx: -1}
	c.rd.init(nc)
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.limiter = s.newLimiter()
	c.extendRead() // guard.go: the idle deadline
	return c
}

// serve reads the connection's frames until the client has sent nothing more, then goes
// on in a new goroutine that waits for input: a goroutine's stack never shrinks below a
// quarter of its use, so the loop's stack, grown by the frames it handled, would stay with
// an idle connection; a fresh goroutine waiting in rd.idle has the runtime's smallest one
// (issue 11 §4, docs/benchmarks.md). Where the wait is not available the loop goes on here.
// When the connection ends, serve tears it down and tells the Server.
func (c *conn) serve() {
	for {
		c.rd.idle() // wsread.go: no buffer and a small stack while the client sends nothing
		if !c.readFrames() {
			break
		}
		if c.rd.raw != nil {
			go c.serve()
			return
		}
	}
	c.teardown()
	c.srv.connEnded(c)
}

// readFrames handles the frames the client sent until none is left to read; false when the
// connection ended.
func (c *conn) readFrames() bool {
	for {
		res, err := c.readFrame() // wsread.go
		if err != nil {
			var pe errProtocol
			switch {
			case errors.As(err, &pe):
				c.closeWith(websocket.CloseProtocolError, string(pe))
			case errors.Is(err, errTooBig):
				c.closeWith(websocket.CloseMessageTooBig, "frame too big")
			}
			return false
		}
		if res != frameControl {
			c.extendRead()
		}
		if res == frameText {
			m := c.rd.msg
			c.rd.msg = nil
			if !c.dispatch(m) {
				return false
			}
		}
		if c.rd.buffered() == 0 {
			return true
		}
	}
}

// startReq counts a request in flight, unless the connection is draining.
func (c *conn) startReq() bool {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if c.reqsStopped {
		return false
	}
	c.reqs.Add(1)
	return true
}

func (c *conn) endReq() {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if c.reqs.Add(-1) == 0 && c.reqsIdle != nil {
		close(c.reqsIdle)
		c.reqsIdle = nil
	}
}

var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// stopReqs stops new requests from starting and returns a channel closed once none is in
// flight.
func (c *conn) stopReqs() <-chan struct{} {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	c.reqsStopped = true
	if c.reqs.Load() == 0 {
		return closedChan
	}
	if c.reqsIdle == nil {
		c.reqsIdle = make(chan struct{})
	}
	return c.reqsIdle
}

// teardown ends everything the connection started and waits for it.
func (c *conn) teardown() {
	c.stopExpiry()
	c.cancel()
	c.srv.hub.dropConn(c)
	<-c.stopReqs() // every call ends soon: c.ctx is cancelled
	c.mu.Lock()
	c.closing = true
	c.releaseHold()
	c.mu.Unlock()
	c.writer.Wait()
	c.closeSocket() // closing.go: never loses the close frame to a reset
	c.rd.release()
	c.mu.Lock()
	c.srv.metrics.queued.Add(-int64(c.queued)) // what no write took off
	c.queued = 0
	for i := range c.queue {
		c.queue[i].release()
	}
	c.queue = nil
	c.mu.Unlock()
}

// drain waits for the requests in flight, until ctx ends; from its start the read loop
// answers every new request 503 itself. It reports how many requests were still in flight
// when ctx ended.
func (c *conn) drain(ctx context.Context) int {
	select {
	case <-c.stopReqs():
		return 0
	case <-ctx.Done():
		return int(c.reqs.Load())
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// closeWith starts the closing handshake with code and stops all work of the connection.
// The read loop keeps reading until the client answers or closeGrace passes.
func (c *conn) closeWith(code int, reason string) {
	if c.markClosing() {
		c.sendClose(code, reason)
	}
}

// closeAfterFlush is closeWith for a connection whose queued replies should reach the
// client first: from now on nothing new is queued or read, the writer writes what is queued,
// then the close frame.
func (c *conn) closeAfterFlush(code int, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if c.writing {
		c.closeCode, c.closeReason = code, reason
		c.releaseHold()
		c.mu.Unlock()
		c.cancel()
		return
	}
	c.mu.Unlock()
	c.cancel()
	c.sendClose(code, reason)
}

// closeAsync is closeWith for callers that must not wait on the network, such as a
// broadcast loop finding one slow subscriber among many.
func (c *conn) closeAsync(code int, reason string) {
	if c.markClosing() {
		c.writer.Add(1)
		go func() {
			defer c.writer.Done()
			c.sendClose(code, reason)
		}()
	}
}

// markClosing stops all work of the connection; it reports false if it was already closing.
func (c *conn) markClosing() bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.closing = true
	c.mu.Unlock()
	c.cancel()
	return true
}

// send queues a frame for the client. A client whose queue is over the byte limit is
// disconnected as a slow consumer: it never holds up the caller.
func (c *conn) send(f outFrame) { c.queueFrame(f, false) }

// queueFrame is send; with hold (a subscription's event under WithWriteDelay), the frame
// waits out the delay for the events that follow it.
func (c *conn) queueFrame(f outFrame, hold bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		f.release()
		return
	}
	n := f.size()
	// A single frame larger than the limit still goes to a client that keeps up.
	if c.queued > 0 && c.queued+n > c.srv.opts.queueBytes {
		c.mu.Unlock()
		f.release()
		c.logger().Info("closing slow consumer", "queued_bytes", c.queued)
		c.closeAsync(CloseSlowConsumer, "slow consumer")
		return
	}
	c.queue = append(c.queue, f)
	c.queued += n
	c.srv.metrics.queued.Add(int64(n))
	switch {
	case !c.writing && hold:
		c.writing, c.held = true, true
		c.writer.Add(1)
		c.srv.hub.writers.hold(c, c.srv.opts.writeDelay)
	case !c.writing:
		c.writing = true
		c.writer.Add(1)
		c.srv.hub.writers.start(c)
	case !hold:
		c.releaseHold() // a reply is never held: what is held goes now, with it
	}
	c.mu.Unlock()
}

// releaseHold hands a connection whose events wait out the write delay to a writer now.
// Caller holds c.mu.
func (c *conn) releaseHold() {
	if c.held {
		c.held = false
		c.srv.hub.writers.start(c)
	}
}

// writerPool writes the connections that have frames queued, on a few goroutines shared by
// all connections. A fan-out queues one frame to each of thousands of connections at once;
// a goroutine per connection per event cost more to start (and to grow its stack) than its
// write. Workers exist only while connections wait, so an idle server has none.
type writerPool struct {
	mu       sync.Mutex
	ready    []*conn // connections waiting for a writer, from head on
	head     int
	workers  int
	watching bool   // a stall check is armed (check)
	finished uint64 // connections written, ever: what check measures progress by
	seen     uint64 // finished when check last looked

	// Connections whose events wait out the write delay (WithWriteDelay), all released
	// together by one timer: a fan-out holds thousands at once.
	held      []*conn
	holdTimer bool // releaseHeld is due
}

// A write blocks only on a client whose TCP buffers are full. So that such clients hold up
// no one, one more worker starts whenever connections wait and no worker has finished one
// for writerStall (checked every writerStall), however many there are.
const writerStall = 20 * time.Millisecond

func maxWriters() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// start queues c, whose writing flag its caller just set, for a worker. It reads no clock:
// a fan-out calls it once per subscriber.
func (p *writerPool) start(c *conn) {
	p.mu.Lock()
	p.ready = append(p.ready, c)
	spawn := p.workers < maxWriters()
	if spawn {
		p.workers++
	} else if !p.watching {
		// Every worker is busy: if they all turn out stuck, check starts one more.
		p.watching = true
		p.seen = p.finished
		time.AfterFunc(writerStall, p.check)
	}
	p.mu.Unlock()
	if spawn {
		go p.work()
	}
}

// hold queues c, whose writing and held flags its caller just set, for a worker once d has
// passed. Caller holds c.mu.
func (p *writerPool) hold(c *conn, d time.Duration) {
	p.mu.Lock()
	p.held = append(p.held, c)
	if !p.holdTimer {
		p.holdTimer = true
		time.AfterFunc(d, p.releaseHeld)
	}
	p.mu.Unlock()
}

// releaseHeld hands the held connections to workers, but those a reply has already started
// (queueFrame).
func (p *writerPool) releaseHeld() {
	p.mu.Lock()
	held := p.held
	p.held, p.holdTimer = nil, false
	p.mu.Unlock()
	for _, c := range held {
		c.mu.Lock()
		c.releaseHold()
		c.mu.Unlock()
	}
}

// check runs every writerStall while connections wait with every worker busy, and starts a
// worker when none finished a connection meanwhile.
func (p *writerPool) check() {
	p.mu.Lock()
	p.watching = false
	spawn := false
	if p.head < len(p.ready) {
		if p.finished == p.seen {
			spawn = true
			p.workers++
		}
		p.seen = p.finished
		p.watching = true
		time.AfterFunc(writerStall, p.check)
	}
	p.mu.Unlock()
	if spawn {
		go p.work()
	}
}

// work writes waiting connections until none is left.
func (p *writerPool) work() {
	for wrote := false; ; wrote = true {
		p.mu.Lock()
		if wrote {
			p.finished++
		}
		if p.head == len(p.ready) {
			p.ready, p.head = p.ready[:0], 0
			p.workers--
			p.mu.Unlock()
			return
		}
		c := p.ready[p.head]
		p.ready[p.head] = nil
		p.head++
		if p.head >= 1024 && 2*p.head >= len(p.ready) { // never emptied under steady load
			n := copy(p.ready, p.ready[p.head:])
			clear(p.ready[n:])
			p.ready, p.head = p.ready[:n], 0
		}
		p.mu.Unlock()
		c.writeLoop()
	}
}

// writeLoop writes queued frames until the queue is empty, then returns.
func (c *conn) writeLoop() {
	defer c.writer.Done()
	var batch []outFrame
	buf := getBuf()
	defer putBuf(buf)
	yielded := false
	for {
		c.mu.Lock()
		if !yielded && int(c.reqs.Load()) > len(c.queue) {
			// More backend calls of this connection are in flight than replies queued: let
			// the goroutines that are ready run first, so that the replies of calls whose
			// responses came in together go out in one write(2) rather than one each.
			yielded = true
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		if len(c.queue) == 0 || c.closing && c.closeCode == 0 {
			c.writing = false
			code, reason := c.closeCode, c.closeReason
			c.closeCode = 0
			c.mu.Unlock()
			if code != 0 {
				c.sendClose(code, reason)
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()
		// The frames queued meanwhile go out together: one write(2) per writeChunk bytes.
		for i := 0; i < len(batch); {
			*buf = (*buf)[:0]
			size := 0
			j := i
			for ; j < len(batch) && (j == i || len(*buf)+batch[j].size() <= writeChunk); j++ {
				*buf = appendDataFrame(*buf, &batch[j])
				size += batch[j].size()
			}
			err := c.writeRaw(*buf, c.srv.opts.writeTimeout)
			c.mu.Lock()
			c.queued -= size
			c.srv.metrics.queued.Add(-int64(size))
			c.mu.Unlock()
			for k := i; k < j; k++ {
				batch[k].release()
			}
			if err != nil {
				// No close frame can follow a failed write: the client sees 1006. Say why;
				// a timeout means a client that stopped reading for the whole write timeout.
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					c.logger().Warn("connection lost: the client read nothing for the write timeout", "write_timeout", c.srv.opts.writeTimeout, "remote", c.nc.RemoteAddr().String())
				} else if !errors.Is(err, websocket.ErrCloseSent) {
					c.logger().Info("connection lost: write failed", "err", err, "remote", c.nc.RemoteAddr().String())
				}
				for k := j; k < len(batch); k++ {
					batch[k].release()
				}
				clear(batch)
				c.mu.Lock()
				c.writing = false
				c.closing = true
				c.closeCode = 0
				c.mu.Unlock()
				c.cancel()
				_ = c.nc.Close() // unblocks the reader
				return
			}
			i = j
		}
		clear(batch)
		if cap(*buf) > writeChunk*2 {
			*buf = make([]byte, 0, 1024) // a huge frame's buffer is not kept
		}
	}
}

// writeChunk is how many bytes of queued frames one write(2) carries at most.
const writeChunk = 64 << 10

// appendDataFrame appends f as an unmasked, unfragmented text frame (RFC 6455 §5.2): what a
// server sends, and what gorilla's writer would have written.
func appendDataFrame(b []byte, f *outFrame) []byte {
	b = appendFrameHeader(b, websocket.TextMessage, f.size())
	b = append(b, f.head...)
	return append(b, f.tail...)
}

func appendFrameHeader(b []byte, opcode int, n int) []byte {
	b = append(b, 0x80|byte(opcode)) // FIN
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xffff:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return append(b, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// writeRaw writes whole frames to the network connection with one write. gorilla's writers
// set the deadline again before every frame, a timer update each; here it is set again only
// once a quarter of timeout has passed since it was, so a write waits at least 3/4 of
// timeout and at most timeout. It is safe because every write of the connection goes through
// here. After a close frame or a failed write nothing is written.
func (c *conn) writeRaw(b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b, timeout)
}

// writeLocked is writeRaw. Caller holds wmu.
func (c *conn) writeLocked(b []byte, timeout time.Duration) error {
	if c.writeDone {
		return websocket.ErrCloseSent
	}
	if raw := c.rd.raw; raw != nil {
		// First without waiting: a client that keeps up has room for the frames in its
		// socket buffer, and such a write needs no deadline, no poller and no clock (the
		// fan-out makes one per subscriber). What does not fit now goes the ordinary way.
		n := 0
		_ = raw.Control(func(fd uintptr) { n = writeNonBlocking(int(fd), b) })
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
	nc := c.nc
	want := time.Now().Add(timeout)
	if want.Sub(c.wdeadline) > timeout/4 || c.wdeadline.After(want) {
		if err := nc.SetWriteDeadline(want); err != nil {
			return err
		}
		c.wdeadline = want
	}
	if _, err := nc.Write(b); err != nil {
		c.writeDone = true // part of a frame may have gone out
		return err
	}
	return nil
}

// writeControl writes a control frame (ping, pong or close) within timeout.
func (c *conn) writeControl(opcode int, data []byte, timeout time.Duration) error {
	if len(data) > 125 {
		data = data[:125] // a control frame's limit; only a close reason could be this long
	}
	var arr [2 + 125]byte
	b := append(appendFrameHeader(arr[:0], opcode, len(data)), data...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.writeLocked(b, timeout)
	if opcode == websocket.CloseMessage {
		c.writeDone = true
	}
	return err
}

// reply queues a reply frame built in a pooled buffer.
func (c *conn) reply(buf *[]byte) {
	c.send(outFrame{head: *buf, buf: buf})
}
