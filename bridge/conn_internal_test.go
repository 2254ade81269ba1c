package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWriteRawFrames: the frames the writer encodes itself (writeRaw) are read by a standard
// client as the messages queued, in order, at every length encoding (7-bit, 16-bit and
// 64-bit), head and tail joined, several batched into one write, then a close frame.
func TestWriteRawFrames(t *testing.T) {
	srv, err := New(WithBackend(Backend{Target: "127.0.0.1:1"}), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 100000, 3, 200}
	msg := func(i, n int) (head, tail []byte) {
		b := bytes.Repeat([]byte{byte('a' + i)}, n)
		return b[:n/2], b[n/2:]
	}
	done := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		c := newConn(srv, ws.NetConn())
		// Queued under c.mu as the writer would find them: all of them go out in one batch.
		c.mu.Lock()
		for i, n := range sizes {
			head, tail := msg(i, n)
			c.queue = append(c.queue, outFrame{head: head, tail: tail})
			c.queued += n
		}
		c.mu.Unlock()
		c.send(outFrame{head: []byte("last")})
		c.closeAfterFlush(websocket.CloseNormalClosure, "bye")
		<-done
		c.writer.Wait()
		ws.Close()
	}))
	defer hs.Close()
	defer close(done)

	cl, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_ = cl.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i, n := range sizes {
		mt, got, err := cl.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, n, err)
		}
		head, tail := msg(i, n)
		if mt != websocket.TextMessage || !bytes.Equal(got, append(head, tail...)) {
			t.Fatalf("message %d: type %d, %d bytes, want text of %d", i, mt, len(got), n)
		}
	}
	if _, got, err := cl.ReadMessage(); err != nil || string(got) != "last" {
		t.Fatalf("last message: %q %v", got, err)
	}
	_, _, err = cl.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure || ce.Text != "bye" {
		t.Fatalf("after the messages: %v, want close 1000 bye", err)
	}
}

func TestAppendFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, websocket.TextMessage, tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("header of %d bytes: % x, want % x", tc.n, got, tc.want)
		}
	}
}
