// Command benchcmp is a side-by-side benchmark of the example backend reached four ways:
// directly over gRPC; through its grpc-gateway REST API (which the backend serves by calling
// its services in-process); through grpc-gateway run as a separate proxy in front of the gRPC
// port (the position the bridge is in); and through the bridge's WebSocket.
// The backend, the grpc-gateway proxy and the bridge run as separate processes on loopback
// (this program started again in another role, roles.go), so that each one's CPU time can
// be read from /proc. For every transport and call (retrieve and create of a question) it
// runs a fixed concurrency for a fixed time and prints requests per second, p50/p99
// latency and the CPU time per request of the load generator, the proxy (bridge or
// gateway) and the backend, plus the bridge's ratios.
//
// Run it with scripts/bench; see docs/benchmarks.md for what the numbers mean.
//
//	scripts/bench -duration 5s -concurrency 32 -ws-conns 4
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsbridge/wsbridge/internal/gcfloor"
	"github.com/wsbridge/wsbridge/internal/proc"
)

// Design targets of the project for the bridge's throughput.
const (
	targetVsREST = 2.0 // bridge requests/s ≥ 2× grpc-gateway's
	targetVsGRPC = 0.5 // bridge requests/s ≥ 0.5× direct gRPC's
	// The bridge's own CPU per request ≤ 0.5× grpc-gateway's as a proxy (issue 11).
	targetProxyCPU = 0.5
)

type config struct {
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	concurrency int
	gcFloorMiB  int
	wsConns     int
	seed        int
	transports  []string
	calls       []string
	cpuProfile  string
	asJSON      bool
}

var (
	allTransports = []string{"grpc", "rest", "rest-proxy", "ws"}
	allCalls      = []string{"retrieve", "create"}
)

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	var c config
	var transports, calls string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "measured time of each transport × call")
	fs.IntVar(&c.rounds, "rounds", 1, "split -duration into this many slices, run in turn across the transports (evens out drift on a busy machine)")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before each transport × call")
	fs.IntVar(&c.concurrency, "concurrency", 32, "requests in flight at once, for every transport")
	fs.IntVar(&c.gcFloorMiB, "gc-floor-mib", gcfloor.Default>>20, "the bridge's heap floor, as the bridge command's -gc-floor-mib (0: GOGC alone)")
	fs.IntVar(&c.wsConns, "ws-conns", 4, "WebSocket connections the in-flight requests are spread over (pipelined)")
	fs.IntVar(&c.seed, "seed", 100, "questions created before the run; retrieve cycles through them")
	fs.StringVar(&transports, "transports", strings.Join(allTransports, ","), "comma-separated subset of "+strings.Join(allTransports, ","))
	fs.StringVar(&calls, "calls", strings.Join(allCalls, ","), "comma-separated subset of retrieve,create")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the bridge process, over its whole run, to this file (use with -transports ws)")
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per row instead of the table")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: scripts/bench [flags]\n\nCompares the example backend over gRPC, grpc-gateway REST and the bridge's WebSocket.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.transports, err = subset("-transports", transports, allTransports); err != nil {
		return nil, err
	}
	if c.calls, err = subset("-calls", calls, allCalls); err != nil {
		return nil, err
	}
	switch {
	case c.duration <= 0:
		return nil, fmt.Errorf("-duration must be positive, got %s", c.duration)
	case c.rounds < 1 || c.duration/time.Duration(c.rounds) < 100*time.Millisecond:
		return nil, fmt.Errorf("-rounds must be at least 1, and the slices at least 100ms, got %d", c.rounds)
	case c.warmup < 0:
		return nil, fmt.Errorf("-warmup must not be negative, got %s", c.warmup)
	case c.gcFloorMiB < 0:
		return nil, fmt.Errorf("-gc-floor-mib must not be negative, got %d", c.gcFloorMiB)
	case c.concurrency < 1:
		return nil, fmt.Errorf("-concurrency must be at least 1, got %d", c.concurrency)
	case c.wsConns < 1 || c.wsConns > c.concurrency:
		return nil, fmt.Errorf("-ws-conns must be between 1 and -concurrency (%d), got %d", c.concurrency, c.wsConns)
	case c.seed < 1:
		return nil, fmt.Errorf("-seed must be at least 1, got %d", c.seed)
	}
	return &c, nil
}

