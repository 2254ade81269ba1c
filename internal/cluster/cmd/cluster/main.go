//go:build unix

// Command cluster runs NATS, several example backend replicas and several bridges on this
// machine, behind one TCP balancer, and prints their addresses; SIGINT or SIGTERM stops
// everything. scripts/cluster builds the binaries and runs it. docs/deploy.md describes the
// topology.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsbridge/wsbridge/internal/cluster"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                    cluster.Config
		bridgePorts, backPorts string
		jsonOut                bool
	)
	fs.StringVar(&cfg.BridgeBin, "bridge-bin", "bin/bridge", "the bridge binary")
	fs.StringVar(&cfg.BackendBin, "backend-bin", "bin/backend", "the example backend binary")
	fs.StringVar(&cfg.Dir, "dir", "data/cluster", "directory of the shared SQLite file and the NATS JetStream store; created")
	fs.StringVar(&cfg.Host, "host", "127.0.0.1", "host of every listener")
	fs.IntVar(&cfg.BalancerPort, "port", 8080, "port of the balancer in front of the bridges (0: any)")
	fs.StringVar(&bridgePorts, "bridge-ports", "8081,8082", "one bridge per port (0: any)")
	fs.StringVar(&backPorts, "backend-ports", "9090,9092", "one backend replica per port, REST on the port after it (0: any)")
	fs.IntVar(&cfg.NATSPort, "nats-port", 4222, "NATS client port (-1: any)")
	fs.BoolVar(&jsonOut, "json", false, "once everything is ready, write the addresses and process ids as one JSON line on stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.BridgePorts, err = ports(bridgePorts); err != nil {
		return fmt.Errorf("invalid -bridge-ports %q: %v", bridgePorts, err)
	}
	if cfg.BackendPorts, err = ports(backPorts); err != nil {
		return fmt.Errorf("invalid -backend-ports %q: %v", backPorts, err)
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return fmt.Errorf("invalid -dir: %v", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("invalid -dir: %v", err)
	}
	cfg.Output = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP restarts every child that has exited, on its address: the second half of a
	// rolling deploy (SIGTERM a bridge, SIGHUP, SIGTERM the next one). Caught from the start,
	// so that one sent as soon as the -json line is out is not fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if jsonOut {
		b, _ := json.Marshal(describe(c))
		fmt.Fprintf(stdout, "%s\n", b)
	}
	fmt.Fprint(stderr, summary(c))

	// A child that dies is reported; the others keep serving, which is the point.
	watch := func(p *cluster.Proc) {
		go func() {
			select {
			case <-p.Done():
				if ctx.Err() == nil {
					fmt.Fprintf(stderr, "cluster: %s (pid %d) exited: %v; the others keep running (SIGHUP restarts it)\n", p.Name, p.Pid(), p.Err())
				}
			case <-ctx.Done():
			}
		}()
	}
	for _, p := range append(append([]*cluster.Proc{}, c.Bridges...), c.Backends...) {
		watch(p)
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			restart(ctx, c, watch, stderr)
			if jsonOut {
				b, _ := json.Marshal(describe(c))
				fmt.Fprintf(stdout, "%s\n", b)
			}
		}
	}
	stop() // a second Ctrl-C kills this program (the children get their SIGTERM first)
	fmt.Fprintln(stderr, "cluster: stopping")
	if err := c.Stop(); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "cluster: stopped")
	return nil
}

// restart restarts the children that have exited, bridges last, so that they find their
// backends serving.
func restart(ctx context.Context, c *cluster.Cluster, watch func(*cluster.Proc), stderr io.Writer) {
	for _, bridge := range []bool{false, true} {
		procs := c.Backends
		if bridge {
			procs = c.Bridges
		}
		for i, p := range procs {
			select {
			case <-p.Done():
			default:
				continue
			}
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			np, err := c.Restart(ctx, bridge, i)
			cancel()
			if err != nil {
				fmt.Fprintf(stderr, "cluster: restarting %s: %v\n", p.Name, err)
			} else {
				fmt.Fprintf(stderr, "cluster: %s restarted (pid %d)\n", np.Name, np.Pid())
			}
			if np != nil {
				watch(np)
			}
		}
	}
}

func ports(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 0 || p > 65534 {
			return nil, fmt.Errorf("%q is not a port", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// proc is a process as -json describes it.
type proc struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	Addr string `json:"addr"`
	URL  string `json:"url"`
}

type description struct {
	URL      string `json:"url"` // the WebSocket URL through the balancer
	Pid      int    `json:"pid"` // this program's: kill -HUP restarts the children that exited
	NATS     string `json:"nats"`
	DB       string `json:"db"`
	Bridges  []proc `json:"bridges"`
	Backends []proc `json:"backends"`
}

func describe(c *cluster.Cluster) description {
	d := description{URL: c.Balancer.URL(), Pid: os.Getpid(), NATS: c.NATSURL, DB: c.DB}
	for _, p := range c.Bridges {
		d.Bridges = append(d.Bridges, proc{p.Name, p.Pid(), p.Addr, "ws://" + p.Addr + "/ws"})
	}
	for _, p := range c.Backends {
		d.Backends = append(d.Backends, proc{p.Name, p.Pid(), p.Addr, "http://" + p.HTTP + "/v1/questions"})
	}
	return d
}

func summary(c *cluster.Cluster) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n  WebSocket   %s   (a TCP balancer over the bridges)\n", c.Balancer.URL())
	for _, p := range c.Bridges {
		fmt.Fprintf(&b, "  %-10s  ws://%s/ws   /readyz /healthz /metrics   pid %d\n", p.Name, p.Addr, p.Pid())
	}
	for _, p := range c.Backends {
		fmt.Fprintf(&b, "  %-10s  gRPC %s   REST http://%s/v1/questions   pid %d\n", p.Name, p.Addr, p.HTTP, p.Pid())
	}
	fmt.Fprintf(&b, "  NATS        %s   (JetStream on)\n  Database    %s\n\n", c.NATSURL, c.DB)
	b.WriteString("  Kill a bridge or a backend (kill -9 PID): the others keep serving.\n  kill -HUP the cluster program: it restarts those that have exited.\n  Ctrl-C stops everything.\n\n")
	return b.String()
}
