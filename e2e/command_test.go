package e2e_test

// cmd/bridge as a process: the shutdown order on SIGTERM, the drain timeout, -metrics-listen
// and the HTTP idle timeout (issue 9 item 9, issue 14's draining items).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// bridgeProc is a running cmd/bridge.
type bridgeProc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan error
	addr   string
}

// startBridgeBinary builds cmd/bridge and starts it with args on a free address, waiting
// until /readyz answers 200.
func startBridgeBinary(t *testing.T, args ...string) *bridgeProc {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs cmd/bridge")
	}
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM")
	}
	bin := filepath.Join(t.TempDir(), "bridge")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/bridge").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := &bridgeProc{addr: freeAddr(t), out: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, append([]string{"-listen", p.addr}, args...)...)
	p.cmd.Env = demoEnviron()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-p.exited:
			p.exited <- err
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Logf("bridge output:\n%s", p.out)
		}
	})
	httpc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup, which must not wait for a second exit
			t.Fatalf("the bridge exited before it was ready: %v\n%s", err, p.out)
		default:
		}
		if resp, err := httpc.Get("http://" + p.addr + "/readyz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge was not ready within 2 minutes:\n%s", p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the process to exit and fails unless it exits 0.
func (p *bridgeProc) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("the bridge exited with %v:\n%s", err, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the bridge did not exit within 30s:\n%s", p.out)
	}
}

func TestCommandSIGTERMAnswersInFlightThenCloses1001(t *testing.T) {
	slow, backendAddr := startSlowBackend(t)
	metricsAddr := freeAddr(t)
	p := startBridgeBinary(t, "-backend", backendAddr, "-drain-timeout", "60s",
		"-metrics-listen", metricsAddr, "-http-idle-timeout", "300ms")
	url := "ws://" + p.addr + "/ws"

	// /metrics is served on its own address only.
	for _, tc := range []struct {
		addr   string
		status int
	}{{p.addr, 404}, {metricsAddr, 200}} {
		resp, err := http.Get("http://" + tc.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("/metrics on %s: HTTP %d, want %d", tc.addr, resp.StatusCode, tc.status)
		}
		if tc.status == 200 && !strings.Contains(string(body), "# TYPE wsbridge_connections gauge") {
			t.Fatalf("/metrics: %s", body)
		}
	}
	// An idle keep-alive connection is closed by the server.
	raw, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: read %v, want EOF (closed by -http-idle-timeout)", err)
	}

	// Requests in flight on two connections.
	const perConn = 3
	clients := []*client{dialURL(t, url, nil), dialURL(t, url, nil)}
	for _, c := range clients {
		for i := range perConn {
			c.send("questions", map[string]any{"action": "retrieve", "pk": i + 1})
		}
	}
	for range len(clients) * perConn {
		select {
		case <-slow.started:
		case <-time.After(20 * time.Second):
			t.Fatal("the calls did not reach the backend")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// While the bridge drains, the listener is still open and a new handshake gets a
	// clear 503, not a refused TCP connection.
	waitFor(t, "a handshake refused with 503 during the drain", func() bool {
		ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if ws != nil {
			ws.Close()
			return false
		}
		if resp == nil {
			t.Fatalf("handshake during the drain: %v (the listener closed before the drain ended)", err)
		}
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	slow.releaseAll()
	for _, c := range clients {
		for range perConn {
			wantStatus(t, c.next(), 200)
		}
		if code := c.closeCode(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	p.wait(t)
	if out := p.out.String(); !strings.Contains(out, "shutting down") || !strings.Contains(out, "stopped") ||
		strings.Contains(out, "drain timed out") {
		t.Fatalf("log:\n%s", out)
	}
}

func TestCommandDrainTimeoutStillExits0(t *testing.T) {
	slow, backendAddr := startSlowBackend(t)
	p := startBridgeBinary(t, "-backend", backendAddr, "-drain-timeout", "500ms")
	c := dialURL(t, "ws://"+p.addr+"/ws", nil)
	c.send("questions", map[string]any{"action": "retrieve", "pk": 1})
	select {
	case <-slow.started:
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not reach the backend")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The stuck call holds the drain until the timeout; then the connection is closed
	// anyway, the call cancelled, and the process exits 0.
	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	p.wait(t)
	if out := p.out.String(); !strings.Contains(out, "drain timed out") || !strings.Contains(out, "stopped") {
		t.Fatalf("the drain timeout was not logged:\n%s", out)
	}
	waitFor(t, "the stuck call to be cancelled", func() bool { return slow.cancelled.Load() == 1 })
}
