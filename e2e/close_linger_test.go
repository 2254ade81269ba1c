//go:build linux

package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// TestCloseFrameSurvivesASlowClient: a client too slow to read (its receive window full, so
// the bridge's close frame is still in the bridge's send queue) that keeps sending after the
// bridge has finished its side of the close must still read the 1001 close frame. Closing
// the socket outright would answer the client's late frame with a reset, which throws the
// unsent close frame away: the client saw 1006, as in the 10,000-connection soak.
//
// No timing: the client reads nothing until /proc/net/tcp shows the bridge's socket has
// sent its FIN (FIN_WAIT1) with bytes still unsent behind the full window; only then does
// it send one more frame and start reading.
func TestCloseFrameSurvivesASlowClient(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp:", err)
	}
	e := newEnv(t)
	// A small receive buffer fills with a few replies; the rest waits in the bridge.
	d := websocket.Dialer{NetDialContext: smallReceiveBuffer().DialContext, HandshakeTimeout: waitLimit}
	ws, _, err := d.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	bridgePort := e.http.Listener.Addr().(*net.TCPAddr).Port
	clientPort := ws.NetConn().LocalAddr().(*net.TCPAddr).Port
	bridgeSock := func() (state, txQueue int, ok bool) {
		state, txQueue, _, ok = tcpQueues(t, bridgePort, clientPort)
		return state, txQueue, ok
	}

	// 60 replies of about 100 bytes each: well over the client's window, well under the
	// bridge's send buffer (a full send buffer would be a write timeout, a 1006 by design).
	const requests = 60
	for i := range requests {
		msg := fmt.Sprintf(`{"stream":"questions","payload":{"action":"retrieve","pk":999999,"request_id":"r%d"}}`, i)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// The bridge's queue is stuck behind the client's full window.
	waitUntil(t, "replies waiting behind the client's full window", func() bool {
		_, tx, ok := bridgeSock()
		return ok && tx > 1000
	})

	shut := make(chan struct{})
	go func() { defer close(shut); e.close() }()

	const finWait1 = 0x04
	waitUntil(t, "the bridge to finish its side of the close (FIN_WAIT1)", func() bool {
		st, _, ok := bridgeSock()
		return ok && st == finWait1
	})
	if _, tx, _ := bridgeSock(); tx <= 1000 {
		t.Fatalf("precondition: the bridge's close frame should still be unsent behind the window, unsent bytes %d", tx)
	}
	// A frame the client sent before it knew of the close; the bridge must swallow it.
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"stream":"questions","payload":{"action":"list","request_id":"late"}}`)); err != nil {
		t.Fatalf("late frame: %v", err)
	}

	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	replies := 0
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			replies++
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("after %d replies: %v; want the close frame 1001", replies, err)
		}
		break
	}
	if replies != requests {
		t.Errorf("%d replies before the close frame, want %d", replies, requests)
	}
	ws.Close() // the bridge's linger ends at our EOF
	waitRecv(t, "Shutdown to return", shut)
}

// waitUntil polls cond until it holds, failing after waitLimit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, waitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tcpQueues finds the IPv4 socket from local port to remote port in /proc/net/tcp and
// returns its state, the bytes it has not had acknowledged (unsent ones included) and the
// bytes received that nobody has read.
func tcpQueues(t *testing.T, local, remote int) (state, txQueue, rxQueue int, ok bool) {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || !strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", local)) || !strings.HasSuffix(fs[2], fmt.Sprintf(":%04X", remote)) {
			continue
		}
		queues := strings.Split(fs[4], ":")
		st, err1 := strconv.ParseInt(fs[3], 16, 32)
		tx, err2 := strconv.ParseInt(queues[0], 16, 64)
		rx, err3 := strconv.ParseInt(queues[len(queues)-1], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("unreadable /proc/net/tcp line %q", sc.Text())
		}
		return int(st), int(tx), int(rx), true
	}
	return 0, 0, 0, false
}

// TestPongBlockedBeyondASecondKeepsTheConnection: a client that stops reading for a moment
// (2 s here, far less than the write timeout) while the bridge answers its pings must keep a
// working connection. A pong written with a 1 s deadline failed when the socket stayed full
// that long, and gorilla keeps a failed write's error: the next reply could not be written
// and the connection ended without a close frame (1006), logged as a write timeout although
// nobody had waited for it. In the soak, CPU starvation of a second did the same.
//
// The 2 s pause is the stimulus, not a wait for an outcome: with the fix the outcome does not
// depend on it (anything under the 30 s write timeout passes); the old 1 s deadline always
// fails it.
func TestPongBlockedBeyondASecondKeepsTheConnection(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp:", err)
	}
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: startBackend(t).addr}), bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(200*time.Millisecond), bridge.WithWriteTimeout(waitLimit))
	if err != nil {
		t.Fatal(err)
	}
	// The bridge's end gets a small send buffer, so that a few pongs fill it.
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = smallSendBuffer{hs.Listener.(*net.TCPListener)}
	hs.Start()
	defer hs.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{NetDialContext: smallReceiveBuffer().DialContext, HandshakeTimeout: waitLimit}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	bridgePort := hs.Listener.Addr().(*net.TCPAddr).Port
	clientPort := ws.NetConn().LocalAddr().(*net.TCPAddr).Port

	// 400 pings with the largest payload: their pongs (50 KB) cannot all fit in the client's
	// receive buffer and the bridge's send buffer (a few KB each), so the bridge ends up
	// waiting to write a pong while the client is not reading.
	payload := bytes.Repeat([]byte("p"), 125)
	for range 400 {
		if err := ws.WriteControl(websocket.PingMessage, payload, time.Now().Add(waitLimit)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "pongs waiting behind the client's full window", func() bool {
		_, tx, _, ok := tcpQueues(t, bridgePort, clientPort)
		return ok && tx > 0
	})
	time.Sleep(2 * time.Second) // the client reads nothing for 2 s

	// The client reads again: the pongs drain, and a request must still get its reply.
	pongs := 0
	ws.SetPongHandler(func(string) error { pongs++; return nil })
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"stream":"questions","payload":{"action":"list","request_id":"after"}}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("after %d pongs: %v; want the reply to the request", pongs, err)
	}
	if !strings.Contains(string(msg), `"request_id":"after"`) {
		t.Fatalf("got %s, want the reply to the request", msg)
	}
}

// smallSendBuffer gives each accepted connection a small send buffer.
type smallSendBuffer struct{ *net.TCPListener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	_ = c.SetWriteBuffer(4096)
	return c, nil
}

// smallReceiveBuffer dials with a small receive buffer, set before the connection is made
// so that the window is small from the start.
func smallReceiveBuffer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		}); err != nil {
			return err
		}
		return serr
	}}
}
