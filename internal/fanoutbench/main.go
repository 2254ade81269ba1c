// Command fanoutbench measures subscription fan-out: it starts the example backend and the
// bridge as separate processes (and Centrifugo, when given one, for comparison), opens N
// WebSocket subscribers on one subscription, publishes events at a fixed rate and reports
// publish→delivery latency, missing and duplicated deliveries, and the CPU time of every
// process from /proc. With -idle it reports the RSS of an idle subscribed connection instead.
//
// Run it with scripts/bench-fanout, which builds the binaries; see docs/benchmarks.md.
//
//	scripts/bench-fanout -subs 10000 -events 20 -rate 10 -tokens -rounds 2
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsbridge/wsbridge/internal/proc"
)

type config struct {
	subs, events, rounds  int
	rate                  float64
	textBytes             int
	tokens, idle, asJSON  bool
	sourceAddrs, parallel int
	drain                 time.Duration
	writeDelay            time.Duration // the bridge's -write-delay
	bridgeBin, backendBin string
	centrifugoBin         string
	dir                   string
	cpuProfile            string
	servers               []string
}

func parseFlags(args []string, out io.Writer) (*config, error) {
	var c config
	var servers string
	fs := flag.NewFlagSet("bench-fanout", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.subs, "subs", 1000, "subscribed WebSocket connections, all on one subscription")
	fs.IntVar(&c.events, "events", 20, "events published in the measured window")
	fs.Float64Var(&c.rate, "rate", 10, "events published per second")
	fs.IntVar(&c.rounds, "rounds", 1, "runs per server; the servers take turns, so machine noise hits each alike")
	fs.DurationVar(&c.writeDelay, "write-delay", 0, "the bridge's -write-delay (Centrifugo's open-source build has no equivalent)")
	fs.IntVar(&c.textBytes, "text-bytes", 64, "length of the event's question_text (at most 200, the backend's limit)")
	fs.BoolVar(&c.tokens, "tokens", false, "every bridge connection carries its own HS256 JWT (user-<n>); Centrifugo's always do")
	fs.BoolVar(&c.idle, "idle", false, "measure idle memory instead: RSS per subscribed connection once all are confirmed and RSS is stable")
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per row instead of the table")
	fs.IntVar(&c.sourceAddrs, "source-addrs", 0, "client source addresses 127.0.0.1.. to spread connections over (0: one per 5,000 connections)")
	fs.IntVar(&c.parallel, "dial-parallel", 32, "connections being opened at once")
	fs.DurationVar(&c.drain, "drain", 60*time.Second, "after the last publish, how long deliveries may take before the rest count as missing")
	fs.StringVar(&c.bridgeBin, "bridge-bin", "", "bridge binary (scripts/bench-fanout sets it)")
	fs.StringVar(&c.backendBin, "backend-bin", "", "example backend binary (scripts/bench-fanout sets it)")
	fs.StringVar(&c.centrifugoBin, "centrifugo", os.Getenv("CENTRIFUGO"), "Centrifugo v6 binary to run the same load against [CENTRIFUGO]")
	fs.StringVar(&c.dir, "dir", "", "directory for databases, configuration and process logs (scripts/bench-fanout sets it)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the bridge's CPU profile of the first round's measured window here (needs the bridge built by scripts/bench-fanout -cpuprofile)")
	fs.StringVar(&servers, "servers", "bridge,centrifugo", "which servers to run: bridge, centrifugo (only with -centrifugo), or both")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: scripts/bench-fanout [flags]\n\nFan-out latency and CPU of the bridge, optionally beside Centrifugo.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.sourceAddrs == 0 {
		c.sourceAddrs = (c.subs + 4999) / 5000
	}
	for _, s := range strings.Split(servers, ",") {
		switch s = strings.TrimSpace(s); s {
		case "":
		case "bridge":
			c.servers = append(c.servers, s)
		case "centrifugo":
			if c.centrifugoBin != "" {
				c.servers = append(c.servers, s)
			}
		default:
			return nil, fmt.Errorf("-servers: unknown %q (want bridge, centrifugo)", s)
		}
	}
	switch {
	case c.subs < 1:
		return nil, fmt.Errorf("-subs must be at least 1, got %d", c.subs)
	case c.events < 1 || c.events > 250:
		return nil, fmt.Errorf("-events must be between 1 and 250, got %d", c.events)
	case c.rate <= 0:
		return nil, fmt.Errorf("-rate must be positive, got %g", c.rate)
	case c.rounds < 1:
		return nil, fmt.Errorf("-rounds must be at least 1, got %d", c.rounds)
	case c.textBytes < 40 || c.textBytes > 200:
		return nil, fmt.Errorf("-text-bytes must be between 40 and 200, got %d", c.textBytes)
	case c.sourceAddrs < 1 || c.sourceAddrs > 250:
		return nil, fmt.Errorf("-source-addrs must be between 1 and 250, got %d", c.sourceAddrs)
	case c.parallel < 1:
		return nil, fmt.Errorf("-dial-parallel must be at least 1, got %d", c.parallel)
	case c.drain <= 0:
		return nil, fmt.Errorf("-drain must be positive, got %s", c.drain)
	case len(c.servers) == 0:
		return nil, errors.New("-servers: nothing to run (centrifugo needs -centrifugo or CENTRIFUGO)")
	case slices.Contains(c.servers, "bridge") && (c.bridgeBin == "" || c.backendBin == ""):
		return nil, errors.New("-bridge-bin and -backend-bin are required (scripts/bench-fanout sets them)")
	case c.dir == "":
		return nil, errors.New("-dir is required (scripts/bench-fanout sets it)")
	}
	return &c, nil
}

