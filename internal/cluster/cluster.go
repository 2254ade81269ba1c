//go:build unix

// Package cluster runs the topology of docs/deploy.md on one machine: a NATS server
// (embedded, JetStream on), several replicas of the example backend sharing one SQLite file
// and carrying their events over NATS, several bridges, each a separate process, whose one
// backend target names every replica, and a TCP balancer in front of the bridges, standing
// in for a load balancer. scripts/cluster runs it; the multi-process tests use it too.
package cluster

import (
	"context"
	"errors"
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
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/wsbridge/wsbridge/internal/proc"
)

// Config says what to run where. A port 0 means any free port.
type Config struct {
	BridgeBin  string // the bridge binary (go build ./cmd/bridge)
	BackendBin string // the example backend binary (go build ./examples/backend)
	Dir        string // the database and the NATS store go here

	Host         string // every listener's host; default 127.0.0.1
	NATSPort     int    // -1: any free port (NATS's convention); 0 is NATS's default, 4222
	BalancerPort int
	BridgePorts  []int // one bridge per entry
	BackendPorts []int // one replica per entry: gRPC on the port, REST on the next one (any if 0)
	BridgeArgs   []string

	// Output receives every process's output, each line prefixed with its name. Nil: discarded.
	Output io.Writer
	// Ready bounds the start: every process serving and every bridge ready. Default 60 s.
	Ready time.Duration
}

// Cluster is a running cluster.
type Cluster struct {
	NATS     *server.Server
	NATSURL  string
	DB       string
	Backends []*Proc
	Bridges  []*Proc
	Balancer *Balancer

	out *lockedWriter
}

// Proc is one child process.
type Proc struct {
	Name string
	Addr string // a backend's gRPC address, a bridge's HTTP address
	HTTP string // a backend's REST address; "" for a bridge
	bin  string
	args []string
	p    *proc.Proc
	mu   sync.Mutex
	tail []byte // its last output, for error messages
}

// Start starts NATS, the backends, then the bridges and the balancer, and returns once
// every bridge answers /readyz 200. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Ready <= 0 {
		cfg.Ready = 60 * time.Second
	}
	if len(cfg.BridgePorts) == 0 || len(cfg.BackendPorts) == 0 {
		return nil, errors.New("cluster: at least one bridge and one backend")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Ready)
	defer cancel()
	out := cfg.Output
	if out == nil {
		out = io.Discard
	}
	c := &Cluster{DB: filepath.Join(cfg.Dir, "polls.db"), out: &lockedWriter{w: out}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	c.NATS, err = server.NewServer(&server.Options{
		ServerName: "cluster-nats",
		Host:       cfg.Host, Port: cfg.NATSPort,
		JetStream: true, StoreDir: filepath.Join(cfg.Dir, "nats"),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	nlog := &natsLog{}
	c.NATS.SetLogger(nlog, false, false)
	c.NATS.Start()
	for !c.NATS.ReadyForConnections(100 * time.Millisecond) {
		if err := nlog.fatal(); err != nil {
			return c, fmt.Errorf("nats: %w", err) // a port in use, for one
		}
		if ctx.Err() != nil {
			return c, fmt.Errorf("nats: not ready on port %d within %s", cfg.NATSPort, cfg.Ready)
		}
	}
	c.NATSURL = c.NATS.ClientURL()

	for i, port := range cfg.BackendPorts {
		httpPort := 0
		if port != 0 {
			httpPort = port + 1
		}
		p := c.start(fmt.Sprintf("backend-%d", i+1), cfg.BackendBin,
			"-grpc-addr", net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
			"-http-addr", net.JoinHostPort(cfg.Host, strconv.Itoa(httpPort)),
			"-db", c.DB, "-nats-url", c.NATSURL)
		c.Backends = append(c.Backends, p)
		if err := p.start(); err != nil {
			return c, err
		}
		// One at a time: replicas opening a new database file at once can fail with
		// SQLITE_BUSY ("database is locked") while one of them creates it.
		line, err := p.waitLine(ctx, backendServing)
		if err != nil {
			return c, err
		}
		p.Addr, p.HTTP = line[1], line[2]
		if err := waitServing(ctx, p.Addr); err != nil {
			return c, fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	var targets []string
	for _, p := range c.Backends {
		targets = append(targets, p.Addr)
	}

	for i, port := range cfg.BridgePorts {
		args := append([]string{
			"-listen", net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
			"-backend", strings.Join(targets, "|"),
		}, cfg.BridgeArgs...)
		p := c.start(fmt.Sprintf("bridge-%d", i+1), cfg.BridgeBin, args...)
		c.Bridges = append(c.Bridges, p)
		if err := p.start(); err != nil {
			return c, err
		}
	}
	var addrs []string
	for _, p := range c.Bridges {
		line, err := p.waitLine(ctx, bridgeListening)
		if err != nil {
			return c, err
		}
		p.Addr = line[1]
		if err := p.waitReady(ctx); err != nil {
			return c, err
		}
		addrs = append(addrs, p.Addr)
	}
	c.Balancer, err = NewBalancer(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.BalancerPort)), addrs)
	if err != nil {
		return c, fmt.Errorf("balancer: %w", err)
	}
	return c, nil
}

// The log lines that give the addresses, in slog's text or JSON form.
var (
	backendServing  = regexp.MustCompile(`msg"?[=:]"?serving.*grpc"?[=:]"?([^\s"]+).*http"?[=:]"?([^\s"]+)`)
	bridgeListening = regexp.MustCompile(`msg"?[=:]"?"?bridge listening.*ws"?[=:]"?ws://([^\s"/]+)/ws`)
)

func (c *Cluster) start(name, bin string, args ...string) *Proc {
	cmd := exec.Command(bin, args...)
	// A process group of its own: a Ctrl-C on the terminal reaches only the cluster
	// program, which stops each child once, cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &Proc{Name: name, bin: bin, args: args}
	w := &prefixWriter{prefix: name + " | ", out: c.out, keep: p}
	cmd.Stdout, cmd.Stderr = w, w
	p.p = proc.New(name, cmd)
	return p
}

func (p *Proc) start() error {
	if err := p.p.Start(); err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// Restart starts the i-th bridge (bridge true) or backend again, once it has exited, with the
// same arguments on the same address, as a deploy's new version would, and waits until it
// serves (a bridge: /readyz 200). The balancer sends it connections again. It replaces the
// Proc in c.Bridges or c.Backends; not safe beside Stop or another Restart.
func (c *Cluster) Restart(ctx context.Context, bridge bool, i int) (*Proc, error) {
	procs := c.Backends
	if bridge {
		procs = c.Bridges
	}
	if i < 0 || i >= len(procs) {
		return nil, fmt.Errorf("cluster: no process %d to restart", i)
	}
	old := procs[i]
	select {
	case <-old.Done():
	default:
		return nil, fmt.Errorf("cluster: %s (pid %d) is still running", old.Name, old.Pid())
	}
	// Its first start may have asked for any free port: ask for the one it had.
	args := append([]string(nil), old.args...)
	for j := 0; j+1 < len(args); j++ {
		switch args[j] {
		case "-listen", "-grpc-addr":
			args[j+1] = old.Addr
		case "-http-addr":
			args[j+1] = old.HTTP
		}
	}
	p := c.start(old.Name, old.bin, args...)
	p.Addr, p.HTTP = old.Addr, old.HTTP
	procs[i] = p
	if err := p.start(); err != nil {
		return p, err
	}
	var err error
	if bridge {
		if _, err = p.waitLine(ctx, bridgeListening); err == nil {
			err = p.waitReady(ctx)
		}
	} else if _, err = p.waitLine(ctx, backendServing); err == nil {
		if err = waitServing(ctx, p.Addr); err != nil {
			err = fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return p, err
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.p.Pid() }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.p.Done() }

// Err is the exit status; it waits for the process to exit.
func (p *Proc) Err() error { return p.p.Err() }

// Signal sends sig to the process, unless it has exited.
func (p *Proc) Signal(sig os.Signal) { p.p.Signal(sig) }

// Kill kills the process at once (a crash) and waits for it.
func (p *Proc) Kill() { p.p.Kill() }

// Output is the process's last output.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.tail)
}

func (p *Proc) keep(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tail = append(p.tail, b...)
	if n := len(p.tail) - 64<<10; n > 0 {
		p.tail = p.tail[n:]
	}
}

// waitLine waits for a line of the output matching re and returns its submatches.
func (p *Proc) waitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	return poll(ctx, p, func() ([]string, bool) {
		m := re.FindStringSubmatch(p.Output())
		return m, m != nil
	}, "to say where it serves")
}

// waitReady waits until the bridge answers /readyz 200.
func (p *Proc) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 5 * time.Second}
	_, err := poll(ctx, p, func() (struct{}, bool) {
		resp, err := client.Get("http://" + p.Addr + "/readyz")
		if err != nil {
			return struct{}{}, false
		}
		resp.Body.Close()
		return struct{}{}, resp.StatusCode == http.StatusOK
	}, "to be ready (/readyz 200)")
	return err
}

