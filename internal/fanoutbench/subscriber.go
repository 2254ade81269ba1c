package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Every event's text is "e<seq>.<unix nanos>." padded with x to -text-bytes: the
// subscriber reads the publish time from it (load generator and servers share the
// machine's clock) and the sequence number that finds missing and duplicated deliveries.
const marker = `"question_text":"e`

func eventText(seq int, at time.Time, size int) string {
	b := make([]byte, 0, max(size, 40))
	b = append(b, 'e')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	b = append(b, '.')
	for len(b) < size {
		b = append(b, 'x')
	}
	return string(b)
}

// parseStamp reads seq and the publish time right after a marker.
func parseStamp(b []byte) (seq int, nanos int64, ok bool) {
	s, n := digits(b)
	if n == 0 || n >= len(b) || b[n] != '.' {
		return 0, 0, false
	}
	t, m := digits(b[n+1:])
	if m == 0 {
		return 0, 0, false
	}
	return int(s), t, true
}

func digits(b []byte) (v int64, n int) {
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	return v, n
}

// tally is what every subscriber adds to; per-connection detail stays in sub.
type tally struct {
	unique    atomic.Int64 // first deliveries
	dups      atomic.Int64
	bad       atomic.Int64 // frames with a marker that did not parse, or a seq out of range
	confirmed atomic.Int64
	closed    atomic.Int64 // connections the server ended
	firstErr  atomic.Pointer[string]
	progress  chan struct{} // nudged on deliveries, never blocks
}

func (t *tally) fail(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	t.firstErr.CompareAndSwap(nil, &s)
}

// sub is one subscribed connection; its read loop is its only goroutine.
type sub struct {
	ws   *websocket.Conn
	got  []uint8 // per event seq: deliveries
	lat  []int32 // µs, first deliveries
	done chan struct{}
}

// dialer spreads connections over source addresses 127.0.0.1..127.0.0.n, so that more
// than one address's ephemeral ports (about 28k) fit.
func dialer(i, n int) *websocket.Dialer {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%n))}
	nd := &net.Dialer{LocalAddr: local, Timeout: 30 * time.Second}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 30 * time.Second,
		// Small buffers: frames here are a few hundred bytes.
		ReadBufferSize:  512,
		WriteBufferSize: 256,
	}
}

// connect opens and subscribes one connection, then starts its read loop. It returns
// once the subscription is confirmed.
func connect(ctx context.Context, srv server, i, sources, events int, tok string, t *tally) (*sub, error) {
	var h http.Header
	if tok != "" {
		h = http.Header{"Authorization": {"Bearer " + tok}}
	}
	ws, resp, err := dialer(i, sources).DialContext(ctx, srv.wsURL(), h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	s := &sub{ws: ws, got: make([]uint8, events), lat: make([]int32, 0, events), done: make(chan struct{})}
	buf := make([]byte, 0, 512)
	ping, pong := srv.ping()
	ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	for step, f := range srv.subscribeFrames(tok) {
		if err := ws.WriteMessage(websocket.TextMessage, f); err != nil {
			ws.Close()
			return nil, err
		}
		for {
			if buf, err = readFrame(ws, buf); err != nil {
				ws.Close()
				return nil, fmt.Errorf("waiting for the reply to %.80s: %w", f, err)
			}
			if hasPing(buf, ping) {
				_ = ws.WriteMessage(websocket.TextMessage, pong)
			}
			isReply, err := srv.accepted(step, buf)
			if err != nil {
				ws.Close()
				return nil, err
			}
			if isReply {
				break
			}
		}
	}
	ws.SetReadDeadline(time.Time{})
	t.confirmed.Add(1)
	go s.read(buf, ping, pong, t)
	return s, nil
}

// hasPing tells whether a frame holds the server's application-level ping: alone, or as
// one line among others (Centrifugo batches a ping with the pushes queued beside it; a
// ping left unanswered costs the connection, 3012 "no pong").
func hasPing(frame, ping []byte) bool {
	if ping == nil {
		return false
	}
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if bytes.Equal(line, ping) {
			return true
		}
	}
	return false
}

// readFrame reads one message into buf, reusing its storage.
func readFrame(ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (s *sub) read(buf, ping, pong []byte, t *tally) {
	defer close(s.done)
	for {
		var err error
		if buf, err = readFrame(s.ws, buf); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !isLocalClose(err) {
				t.closed.Add(1)
				t.fail("a connection ended: %v", err)
			}
			return
		}
		now := time.Now().UnixNano()
		if hasPing(buf, ping) {
			_ = s.ws.WriteMessage(websocket.TextMessage, pong)
		}
		// One frame may carry several events (Centrifugo batches them, a line each).
		rest := buf
		for {
			i := bytes.Index(rest, []byte(marker))
			if i < 0 {
				break
			}
			rest = rest[i+len(marker):]
			seq, at, ok := parseStamp(rest)
			if !ok || seq < 0 || seq >= len(s.got) {
				t.bad.Add(1)
				t.fail("unreadable event: %.200s", buf)
				continue
			}
			s.got[seq]++
			if s.got[seq] > 1 {
				t.dups.Add(1)
				continue
			}
			if seq > 0 { // 0 is the warm-up
				s.lat = append(s.lat, int32(min((now-at)/1000, 1<<31-1)))
			}
			t.unique.Add(1)
			select {
			case t.progress <- struct{}{}:
			default:
			}
		}
	}
}

func isLocalClose(err error) bool {
	return err != nil && strings.Contains(err.Error(), "use of closed network connection")
}

// close ends the connection and waits for its read loop.
func (s *sub) close() {
	_ = s.ws.Close()
	<-s.done
}
