package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is one started backend or bridge process.
type proc struct {
	name, addr, log string
	cmd             *exec.Cmd
	exited          chan struct{}
	err             error // Wait's result, once exited is closed
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C on the terminal reaches only the harness, which
	// stops the children itself; and killed with the harness, so none is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends sig and waits up to timeout for the process to exit; after that it kills
// it. It returns the exit error (nil for status 0).
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) (error, bool) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return p.err, true
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return p.err, false
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitFor polls cond until it is true, the process exits or timeout passes.
func waitFor(p *proc, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before %s: %v (log %s)", p.name, what, p.err, p.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %s after %s (log %s)", p.name, what, timeout, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(ctx context.Context, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// metrics reads the bridge's /metrics gauges by name.
func metrics(addr string) (map[string]float64, error) {
	b, code, err := httpGet(context.Background(), "http://"+addr+"/metrics")
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("/metrics: status %d", code)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			m[name] = v
		}
	}
	return m, nil
}

// goroutines is the bridge's goroutine gauge, if its /metrics has one.
func goroutines(m map[string]float64) (float64, bool) {
	for _, name := range []string{"go_goroutines", "wsbridge_goroutines"} {
		if v, ok := m[name]; ok {
			return v, true
		}
	}
	return 0, false
}

// procStatus reads VmRSS (in KiB) and Threads from /proc/PID/status.
func procStatus(pid int) (rssKiB, threads int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rssKiB = n
		case "Threads":
			threads = n
		}
	}
	return rssKiB, threads, nil
}

// starvedRE matches the bridge's line for a connection it dropped because the client read
// nothing for the whole write timeout; no close frame can follow, the client sees 1006.
var starvedRE = regexp.MustCompile(`msg="connection lost: the client read nothing for the write timeout[^"]*".* remote=(\S+)`)

// connLogRE matches the bridge's log lines about one connection ending abnormally or being
// closed by the bridge (write timeouts, slow consumers, close handshakes cut short).
var connLogRE = regexp.MustCompile(`msg="((?:connection lost|closing|close)[^"]*)"`)

// logFacts is what the bridges' logs say about connections.
type logFacts struct {
	lines   map[string]int64 // connection-loss lines by message
	starved map[string]bool  // connKeys of connections dropped by the write timeout
}

// scanLog counts panics, fatal errors, race reports and timed-out drains in a process's log,
// and adds the bridge's connection-loss lines to facts; addr is the bridge's listen address.
func scanLog(path, addr string, facts *logFacts) (panics, races, drains int, first string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
			panics++
		case strings.Contains(line, "WARNING: DATA RACE"):
			races++
		case strings.Contains(line, `msg="drain timed out"`):
			drains++
			continue
		default:
			if m := connLogRE.FindStringSubmatch(line); m != nil {
				facts.lines[m[1]]++
			}
			if m := starvedRE.FindStringSubmatch(line); m != nil {
				facts.starved[connKey(addr, m[1])] = true
			}
			continue
		}
		if first == "" {
			first = filepath.Base(path) + ": " + line
		}
	}
	return panics, races, drains, first
}

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }
