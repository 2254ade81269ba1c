package bridge

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// The read side of a connection's WebSocket (RFC 6455 §5): client frames, unmasked into the
// pooled frame a request is decoded from. gorilla does the handshake only; the bridge writes
// its frames itself (writeRaw) and reads them here, so that an idle connection holds no read
// buffer and waits for input on a shallow stack: its goroutine keeps the runtime's smallest
// stack (frameReader.idle; issue 11 §4, docs/benchmarks.md).

// frameReader reads a connection's frames. Only the read loop uses it (raw, set before, is
// read-only).
type frameReader struct {
	nc  net.Conn
	raw syscall.RawConn // for idle's wait, and writeLocked's first try; nil when the connection has none (TLS)
	// onReady is f.readReady as a func value, made once: one made per wait would be
	// allocated per wait.
	onReady func(fd uintptr) bool
	buf     *[]byte // pooled; nil while nothing is buffered
	r       int     // (*buf)[r:] is read from the network and not yet parsed
	// The data message being read, across its frames: its opcode (0: none), its length and
	// the text read so far (nil for a message that is dropped).
	msgOp  int
	msgLen int64
	msg    *inFrame
}

// readBufSize is a read buffer's size: a frame header and a typical request fit, and a
// larger payload is read straight into its frame.
const readBufSize = 4096

var readBufPool = sync.Pool{New: func() any { b := make([]byte, 0, readBufSize); return &b }}

// init readies f, in place (onReady refers to f), to read nc.
func (f *frameReader) init(nc net.Conn) {
	f.nc = nc
	if sc, ok := nc.(syscall.Conn); ok && canReadWhenReady {
		if raw, err := sc.SyscallConn(); err == nil {
			f.raw = raw
			f.onReady = f.readReady
		}
	}
}

// readReady reads what the socket holds into a pooled buffer, or reports false, holding
// nothing, when it holds nothing yet (the poller then waits for input and calls it again).
// EOF and errors end the wait too: the read that follows meets them again.
func (f *frameReader) readReady(fd uintptr) bool {
	b := readBufPool.Get().(*[]byte)
	n, again := readNonBlocking(int(fd), (*b)[:cap(*b)])
	if again {
		readBufPool.Put(b)
		return false
	}
	if n > 0 {
		*b = (*b)[:n]
		f.buf, f.r = b, 0
	} else {
		readBufPool.Put(b)
	}
	return true
}

// buffered is how many bytes were read from the network and not yet parsed.
func (f *frameReader) buffered() int {
	if f.buf == nil {
		return 0
	}
	return len(*f.buf) - f.r
}

// idle gives the read buffer back and waits until the network has input, on a shallow stack,
// where there is nothing buffered; the input is read as the wait ends (readReady). It
// returns at once on a closed connection or a passed read deadline: the read that follows
// reports it.
func (f *frameReader) idle() {
	if f.buffered() > 0 {
		return
	}
	f.putBuf()
	if f.raw != nil {
		_ = f.raw.Read(f.onReady)
	}
}

// putBuf gives the read buffer back to the pool, if f holds one.
func (f *frameReader) putBuf() {
	if f.buf != nil {
		*f.buf = (*f.buf)[:0]
		readBufPool.Put(f.buf)
		f.buf, f.r = nil, 0
	}
}

// release gives the read buffer and a message read in part back for good.
func (f *frameReader) release() {
	f.putBuf()
	if f.msg != nil {
		f.msg.release()
		f.msg = nil
	}
}

// need makes at least n (≤ readBufSize) bytes available in (*buf)[r:].
func (f *frameReader) need(n int) error {
	if f.buf == nil {
		f.buf, f.r = readBufPool.Get().(*[]byte), 0
	}
	b := *f.buf
	if len(b)-f.r >= n {
		return nil
	}
	if f.r > 0 && cap(b)-f.r < n {
		b = b[:copy(b, b[f.r:])]
		f.r = 0
	}
	for len(b)-f.r < n {
		m, err := f.nc.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		*f.buf = b
		if err != nil && len(b)-f.r < n {
			return err
		}
	}
	return nil
}

// payload copies the next n bytes of the stream, a frame's payload masked with key, unmasked
// into dst (or drops them when dst is nil).
func (f *frameReader) payload(dst io.Writer, n int64, key [4]byte) error {
	pos := 0 // in the mask
	for n > 0 {
		if f.buffered() == 0 {
			if err := f.need(1); err != nil {
				return err
			}
		}
		b := (*f.buf)[f.r:]
		if int64(len(b)) > n {
			b = b[:n]
		}
		pos = maskBytes(key, pos, b)
		if dst != nil {
			_, _ = dst.Write(b) // a bytes.Buffer
		}
		f.r += len(b)
		n -= int64(len(b))
	}
	return nil
}