func main() { proc.Main("bench-fanout", parseFlags, run) }

// row is one server's measurement (one round, or all rounds together).
type row struct {
	Kind      string   `json:"kind"` // "fanout"
	Server    string   `json:"server"`
	Round     string   `json:"round"` // "1", "2", ... or "all"
	Tokens    bool     `json:"tokens"`
	Subs      int      `json:"subs"`
	Events    int      `json:"events"`
	Rate      float64  `json:"rate"`
	TextBytes int      `json:"text_bytes"`
	P50       float64  `json:"p50_ms"`
	P90       float64  `json:"p90_ms"`
	P99       float64  `json:"p99_ms"`
	Max       float64  `json:"max_ms"`
	Delivered int64    `json:"deliveries"`
	Missing   int64    `json:"missing"`
	Dups      int64    `json:"duplicated"`
	PubErrors int      `json:"publish_errors"`
	PubMax    float64  `json:"publish_max_ms"` // the slowest publish call
	Closed    int64    `json:"connections_lost"`
	Window    float64  `json:"window_s"`
	PerSec    float64  `json:"deliveries_per_s"`
	CPU       cpuSecs  `json:"cpu_s"`
	ServerCPU float64  `json:"server_cpu_s"` // server + backend
	PerCPU    float64  `json:"deliveries_per_server_cpu_s"`
	Upstreams *float64 `json:"upstream_streams"` // the bridge's, after the subscribers joined
	FirstErr  string   `json:"first_error,omitempty"`

	lat []int32 // µs
}

type cpuSecs struct {
	Server  float64 `json:"server"`
	Backend float64 `json:"backend"`
	Load    float64 `json:"load"`
}

// idleRow is one server's idle memory measurement.
type idleRow struct {
	Kind          string  `json:"kind"` // "idle"
	Server        string  `json:"server"`
	Round         string  `json:"round"`
	Tokens        bool    `json:"tokens"`
	Conns         int     `json:"conns"`
	RSSBefore     int64   `json:"rss_before_kib"`
	RSSAfter      int64   `json:"rss_after_kib"`
	PerConn       float64 `json:"kib_per_conn"`
	Stable        bool    `json:"rss_stable"`
	BackendPerCon float64 `json:"backend_kib_per_conn"`
}