// subset parses a comma-separated list whose items must be in all, keeping all's order.
func subset(name, list string, all []string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(all, s) {
			return nil, fmt.Errorf("%s: unknown %q (want some of %s)", name, s, strings.Join(all, ","))
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", name)
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(all, a) - slices.Index(all, b) })
	return slices.Compact(out), nil
}

func run(args []string, out io.Writer) error {
	c, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	env, err := startEnv(c)
	if err != nil {
		return err
	}
	defer env.close()

	clients := map[string]client{}
	for _, t := range c.transports {
		var cl client
		switch t {
		case "grpc":
			cl, err = newGRPCClient(env.grpcAddr)
		case "rest":
			cl = newRESTClient(env.restURL, c.concurrency)
		case "rest-proxy":
			cl = newRESTClient(env.proxyURL, c.concurrency)
		case "ws":
			cl, err = newWSClient(env.wsURL, c.wsConns)
		}
		if err != nil {
			return fmt.Errorf("%s client: %w", t, err)
		}
		defer cl.close()
		clients[t] = cl
	}

	if !c.asJSON {
		printHeader(out, c)
	}

	// Every transport × call runs in c.rounds slices taken in turn, so that a drift (the
	// database growing, other load on the machine) is shared by all rather than hitting
	// whichever runs last.
	type cell struct {
		transport, call string
		op              opFunc
		proxy           int // pid of the process between client and backend, 0 if none
		sample
	}
	var cells []*cell
	for _, call := range c.calls {
		for _, t := range c.transports {
			cells = append(cells, &cell{transport: t, call: call, op: clients[t].op(call, env.pks), proxy: env.proxyPID(t)})
		}
	}
	slice := c.duration / time.Duration(c.rounds)
	for round := 0; round < c.rounds; round++ {
		for _, cl := range cells {
			if round == 0 && c.warmup > 0 {
				phase(c, cl.op, c.warmup, env, cl.proxy)
			}
			s := phase(c, cl.op, slice, env, cl.proxy)
			cl.add(s)
			fmt.Fprintf(os.Stderr, "bench: round %d/%d %-10s %-8s %8.0f req/s\n", round+1, c.rounds, cl.transport, cl.call, float64(len(s.lat))/s.elapsed.Seconds())
		}
	}
	var results []result
	for _, cl := range cells {
		r := cl.result()
		r.transport, r.call, r.hasProxy = cl.transport, cl.call, cl.proxy != 0
		results = append(results, r)
	}
	if c.asJSON {
		printJSON(out, results)
	} else {
		printTable(out, results)
		printRatios(out, c, results)
	}
	for _, r := range results {
		if r.ok == 0 {
			return fmt.Errorf("%s %s: no request succeeded (%d errors, first: %v)", r.transport, r.call, r.errors, r.firstErr)
		}
	}
	return nil
}

// env is the example backend, the bridge and the grpc-gateway proxy, each a process.
type env struct {
	dir                      string
	backend, bridge, gateway *proc.Proc
	grpcAddr                 string
	restURL                  string // the backend's own REST API, http://host:port
	proxyURL                 string // the grpc-gateway proxy, http://host:port
	wsURL                    string // ws://host:port/ws
	pks                      []int64
}

// proxyPID is the process between the client and the backend for transport t: the bridge
// or the gateway proxy; 0 for direct gRPC and for the backend's own REST (in-process).
func (e *env) proxyPID(t string) int {
	switch t {
	case "ws":
		return e.bridge.Pid()
	case "rest-proxy":
		return e.gateway.Pid()
	}
	return 0
}