// poll calls cond until it holds, the process exits or ctx ends.
func poll[T any](ctx context.Context, p *Proc, cond func() (T, bool), what string) (T, error) {
	var v, zero T
	switch err := p.p.Until(ctx, 20*time.Millisecond, func() (ok bool) { v, ok = cond(); return ok }); {
	case err == nil:
		return v, nil
	case errors.Is(err, proc.ErrExited):
		return zero, fmt.Errorf("%s exited (%v) before it was serving; it said:\n%s", p.Name, p.Err(), p.Output())
	default:
		return zero, fmt.Errorf("%s: timed out waiting for it %s; it said:\n%s", p.Name, what, p.Output())
	}
}

// waitServing waits until the gRPC health service at addr reports SERVING.
func waitServing(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// Stop stops the bridges and backends with SIGTERM (the bridges drain, the backends let their
// calls finish), waits for them, then closes the balancer and NATS. It returns the first
// unclean exit of a process that was still running.
func (c *Cluster) Stop() error {
	var procs []*Proc
	procs = append(procs, c.Bridges...)
	procs = append(procs, c.Backends...)
	running := map[*Proc]bool{}
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			running[p] = true
			p.Signal(syscall.SIGTERM)
		}
	}
	var errs []error
	for _, p := range procs {
		if err := p.Err(); err != nil && running[p] {
			errs = append(errs, fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	if c.Balancer != nil {
		c.Balancer.Close()
	}
	if c.NATS != nil {
		c.NATS.Shutdown()
		c.NATS.WaitForShutdown()
	}
	return errors.Join(errs...)
}

// prefixWriter writes each complete line with a prefix.
type prefixWriter struct {
	prefix string
	out    *lockedWriter
	keep   *Proc
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.keep.keep(b)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		w.out.write(w.prefix + string(w.buf[:i+1]))
		w.buf = w.buf[i+1:]
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s)
}

// natsLog keeps the embedded NATS server's first fatal error; the rest is dropped.
type natsLog struct {
	mu  sync.Mutex
	err error
}

func (l *natsLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf(format, v...)
	}
}

func (l *natsLog) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *natsLog) Errorf(format string, v ...any) {}
func (l *natsLog) Noticef(string, ...any)         {}
func (l *natsLog) Warnf(string, ...any)           {}
func (l *natsLog) Debugf(string, ...any)          {}
func (l *natsLog) Tracef(string, ...any)          {}