func run(ctx context.Context, c *config, out io.Writer) (bool, error) {
	limit := proc.RaiseFileLimit()
	if limit != 0 && uint64(c.subs)+200 > limit {
		return false, fmt.Errorf("-subs %d does not fit the open-file limit %d of this process (ulimit -n)", c.subs, limit)
	}
	var servers []server
	for _, name := range c.servers {
		if name == "bridge" {
			servers = append(servers, &bridgeServer{})
		} else {
			servers = append(servers, &centrifugo{bin: c.centrifugoBin})
		}
	}
	// Tokens are made before any measurement: Centrifugo always needs one, the bridge with -tokens.
	var tokens []string
	if c.tokens || slices.Contains(c.servers, "centrifugo") {
		tokens = make([]string, c.subs)
		for i := range tokens {
			tokens[i] = token(fmt.Sprintf("user-%d", i))
		}
	}
	fmt.Fprintf(os.Stderr, "bench-fanout: %d subscribers, %d events at %g/s, %d round(s), tokens %v, servers %v, bridge write delay %s, %s %d CPUs\n",
		c.subs, c.events, c.rate, c.rounds, c.tokens, c.servers, c.writeDelay, runtime.Version(), runtime.NumCPU())

	var rows []*row
	var idles []*idleRow
	for round := 1; round <= c.rounds; round++ {
		order := slices.Clone(servers)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, s := range order {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			var toks []string
			if c.tokens || s.name() == "centrifugo" {
				toks = tokens
			}
			if c.idle {
				r, err := measureIdle(ctx, c, s, round, toks)
				if err != nil {
					return false, fmt.Errorf("%s round %d: %w", s.name(), round, err)
				}
				idles = append(idles, r)
				continue
			}
			r, err := measureFanout(ctx, c, s, round, toks)
			if err != nil {
				return false, fmt.Errorf("%s round %d: %w", s.name(), round, err)
			}
			rows = append(rows, r)
		}
	}
	if c.idle {
		printIdle(out, c, idles)
		return true, nil
	}
	if c.rounds > 1 {
		for _, s := range c.servers {
			rows = append(rows, combine(s, rows))
		}
	}
	printRows(out, c, rows)
	ok := true
	for _, r := range rows {
		ok = ok && r.Missing == 0 && r.Dups == 0 && r.PubErrors == 0 && r.Closed == 0
	}
	return ok, nil
}

// openAll connects and subscribes n connections, c.parallel at a time.
func openAll(ctx context.Context, c *config, s server, toks []string, t *tally, events int) ([]*sub, error) {
	subs := make([]*sub, c.subs)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range c.parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= c.subs || failed.Load() != nil || ctx.Err() != nil {
					return
				}
				tok := ""
				if toks != nil {
					tok = toks[i]
				}
				dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				sb, err := connect(dctx, s, i, c.sourceAddrs, events, tok, t)
				cancel()
				if err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				subs[i] = sb
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil || ctx.Err() != nil {
		closeAll(subs)
		if p != nil {
			return nil, *p
		}
		return nil, ctx.Err()
	}
	fmt.Fprintf(os.Stderr, "bench-fanout: %s: %d subscribed in %s\n", s.name(), c.subs, time.Since(start).Round(time.Millisecond))
	return subs, nil
}

func closeAll(subs []*sub) {
	var wg sync.WaitGroup
	for _, s := range subs {
		if s != nil {
			wg.Go(s.close)
		}
	}
	wg.Wait()
}

// waitDeliveries waits until want first deliveries have arrived or deadline passes.
func waitDeliveries(t *tally, counter *atomic.Int64, want int64, deadline time.Time) {
	for counter.Load() < want {
		d := time.Until(deadline)
		if d <= 0 {
			return
		}
		select {
		case <-t.progress:
		case <-time.After(min(d, 100*time.Millisecond)):
		}
	}
}