func startEnv(c *config) (_ *env, err error) {
	e := &env{}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "wsbridge-bench-"); err != nil {
		return nil, err
	}
	var httpAddr, bridgeAddr, gwAddr string
	for _, a := range []*string{&e.grpcAddr, &httpAddr, &bridgeAddr, &gwAddr} {
		if *a, err = proc.FreeAddr(); err != nil {
			return nil, err
		}
	}
	e.restURL, e.proxyURL, e.wsURL = "http://"+httpAddr, "http://"+gwAddr, "ws://"+bridgeAddr+"/ws"
	if e.backend, err = startRole(e.dir, "backend", nil, "-listen", e.grpcAddr, "-http", httpAddr, "-db", filepath.Join(e.dir, "polls.db")); err != nil {
		return nil, err
	}
	if err := waitFor(e.backend, "gRPC and REST ports open", func() bool { return proc.PortOpen(e.grpcAddr) && proc.PortOpen(httpAddr) }); err != nil {
		return nil, err
	}
	var benv []string
	if c.cpuProfile != "" {
		abs, err := filepath.Abs(c.cpuProfile)
		if err != nil {
			return nil, err
		}
		benv = []string{profileEnv + "=" + abs}
	}
	// Every request of a connection may be in flight at once.
	if e.bridge, err = startRole(e.dir, "bridge", benv, "-listen", bridgeAddr, "-backend", e.grpcAddr, "-max-in-flight", strconv.Itoa(max(64, c.concurrency)), "-gc-floor-mib", strconv.Itoa(c.gcFloorMiB)); err != nil {
		return nil, err
	}
	if e.gateway, err = startRole(e.dir, "gwproxy", nil, "-listen", gwAddr, "-backend", e.grpcAddr); err != nil {
		return nil, err
	}
	if err := waitFor(e.bridge, "200 from /readyz", func() bool { return proc.HTTPOK("http://" + bridgeAddr + "/readyz") }); err != nil {
		return nil, err
	}
	if err := waitFor(e.gateway, "port open", func() bool { return proc.PortOpen(gwAddr) }); err != nil {
		return nil, err
	}

	// The questions retrieve reads, made over gRPC.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := newGRPCClient(e.grpcAddr)
	if err != nil {
		return nil, err
	}
	defer g.close()
	for i := 0; i < c.seed; i++ {
		q, err := g.create(ctx, fmt.Sprintf("Seed question %d?", i))
		if err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		e.pks = append(e.pks, q)
	}
	return e, nil
}

// close stops the parts, the bridge first (its CPU profile is written as it exits).
func (e *env) close() {
	stopRole(e.bridge)
	stopRole(e.gateway)
	stopRole(e.backend)
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// client is one transport's way of making the calls.
type client interface {
	// op returns the function one worker calls in a loop for call ("retrieve" or
	// "create"); worker numbers the caller, i counts its calls.
	op(call string, pks []int64) opFunc
	close()
}

type opFunc func(ctx context.Context, worker, i int) error

// result is one transport × call.
type result struct {
	transport, call string
	ok, errors      int
	firstErr        error
	rps             float64
	p50, p99        time.Duration
	hasProxy        bool
	// CPU time per successful request of each process: the load generator (this
	// process), the proxy (bridge or gateway; none for gRPC and the backend's own REST)
	// and the backend.
	loadCPU, proxyCPU, backendCPU time.Duration
	// The proxy's read and write system calls per successful request (/proc/PID/io).
	proxyReads, proxyWrites float64
}

// sample is what one phase measured.
type sample struct {
	lat      []time.Duration // of the calls that succeeded
	errors   int
	firstErr error
	elapsed  time.Duration
	cpu      cpuSample
}

// cpuSample is the CPU time of the processes over a phase, and the proxy's read and write
// system calls.
type cpuSample struct {
	load, proxy, backend    time.Duration
	proxyReads, proxyWrites int64
}

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.load - b.load, a.proxy - b.proxy, a.backend - b.backend, a.proxyReads - b.proxyReads, a.proxyWrites - b.proxyWrites}
}

