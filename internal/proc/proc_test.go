//go:build unix

package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// childEnv makes the test binary play a child process: the tests start real processes.
const childEnv = "PROC_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func child(mode string, args []string) int {
	switch mode {
	case "serve": // listens on args[0] until SIGTERM, then exits 0
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("serving on", ln.Addr())
		<-sigs
		ln.Close()
		return 0
	case "ignore-term": // never exits by itself
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		select {}
	case "exit3":
		fmt.Println("failing")
		return 3
	}
	return 100
}

func startChild(t *testing.T, mode string, args ...string) *Proc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartLogged(t.TempDir(), mode, []string{childEnv + "=" + mode}, self, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}

func logHas(p *Proc, s string) func() bool {
	return func() bool {
		b, _ := os.ReadFile(p.Log)
		return strings.Contains(string(b), s)
	}
}

func TestStartWaitForStop(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := startChild(t, "serve", addr)
	if err := p.WaitFor(30*time.Second, "port open", func() bool { return PortOpen(addr) }); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(30*time.Second, "log line", logHas(p, "serving on "+addr)); err != nil {
		t.Fatal(err)
	}
	if !p.Stop(syscall.SIGTERM, 30*time.Second) {
		t.Fatal("Stop: not in time")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("exit status after SIGTERM: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	p := startChild(t, "ignore-term")
	// The child ignores SIGTERM once it says so; the timeout then always passes.
	if err := p.WaitFor(30*time.Second, "its ready line", logHas(p, "ignoring SIGTERM")); err != nil {
		t.Fatal(err)
	}
	if p.Stop(syscall.SIGTERM, 100*time.Millisecond) {
		t.Fatal("Stop: in time, though the child ignores SIGTERM")
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("exit status = %v; want killed", err)
	}
	// Stopping an exited process does not block.
	if !p.Stop(syscall.SIGTERM, time.Hour) {
		t.Fatal("Stop of an exited process: not in time")
	}
}

func TestWaitForReportsExit(t *testing.T) {
	p := startChild(t, "exit3")
	err := p.WaitFor(time.Hour, "a miracle", func() bool { return false })
	if err == nil {
		t.Fatal("WaitFor succeeded")
	}
	for _, want := range []string{"exit3 exited before a miracle", "exit status 3", p.Log} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("WaitFor error %q lacks %q", err, want)
		}
	}
}

func TestWaitForTimesOut(t *testing.T) {
	p := startChild(t, "ignore-term")
	err := p.WaitFor(50*time.Millisecond, "a miracle", func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "ignore-term: no a miracle after 50ms (log "+p.Log+")") {
		t.Fatalf("WaitFor error = %v", err)
	}
	p.Kill()
	if err := p.Err(); err == nil {
		t.Fatal("killed process: nil exit status")
	}
}

func TestStartFailure(t *testing.T) {
	_, err := StartLogged(t.TempDir(), "nothing", nil, "./no-such-binary")
	if err == nil || !strings.HasPrefix(err.Error(), "starting nothing: ") {
		t.Fatalf("StartLogged error = %v", err)
	}
	// A Proc that failed to start counts as exited: nothing blocks on it.
	p := New("nothing", exec.Command("./no-such-binary"))
	if err := p.Start(); err == nil {
		t.Fatal("Start succeeded")
	}
	if !p.Stop(syscall.SIGTERM, time.Hour) || p.Err() == nil {
		t.Fatalf("failed start: Stop blocked or Err nil (%v)", p.Err())
	}
	if err := p.Until(t.Context(), time.Millisecond, func() bool { return false }); !errors.Is(err, ErrExited) {
		t.Fatalf("Until = %v; want ErrExited", err)
	}
	var nilProc *Proc
	if !nilProc.Stop(syscall.SIGTERM, time.Hour) {
		t.Fatal("Stop of nil: not in time")
	}
}

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime 250 and stime 50 ticks are 3 s.
	line := []byte("4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 10 1000 200")
	got, err := ParseStatCPU(line)
	if err != nil || got != 3*time.Second {
		t.Errorf("ParseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := ParseStatCPU([]byte("garbage")); err == nil {
		t.Error("ParseStatCPU(garbage) succeeded")
	}
	if _, err := CPU(0); err != nil {
		t.Errorf("CPU(self): %v", err)
	}
	rss, threads, err := Status(os.Getpid())
	if err != nil || rss <= 0 || threads <= 0 {
		t.Errorf("Status(self) = %d KiB, %d threads, %v", rss, threads, err)
	}
}

func TestParseIOSyscalls(t *testing.T) {
	io := []byte("rchar: 100\nwchar: 200\nsyscr: 7\nsyscw: 9\nread_bytes: 0\n")
	if r, w, err := ParseIOSyscalls(io); err != nil || r != 7 || w != 9 {
		t.Errorf("ParseIOSyscalls = %d, %d, %v; want 7, 9", r, w, err)
	}
	for _, bad := range []string{"rchar: 1\n", "syscr: x\nsyscw: 1\n"} {
		if _, _, err := ParseIOSyscalls([]byte(bad)); err == nil {
			t.Errorf("ParseIOSyscalls(%q) succeeded", bad)
		}
	}
	if _, w, err := Syscalls(os.Getpid()); err != nil || w < 0 {
		t.Errorf("Syscalls(self) = %d writes, %v", w, err)
	}
}

func TestParseMetrics(t *testing.T) {
	m := parseMetrics([]byte("# HELP x\n# TYPE x gauge\nwsbridge_connections 3\ngo_goroutines 12.5\nbad\nx{a=\"b\"} 1\n"))
	if m["wsbridge_connections"] != 3 || m["go_goroutines"] != 12.5 || m[`x{a="b"}`] != 1 || len(m) != 3 {
		t.Errorf("parseMetrics = %v", m)
	}
}