func measureFanout(ctx context.Context, c *config, s server, round int, toks []string) (*row, error) {
	if err := s.start(c, round); err != nil {
		s.stop()
		return nil, err
	}
	defer s.stop()
	// Seq 0 is a warm-up event, not measured: every subscription proves it is live and
	// every connection has written once before the window opens.
	events := c.events + 1
	t := &tally{progress: make(chan struct{}, 1)}
	subs, err := openAll(ctx, c, s, toks, t, events)
	if err != nil {
		return nil, err
	}
	defer func() { closeAll(subs) }()

	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.publish(pctx, eventText(0, time.Now(), c.textBytes)); err != nil {
		return nil, fmt.Errorf("warm-up publish: %w", err)
	}
	waitDeliveries(t, &t.unique, int64(c.subs), time.Now().Add(c.drain))
	if n := t.unique.Load(); n < int64(c.subs) {
		return nil, fmt.Errorf("the warm-up event reached %d of %d subscribers within -drain %s", n, c.subs, c.drain)
	}
	r := &row{Kind: "fanout", Server: s.name(), Round: fmt.Sprint(round), Tokens: toks != nil, Subs: c.subs, Events: c.events, Rate: c.rate, TextBytes: c.textBytes}
	if up := s.upstreams(); up >= 0 {
		r.Upstreams = &up
	}
	runtime.GC() // none of the setup's garbage in the load generator's window

	srvPID, backPID := s.pids()
	cpu0 := snapshot(srvPID, backPID)
	s.cpuProfile(true)
	start := time.Now()
	interval := time.Duration(float64(time.Second) / c.rate)
	// Each event is published at its scheduled time on a goroutine of its own, so a slow
	// publish call (Centrifugo's API returns once it has queued the event for every
	// subscriber) does not lower the offered rate.
	var (
		pubMu   sync.Mutex
		pubErr  error
		pubWait sync.WaitGroup
	)
	for i := 1; i <= c.events; i++ {
		if d := time.Until(start.Add(time.Duration(i-1) * interval)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				pubWait.Wait()
				return nil, ctx.Err()
			}
		}
		pubWait.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			t0 := time.Now()
			err := s.publish(pctx, eventText(i, t0, c.textBytes))
			took := time.Since(t0)
			pubMu.Lock()
			defer pubMu.Unlock()
			r.PubMax = max(r.PubMax, float64(took)/float64(time.Millisecond))
			if err != nil {
				r.PubErrors++
				if pubErr == nil {
					pubErr = err
				}
			}
		})
	}
	pubWait.Wait()
	want := int64(c.subs) * int64(events)
	waitDeliveries(t, &t.unique, want, time.Now().Add(c.drain))
	end := time.Now()
	cpu1 := snapshot(srvPID, backPID)
	s.cpuProfile(false)

	closeAll(subs)
	for _, sb := range subs {
		r.lat = append(r.lat, sb.lat...)
	}
	subs = nil
	r.Delivered = t.unique.Load() - int64(c.subs) // less the warm-up
	r.Missing = int64(c.subs)*int64(c.events) - r.Delivered
	r.Window = end.Sub(start).Seconds()
	r.CPU = cpuSecs{Server: (cpu1.srv - cpu0.srv).Seconds(), Backend: (cpu1.backend - cpu0.backend).Seconds(), Load: (cpu1.self - cpu0.self).Seconds()}
	r.Dups = t.dups.Load()
	r.Closed = t.closed.Load()
	if pubErr != nil {
		r.FirstErr = pubErr.Error()
	} else if p := t.firstErr.Load(); p != nil {
		r.FirstErr = *p
	}
	r.finish()
	fmt.Fprintf(os.Stderr, "bench-fanout: %s round %d: p50 %.1fms p99 %.1fms missing %d, CPU-s server %.2f backend %.2f load %.2f\n",
		r.Server, round, r.P50, r.P99, r.Missing, r.CPU.Server, r.CPU.Backend, r.CPU.Load)
	return r, nil
}

// finish sorts the latencies and derives the percentiles and rates.
func (r *row) finish() {
	slices.Sort(r.lat)
	r.P50, r.P90, r.P99 = percentile(r.lat, 0.50), percentile(r.lat, 0.90), percentile(r.lat, 0.99)
	r.Max = percentile(r.lat, 1)
	if r.Window > 0 {
		r.PerSec = float64(r.Delivered) / r.Window
	}
	r.ServerCPU = r.CPU.Server + r.CPU.Backend
	if r.ServerCPU > 0 {
		r.PerCPU = float64(r.Delivered) / r.ServerCPU
	}
}