func readCPU(e *env, proxy int) cpuSample {
	s := cpuSample{load: cpuOf(0), backend: cpuOf(e.backend.Pid())}
	if proxy != 0 {
		s.proxy = cpuOf(proxy)
		s.proxyReads, s.proxyWrites, _ = proc.Syscalls(proxy)
	}
	return s
}

func (s *sample) add(o sample) {
	s.lat = append(s.lat, o.lat...)
	s.errors += o.errors
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.elapsed += o.elapsed
	s.cpu.load += o.cpu.load
	s.cpu.proxy += o.cpu.proxy
	s.cpu.backend += o.cpu.backend
	s.cpu.proxyReads += o.cpu.proxyReads
	s.cpu.proxyWrites += o.cpu.proxyWrites
}

func (s *sample) result() result {
	r := result{ok: len(s.lat), errors: s.errors, firstErr: s.firstErr}
	if s.elapsed > 0 {
		r.rps = float64(r.ok) / s.elapsed.Seconds()
	}
	if r.ok > 0 {
		n := time.Duration(r.ok)
		r.loadCPU, r.proxyCPU, r.backendCPU = s.cpu.load/n, s.cpu.proxy/n, s.cpu.backend/n
		r.proxyReads, r.proxyWrites = float64(s.cpu.proxyReads)/float64(r.ok), float64(s.cpu.proxyWrites)/float64(r.ok)
	}
	slices.Sort(s.lat)
	r.p50, r.p99 = percentile(s.lat, 0.50), percentile(s.lat, 0.99)
	return r
}

// phase runs op with c.concurrency workers until d has passed and every worker has finished
// its last call. Calls still unanswered 30s after the end are abandoned as errors.
func phase(c *config, op opFunc, d time.Duration, e *env, proxy int) sample {
	runtime.GC() // leave no garbage of the previous phase to this one
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	workers := make([]sample, c.concurrency)
	cpu0 := readCPU(e, proxy)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wk := &workers[w]
		wk.lat = make([]time.Duration, 0, 1024)
		wg.Go(func() {
			for i := 0; ; i++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				if err := op(ctx, w, i); err != nil {
					wk.errors++
					if wk.firstErr == nil {
						wk.firstErr = err
					}
					if ctx.Err() != nil {
						return
					}
					continue
				}
				wk.lat = append(wk.lat, time.Since(t0))
			}
		})
	}
	wg.Wait()
	all := sample{elapsed: time.Since(start), cpu: readCPU(e, proxy).sub(cpu0)}
	for _, wk := range workers {
		wk.elapsed = 0
		all.add(wk)
	}
	return all
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

var transportNames = map[string]string{
	"grpc":       "gRPC",
	"rest":       "REST (backend's grpc-gateway)",
	"rest-proxy": "REST (grpc-gateway proxy)",
	"ws":         "WebSocket (bridge)",
}

func printHeader(out io.Writer, c *config) {
	rounds := ""
	if c.rounds > 1 {
		rounds = fmt.Sprintf(" in %d rounds", c.rounds)
	}
	fmt.Fprintf(out, "wsbridge benchmark: %s per row%s after %s warm-up; %d requests in flight (WebSocket: over %d connections); %s %s/%s, GOMAXPROCS %d\n\n",
		c.duration, rounds, c.warmup, c.concurrency, c.wsConns, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
}

func printTable(out io.Writer, results []result) {
	rows := [][]string{{"transport", "call", "requests/s", "p50", "p99", "errors", "proxy CPU/req", "proxy syscalls/req", "backend CPU/req", "load CPU/req"}}
	for _, r := range results {
		proxy, sys := "-", "-"
		if r.hasProxy {
			proxy = fmtDur(r.proxyCPU)
			sys = fmt.Sprintf("%.2fr+%.2fw", r.proxyReads, r.proxyWrites)
		}
		rows = append(rows, []string{transportNames[r.transport], r.call, fmt.Sprintf("%.0f", r.rps), fmtDur(r.p50), fmtDur(r.p99), fmt.Sprint(r.errors),
			proxy, sys, fmtDur(r.backendCPU), fmtDur(r.loadCPU)})
	}
	printColumns(out, rows, 2) // text columns left, numbers right
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "first error of %s %s: %v\n", transportNames[r.transport], r.call, r.firstErr)
		}
	}
}

