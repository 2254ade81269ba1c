package e2e_test

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemoScript runs scripts/demo as a user would (it builds and starts the backend and the
// bridge), uses the bridge over a WebSocket, and checks that SIGTERM stops everything cleanly.
func TestDemoScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the demo binaries")
	}
	if runtime.GOOS == "windows" {
		t.Skip("scripts/demo is a bash script")
	}
	for _, tool := range []string{"bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}

	dir := t.TempDir()
	bridgeAddr, grpcAddr, restAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "demo"))
	cmd.Env = append(demoEnviron(),
		"BRIDGE_ADDR="+bridgeAddr,
		"BACKEND_ADDR="+grpcAddr,
		"BACKEND_HTTP_ADDR="+restAddr,
		"DEMO_DB="+filepath.Join(dir, "data", "demo.db"),
		"DEMO_BIN="+filepath.Join(dir, "bin"),
	)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second // the children hold the output pipe too
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		// The test failed half-way: leave nothing running. The children have process groups
		// of their own, so they are killed by pid.
		for _, pid := range demoPIDs(out.String()) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-exited
		t.Logf("demo output:\n%s", out.String())
	})

	// The first run builds the binaries, which can take a while on a cold cache.
	httpc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("scripts/demo exited before the bridge was ready: %v", err)
		default:
		}
		if resp, err := httpc.Get("http://" + bridgeAddr + "/readyz"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge not ready within 5 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, url := range []string{"ws://" + bridgeAddr + "/ws", "http://" + bridgeAddr + "/debug/", "http://" + restAddr + "/v1/questions"} {
		if !strings.Contains(out.String(), url) {
			t.Errorf("scripts/demo did not print %s", url)
		}
	}
	// The script starts the bridge once the backend serves: no discovery warnings.
	if strings.Contains(out.String(), "discovery failed") {
		t.Errorf("scripts/demo printed discovery failures:\n%s", out.String())
	}
	if pids := demoPIDs(out.String()); len(pids) != 2 {
		t.Fatalf("scripts/demo printed pids %v, want the backend's and the bridge's", pids)
	}

	// One create and one retrieve over the WebSocket; the question is also on the REST API.
	c := dialURL(t, "ws://"+bridgeAddr+"/ws", nil)
	id := c.createQuestion("Does the demo work?")
	f := c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantStatus(t, f, 200)
	if got := f.data()["question_text"]; got != "Does the demo work?" {
		t.Fatalf("retrieve %s: question_text %v: %s", id, got, f.raw)
	}
	resp, err := httpc.Get("http://" + restAddr + "/v1/questions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST GET /v1/questions/%s: HTTP %d", id, resp.StatusCode)
	}

	// SIGTERM stops both, the WebSocket still open, within the drain timeouts.
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("scripts/demo: %v; output:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("scripts/demo still running 30s after SIGTERM")
	}
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
	for _, name := range []string{"bridge", "backend"} {
		if want := name + " exited with status 0"; !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the output:\n%s", want, out.String())
		}
	}
	if code := c.closeCode(); code != 1001 {
		t.Errorf("WebSocket closed with %d, want 1001 (going away)", code)
	}
	for _, pid := range demoPIDs(out.String()) {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running", pid)
		}
	}
	for _, addr := range []string{bridgeAddr, grpcAddr, restAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still in use after the demo stopped: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	// A port from the ephemeral range, free now, can be taken by any outgoing connection
	// before the child process binds it; ports below that range are only ever taken by a
	// listener that asks for them.
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(lo-10000)))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// demoEnviron is the test's environment without the variables that configure the demo,
// the bridge or the backend, which the test sets itself.
func demoEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BRIDGE_") || strings.HasPrefix(kv, "BACKEND_") || strings.HasPrefix(kv, "DEMO_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

var demoPIDRe = regexp.MustCompile(`demo: (?:backend|bridge) pid (\d+)`)

// demoPIDs are the children's pids scripts/demo printed.
func demoPIDs(out string) []int {
	var pids []int
	for _, m := range demoPIDRe.FindAllStringSubmatch(out, -1) {
		if pid, err := strconv.Atoi(m[1]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lockedBuffer collects a process's output, written from exec's copying goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