// percentile is the nearest-rank percentile of sorted µs latencies, in ms.
func percentile(sorted []int32, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return float64(sorted[min(max(i, 0), len(sorted)-1)]) / 1000
}

// combine is one server's rounds taken together.
func combine(server string, rows []*row) *row {
	var all *row
	for _, r := range rows {
		if r.Server != server || r.Round == "all" {
			continue
		}
		if all == nil {
			all = &row{Kind: r.Kind, Server: server, Round: "all", Tokens: r.Tokens, Subs: r.Subs, Events: r.Events, Rate: r.Rate, TextBytes: r.TextBytes}
		}
		all.lat = append(all.lat, r.lat...)
		all.Delivered += r.Delivered
		all.Missing += r.Missing
		all.Dups += r.Dups
		all.PubErrors += r.PubErrors
		all.PubMax = max(all.PubMax, r.PubMax)
		all.Closed += r.Closed
		all.Window += r.Window
		all.CPU.Server += r.CPU.Server
		all.CPU.Backend += r.CPU.Backend
		all.CPU.Load += r.CPU.Load
		if r.Upstreams != nil {
			all.Upstreams = r.Upstreams
		}
		if all.FirstErr == "" {
			all.FirstErr = r.FirstErr
		}
	}
	all.finish()
	return all
}

type cpuSnap struct{ srv, backend, self time.Duration }

func snapshot(srv, backend int) cpuSnap {
	var s cpuSnap
	s.srv, _ = proc.CPU(srv)
	if backend != 0 {
		s.backend, _ = proc.CPU(backend)
	}
	s.self, _ = proc.CPU(0)
	return s
}

// measureIdle opens the subscribers and reports how much the server's RSS grew per
// connection once every subscription is confirmed and the RSS has settled.
func measureIdle(ctx context.Context, c *config, s server, round int, toks []string) (*idleRow, error) {
	if err := s.start(c, round); err != nil {
		s.stop()
		return nil, err
	}
	defer s.stop()
	srvPID, backPID := s.pids()
	before, _ := stableRSS(ctx, srvPID, 10*time.Second)
	var backBefore int64
	if backPID != 0 {
		backBefore, _ = rssKiB(backPID)
	}
	t := &tally{progress: make(chan struct{}, 1)}
	subs, err := openAll(ctx, c, s, toks, t, 1)
	if err != nil {
		return nil, err
	}
	defer closeAll(subs)
	after, stable := stableRSS(ctx, srvPID, 120*time.Second)
	r := &idleRow{Kind: "idle", Server: s.name(), Round: fmt.Sprint(round), Tokens: toks != nil, Conns: c.subs,
		RSSBefore: before, RSSAfter: after, Stable: stable, PerConn: float64(after-before) / float64(c.subs)}
	if backPID != 0 {
		b, _ := rssKiB(backPID)
		r.BackendPerCon = float64(b-backBefore) / float64(c.subs)
	}
	fmt.Fprintf(os.Stderr, "bench-fanout: %s round %d idle: %.1f KiB per connection\n", r.Server, round, r.PerConn)
	return r, nil
}

// rssKiB is a process's VmRSS.
func rssKiB(pid int) (int64, error) {
	rss, _, err := proc.Status(pid)
	return rss, err
}

// stableRSS samples the RSS every second until three samples in a row are within 1% of
// one another, or timeout passes (then stable is false).
func stableRSS(ctx context.Context, pid int, timeout time.Duration) (kib int64, stable bool) {
	deadline := time.Now().Add(timeout)
	var last []int64
	for {
		v, err := rssKiB(pid)
		if err != nil {
			return 0, false
		}
		last = append(last, v)
		if len(last) > 3 {
			last = last[1:]
		}
		if len(last) == 3 && float64(slices.Max(last)-slices.Min(last)) <= 0.01*float64(slices.Max(last)) {
			return v, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return v, false
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}