// printColumns prints rows as columns two spaces apart, the first left columns aligned left
// and the others right.
func printColumns(out io.Writer, rows [][]string, left int) {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			if i < left {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
}

func printRatios(out io.Writer, c *config, results []result) {
	find := func(t, call string) *result {
		for i := range results {
			if results[i].transport == t && results[i].call == call {
				return &results[i]
			}
		}
		return nil
	}
	var rows [][]string
	for _, call := range c.calls {
		ws := find("ws", call)
		if ws == nil {
			continue
		}
		for _, cmp := range []struct {
			transport, label string
			target           float64
		}{
			{"rest", "bridge/REST", targetVsREST},
			{"rest-proxy", "bridge/REST proxy", targetVsREST},
			{"grpc", "bridge/gRPC", targetVsGRPC},
		} {
			base := find(cmp.transport, call)
			if base == nil || base.rps == 0 {
				continue
			}
			ratio := ws.rps / base.rps
			verdict := "meets"
			if ratio < cmp.target {
				verdict = "BELOW"
			}
			rows = append(rows, []string{"  " + cmp.label, call, fmt.Sprintf("%.2f×", ratio), fmt.Sprintf("target ≥ %.1f×: %s", cmp.target, verdict)})
		}
	}
	if len(rows) > 0 {
		fmt.Fprintln(out, "\nrequests/s ratios:")
		printColumns(out, rows, 2)
	}
	// The proxy's own CPU per request, read from /proc: the bridge's over grpc-gateway's.
	rows = nil
	for _, call := range c.calls {
		ws, gw := find("ws", call), find("rest-proxy", call)
		if ws == nil || gw == nil || gw.proxyCPU == 0 {
			continue
		}
		ratio := float64(ws.proxyCPU) / float64(gw.proxyCPU)
		verdict := "meets"
		if ratio > targetProxyCPU {
			verdict = "ABOVE"
		}
		rows = append(rows, []string{"  bridge/grpc-gateway proxy", call, fmt.Sprintf("%.2f×", ratio), fmt.Sprintf("target ≤ %.1f×: %s", targetProxyCPU, verdict)})
	}
	if len(rows) > 0 {
		fmt.Fprintln(out, "\nproxy CPU per request ratios:")
		printColumns(out, rows, 2)
	}
}

// jsonRow is one row of -json.
type jsonRow struct {
	Transport string   `json:"transport"`
	Call      string   `json:"call"`
	RPS       float64  `json:"rps"`
	P50       float64  `json:"p50_ms"`
	P99       float64  `json:"p99_ms"`
	Errors    int      `json:"errors"`
	ProxyCPU  *float64 `json:"proxy_cpu_us"` // null without a proxy process
	// The proxy's read and write system calls per request; null without a proxy process.
	ProxyReads  *float64 `json:"proxy_reads_per_req"`
	ProxyWrites *float64 `json:"proxy_writes_per_req"`
	BackendCPU  float64  `json:"backend_cpu_us"`
	LoadCPU     float64  `json:"load_cpu_us"`
}

func printJSON(out io.Writer, results []result) {
	enc := json.NewEncoder(out)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for _, r := range results {
		j := jsonRow{Transport: r.transport, Call: r.call, RPS: r.rps, P50: ms(r.p50), P99: ms(r.p99), Errors: r.errors,
			BackendCPU: us(r.backendCPU), LoadCPU: us(r.loadCPU)}
		if r.hasProxy {
			v, rd, wr := us(r.proxyCPU), r.proxyReads, r.proxyWrites
			j.ProxyCPU, j.ProxyReads, j.ProxyWrites = &v, &rd, &wr
		}
		_ = enc.Encode(j)
	}
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}
