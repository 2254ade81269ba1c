package e2e_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// The bridge reads client frames itself (bridge/wsread.go). These tests write frames byte
// by byte as RFC 6455 §5 defines them, and check what the bridge makes of them.

// clientFrame is one masked client frame: fin, opcode, payload, and the mask key.
func clientFrame(fin bool, opcode byte, payload []byte, key [4]byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// writeBytes writes raw bytes on the client's connection.
func (c *client) writeBytes(b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.ws.NetConn().Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// dialCountingPongs is dial with a count of the pongs the bridge sent.
func (e *env) dialCountingPongs() (*client, *atomic.Int64) {
	e.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	var pongs atomic.Int64
	ws.SetPongHandler(func(string) error { pongs.Add(1); return nil })
	c := &client{t: e.t, ws: ws, frames: make(chan frame, 64), done: make(chan struct{})}
	go c.read()
	e.t.Cleanup(c.close)
	return c, &pongs
}

// TestFramesFragmentedWithPing: a request in three fragments with a ping between them is
// one request, and the ping is answered.
func TestFramesFragmentedWithPing(t *testing.T) {
	e := newEnv(t)
	c, pongs := e.dialCountingPongs()
	msg := []byte(`{"stream":"questions","payload":{"action":"list","request_id":"frag"}}`)
	var b []byte
	b = append(b, clientFrame(false, websocket.TextMessage, msg[:10], testKey)...)
	b = append(b, clientFrame(true, websocket.PingMessage, []byte("hi"), testKey)...)
	b = append(b, clientFrame(false, 0, msg[10:11], [4]byte{1, 2, 3, 4})...)
	b = append(b, clientFrame(true, 0, msg[11:], [4]byte{9, 8, 7, 6})...)
	c.writeBytes(b)
	f := c.next()
	if f.Payload["request_id"] != "frag" {
		t.Fatalf("reply %s, want the reply to request frag", f.raw)
	}
	wantStatus(t, f, 200)
	// The pong was written before the reply, by the read loop, and read before it.
	if pongs.Load() != 1 {
		t.Fatalf("%d pongs, want 1", pongs.Load())
	}
}

// TestFramesSplitAndJoined: frames written one byte at a time, frames larger than the
// bridge's read buffer, and several frames in one write are all read whole.
func TestFramesSplitAndJoined(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	req := func(id string, pad int) []byte {
		return fmt.Appendf(nil, `{"stream":"questions","payload":{"action":"list","request_id":%q,"pad":%q}}`, id, strings.Repeat("abcdefghij", pad/10))
	}
	// One byte per write.
	for _, b := range clientFrame(true, websocket.TextMessage, req("bytewise", 130), testKey) {
		c.writeBytes([]byte{b})
	}
	wantID(t, c.next(), "bytewise")
	// 20 KB, 70 KB (a 64-bit length) with a larger limit, and small ones, in one write.
	var b []byte
	ids := []string{"big", "small1", "huge", "small2"}
	pads := []int{20000, 0, 0, 10}
	for i, id := range ids {
		b = append(b, clientFrame(true, websocket.TextMessage, req(id, pads[i]), testKey)...)
	}
	c.writeBytes(b)
	got := map[any]bool{} // calls run side by side: replies come as they finish
	for range ids {
		got[c.next().Payload["request_id"]] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Fatalf("no reply to request %s; replies to %v", id, got)
		}
	}
	e2 := newEnv(t, bridge.WithMaxFrameSize(100<<10))
	c2 := e2.dial()
	c2.writeBytes(clientFrame(true, websocket.TextMessage, req("huge", 70000), testKey))
	wantID(t, c2.next(), "huge")
}

func wantID(t *testing.T, f frame, id string) {
	t.Helper()
	if f.Payload["request_id"] != id {
		t.Fatalf("reply %.200s, want the reply to request %s", f.raw, id)
	}
}

// TestFramesProtocolErrors: every breach of RFC 6455 a client can commit closes its
// connection with 1002.
func TestFramesProtocolErrors(t *testing.T) {
	e := newEnv(t)
	text := []byte(`{"stream":"questions","payload":{"action":"list"}}`)
	unmasked := clientFrame(true, websocket.TextMessage, text, testKey)
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], text...)
	rsv := clientFrame(true, websocket.TextMessage, text, testKey)
	rsv[0] |= 0x40
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"unmasked", unmasked},
		{"reserved bit", rsv},
		{"unknown opcode", clientFrame(true, 3, nil, testKey)},
		{"fragmented ping", clientFrame(false, websocket.PingMessage, nil, testKey)},
		{"ping over 125 bytes", clientFrame(true, websocket.PingMessage, bytes.Repeat([]byte("p"), 126), testKey)},
		{"continuation first", clientFrame(true, 0, text, testKey)},
		{"text inside text", append(clientFrame(false, websocket.TextMessage, text[:5], testKey), clientFrame(true, websocket.TextMessage, text, testKey)...)},
		{"close of one byte", clientFrame(true, websocket.CloseMessage, []byte{3}, testKey)},
		{"close code 1005", clientFrame(true, websocket.CloseMessage, []byte{0x03, 0xed}, testKey)},
		{"close code 2999", clientFrame(true, websocket.CloseMessage, websocket.FormatCloseMessage(2999, ""), testKey)},
		{"close reason not UTF-8", clientFrame(true, websocket.CloseMessage, append(websocket.FormatCloseMessage(1000, ""), 0xff), testKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial()
			wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
			c.writeBytes(tc.bytes)
			if code := c.closeCode(); code != websocket.CloseProtocolError {
				t.Fatalf("close code %d, want 1002", code)
			}
		})
	}
}

// TestFramesClientClose: the bridge answers a client's close frame with the same code, or
// with an empty one when the client gave none.
func TestFramesClientClose(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		payload []byte
		want    int
	}{
		{websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), websocket.CloseNormalClosure},
		{websocket.FormatCloseMessage(4321, ""), 4321},
		{nil, websocket.CloseNoStatusReceived},
	} {
		c := e.dial()
		c.writeBytes(clientFrame(true, websocket.CloseMessage, tc.payload, testKey))
		if code := c.closeCode(); code != tc.want {
			t.Fatalf("close code %d, want %d", code, tc.want)
		}
	}
}

// TestFramesLimitAcrossFragments: the read limit is on a message, whatever its fragments.
func TestFramesLimitAcrossFragments(t *testing.T) {
	e := newEnv(t, bridge.WithMaxFrameSize(1024))
	c := e.dial()
	part := bytes.Repeat([]byte("x"), 600)
	c.writeBytes(append(clientFrame(false, websocket.TextMessage, part, testKey), clientFrame(true, 0, part, testKey)...))
	if code := c.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}