// maskBytes applies the mask key to b, which starts at position pos in it, and returns the
// position after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	i := 0
	if len(b) >= 8 {
		var k [8]byte
		for j := range k {
			k[j] = key[(pos+j)&3]
		}
		kw := binary.LittleEndian.Uint64(k[:])
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^kw)
		}
	}
	for ; i < len(b); i++ {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// errProtocol is a client's breach of RFC 6455: the connection is closed with 1002.
type errProtocol string

func (e errProtocol) Error() string { return "websocket protocol error: " + string(e) }

// errClosedByClient ends the read loop after the client's close frame was answered.
var errClosedByClient = errors.New("closed by the client")

// errTooBig: a message over the read limit; the connection is closed with 1009.
var errTooBig = errors.New("message over the read limit")

// frameResult is what readFrame found.
type frameResult int

const (
	frameControl   frameResult = iota // a control frame, handled, or a data frame that did not end a message
	frameText                         // a whole text message is in rd.msg
	frameDiscarded                    // a whole data message was read and dropped
)

// readFrame reads one frame. Text payload goes into rd.msg (taken from the pool when a
// message starts); a binary message closes the connection with 1003 and, like every message read
// while the connection is closing, is dropped. Control frames are answered here.
func (c *conn) readFrame() (frameResult, error) {
	f := &c.rd
	if err := f.need(2); err != nil {
		return 0, err
	}
	b := (*f.buf)[f.r:]
	final, op, masked := b[0]&0x80 != 0, int(b[0]&0x0f), b[1]&0x80 != 0
	if b[0]&0x70 != 0 {
		return 0, errProtocol("reserved bits set") // no extension is negotiated
	}
	if !masked {
		return 0, errProtocol("client frame not masked")
	}
	hlen := 2 + 4
	switch b[1] & 0x7f {
	case 126:
		hlen += 2
	case 127:
		hlen += 8
	}
	if err := f.need(hlen); err != nil {
		return 0, err
	}
	b = (*f.buf)[f.r:]
	n := int64(b[1] & 0x7f)
	switch n {
	case 126:
		n = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		if u>>63 != 0 {
			return 0, errProtocol("payload length over 2^63")
		}
		n = int64(u)
	}
	key := [4]byte(b[hlen-4 : hlen])
	f.r += hlen

	switch op {
	case websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
		if !final || n > 125 {
			return 0, errProtocol("fragmented or oversized control frame")
		}
		if err := f.need(int(n)); err != nil {
			return 0, err
		}
		p := (*f.buf)[f.r : f.r+int(n)]
		maskBytes(key, 0, p)
		f.r += int(n)
		return frameControl, c.onControl(op, p)
	case websocket.TextMessage, websocket.BinaryMessage:
		if f.msgOp != 0 {
			return 0, errProtocol("new message before the final frame of the last")
		}
		f.msgOp, f.msgLen = op, 0
		if op == websocket.TextMessage && !c.isClosing() {
			f.msg = inFramePool.Get().(*inFrame)
			f.msg.buf.Reset()
		}
		if op == websocket.BinaryMessage {
			c.closeWith(websocket.CloseUnsupportedData, "binary frames are not supported")
		}
	case 0: // continuation
		if f.msgOp == 0 {
			return 0, errProtocol("continuation frame outside a message")
		}
	default:
		return 0, errProtocol("unknown opcode")
	}
	f.msgLen += n
	if f.msgLen > c.srv.opts.maxFrameBytes {
		return 0, errTooBig
	}
	var dst io.Writer
	if f.msg != nil {
		f.msg.buf.Grow(int(n))
		dst = &f.msg.buf
	}
	if err := f.payload(dst, n, key); err != nil {
		return 0, err
	}
	if !final {
		return frameControl, nil
	}
	f.msgOp = 0
	if f.msg == nil {
		return frameDiscarded, nil
	}
	return frameText, nil
}

// onControl answers a ping, notes a pong, and answers a close frame, which ends the read
// loop (errClosedByClient).
func (c *conn) onControl(op int, p []byte) error {
	switch op {
	case websocket.PingMessage:
		// Once the connection is closing, frames read are discarded unanswered, so a pong
		// would tell the client that frames it sent before the ping were read and will be
		// answered. No pong then: the close frame follows.
		if c.isClosing() {
			return nil
		}
		c.extendRead()
		// The write timeout, as for any frame: a write that fails leaves the connection
		// unable to write anything again (writeRaw, conn.go).
		err := c.writeControl(websocket.PongMessage, p, c.srv.opts.writeTimeout)
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	case websocket.PongMessage:
		c.extendRead()
		return nil
	}
	code := websocket.CloseNoStatusReceived
	switch {
	case len(p) == 1:
		return errProtocol("close frame of one byte")
	case len(p) >= 2:
		code = int(binary.BigEndian.Uint16(p))
		if !validCloseCode(code) {
			return errProtocol("invalid close code")
		}
		if !utf8.Valid(p[2:]) {
			return errProtocol("close reason not UTF-8")
		}
	}
	// The close reply goes through the connection's writer (writeRaw): nothing is written
	// after it.
	var msg []byte
	if code != websocket.CloseNoStatusReceived {
		msg = websocket.FormatCloseMessage(code, "")
	}
	_ = c.writeControl(websocket.CloseMessage, msg, closeGrace)
	return errClosedByClient
}

// validCloseCode reports whether a client may send code in a close frame (RFC 6455 §7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}
