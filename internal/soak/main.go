// Command soak is the soak and chaos harness: it starts the example backend and the bridge
// as separate processes on loopback, opens many WebSocket connections that send a mix of
// requests and keep subscriptions, kills the backend and restarts the bridge while they
// run, and checks that every request read by the bridge got exactly one reply, that no
// subscribed change was lost or duplicated, and that nothing panicked or raced.
//
// Run it with scripts/soak, which builds the binaries; see docs/reliability.md.
//
//	scripts/soak -conns 2000 -duration 5m -faults backend,bridge,both
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wsbridge/wsbridge/internal/proc"
)

type config struct {
	conns, subs, inflight int
	rate                  float64
	duration, interval    time.Duration
	settle, drain         time.Duration
	faults                []string
	bridgeBin, backendBin string
	dir                   string
	sourceAddrs           int
	seed                  uint64
	bridgeLogLevel        string
}

var allFaults = []string{"backend", "bridge", "both"}

func parseFlags(args []string, out io.Writer) (*config, error) {
	var c config
	var faults string
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.conns, "conns", 2000, "WebSocket connections")
	fs.IntVar(&c.subs, "subs", 2, "subscriptions per connection, each on a question the connection patches")
	fs.IntVar(&c.inflight, "inflight", 4, "requests a connection may have in flight")
	fs.Float64Var(&c.rate, "rate", 0.5, "requests per second per connection")
	fs.DurationVar(&c.duration, "duration", 5*time.Minute, "how long the load runs")
	fs.StringVar(&faults, "faults", "backend,bridge,both", "faults injected in turn: some of backend (SIGKILL and restart), bridge (SIGTERM, a new one takes over), both; or none")
	fs.DurationVar(&c.interval, "fault-interval", 20*time.Second, "time between faults")
	fs.DurationVar(&c.settle, "settle", 0, "after the load, how long connections get to reconnect, resubscribe and pass the final check (0: 60s + 20ms per connection)")
	fs.DurationVar(&c.drain, "drain-timeout", 20*time.Second, "the bridge's -drain-timeout; longer than its -call-timeout (10s), so that a drain never cuts a call short")
	fs.StringVar(&c.bridgeBin, "bridge-bin", "", "bridge binary (required)")
	fs.StringVar(&c.backendBin, "backend-bin", "", "example backend binary (required)")
	fs.StringVar(&c.dir, "dir", "", "directory for the database and the process logs (required)")
	fs.IntVar(&c.sourceAddrs, "source-addrs", 0, "client source addresses 127.0.0.2.. to spread connections over (0: one per 2,000 connections)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the request mix")
	fs.StringVar(&c.bridgeLogLevel, "bridge-log-level", "info", "the bridge's -log-level; info logs each connection it closes or loses, and why")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.settle == 0 {
		c.settle = 60*time.Second + time.Duration(c.conns)*20*time.Millisecond
	}
	if c.sourceAddrs == 0 {
		c.sourceAddrs = (c.conns + 1999) / 2000
	}
	for _, f := range strings.Split(faults, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "" || f == "none":
		case slices.Contains(allFaults, f):
			c.faults = append(c.faults, f)
		default:
			return nil, fmt.Errorf("-faults: unknown %q (want some of %s, or none)", f, strings.Join(allFaults, ","))
		}
	}
	switch {
	case c.conns < 1:
		return nil, fmt.Errorf("-conns must be at least 1, got %d", c.conns)
	case c.subs < 1:
		return nil, fmt.Errorf("-subs must be at least 1, got %d", c.subs)
	case c.inflight < 1:
		return nil, fmt.Errorf("-inflight must be at least 1, got %d", c.inflight)
	case c.rate <= 0:
		return nil, fmt.Errorf("-rate must be positive, got %g", c.rate)
	case c.duration <= 0:
		return nil, fmt.Errorf("-duration must be positive, got %s", c.duration)
	case c.interval <= 0:
		return nil, fmt.Errorf("-fault-interval must be positive, got %s", c.interval)
	case c.settle <= 0:
		return nil, fmt.Errorf("-settle must be positive, got %s", c.settle)
	case c.sourceAddrs < 1 || c.sourceAddrs > 250:
		return nil, fmt.Errorf("-source-addrs must be between 1 and 250, got %d", c.sourceAddrs)
	case c.bridgeBin == "" || c.backendBin == "" || c.dir == "":
		return nil, errors.New("-bridge-bin, -backend-bin and -dir are required (scripts/soak sets them)")
	}
	return &c, nil
}

func main() {
	proc.Main("soak", parseFlags, func(ctx context.Context, cfg *config, out io.Writer) (bool, error) {
		proc.RaiseFileLimit()
		h := &harness{cfg: cfg, calm: make(chan struct{}), writeSlots: make(chan struct{}, 32)}
		h.events.st = &h.stats
		return h.run(ctx, out)
	})
}

type harness struct {
	cfg    *config
	stats  stats
	events book
	addr   atomic.Pointer[string] // the bridge clients connect to
	calm   chan struct{}          // closed when the last fault is over
	// writeSlots bounds the setup's and the final check's writes in flight.
	writeSlots chan struct{}

	mu       sync.Mutex
	backend  *proc.Proc
	bridge   *proc.Proc
	bridges  int
	backends int
	logs     []string
	logAddr  map[string]string // bridge log → the bridge's listen address
	faults   map[string]int
	exits    []string // bridges that did not exit 0 after SIGTERM
	sample   sample
	panics   int
	races    int
	choices  []string
}

// sample is the current bridge's resource use: at its start, the peak, and at the end.
type sample struct {
	startRSS, peakRSS, endRSS             int64 // KiB
	startThreads, peakThreads, endThreads int64
	startG, peakG, endG                   float64
	hasG                                  bool
	peakConns, peakSubs, peakUp           float64
	endConns, endSubs, endUp              float64
}

func (h *harness) addChoice(pk string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.choices = append(h.choices, pk)
}

// choice picks one of the choices created so far, or "" if there is none yet.
func (h *harness) choice(n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.choices) == 0 {
		return ""
	}
	return h.choices[n%len(h.choices)]
}

func (h *harness) bridgeAddr() string {
	if p := h.addr.Load(); p != nil {
		return *p
	}
	return ""
}

func (h *harness) run(ctx context.Context, out io.Writer) (bool, error) {
	c := h.cfg
	backendAddr, err := proc.FreeAddr()
	if err != nil {
		return false, err
	}
	if err := h.startBackend(backendAddr); err != nil {
		return false, err
	}
	defer func() {
		h.mu.Lock()
		b, br := h.backend, h.bridge
		h.mu.Unlock()
		if br != nil {
			br.Stop(syscall.SIGKILL, 5*time.Second)
		}
		if b != nil {
			b.Stop(syscall.SIGKILL, 5*time.Second)
		}
	}()
	if err := h.startBridge(backendAddr); err != nil {
		return false, err
	}
	fmt.Fprintf(os.Stderr, "soak: %d connections, %d subscriptions each, %g req/s each, %s, faults %v every %s\n",
		c.conns, c.subs, c.rate, c.duration, c.faults, c.interval)

	load, stopLoad := context.WithTimeout(ctx, c.duration)
	defer stopLoad()
	// The settle time starts when the load ends.
	settle, stopSettle := context.WithCancel(ctx)
	defer stopSettle()
	go func() {
		<-load.Done()
		select {
		case <-time.After(c.settle):
		case <-settle.Done():
		}
		stopSettle()
	}()

	// Faults and sampling run while the load does.
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); defer close(h.calm); h.injectFaults(load, backendAddr) }()
	sampleStop := make(chan struct{})
	go func() { defer bg.Done(); h.sampleLoop(sampleStop) }()

	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < c.conns; i++ {
		cl := newClient(h, i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.run(load, settle)
		}()
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // open the connections over a moment, not in one burst
		}
	}
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "soak: %s sent %d, events %d, connects %d, violations %d\n",
				time.Since(start).Truncate(time.Second), h.stats.sent.Load(), h.stats.events.Load(), h.stats.connects.Load(), h.stats.violations.Load())
		}
	}
	stopSettle()
	close(sampleStop)
	bg.Wait()
	elapsed := time.Since(start)

	// Every client has closed: the bridge must have released everything it held.
	h.mu.Lock()
	br := h.bridge
	h.mu.Unlock()
	released := br.WaitFor(30*time.Second, "release of every connection, subscription and upstream stream", func() bool {
		m, err := proc.Metrics(*h.addr.Load())
		if err != nil {
			return false
		}
		h.recordEnd(br, m)
		return m["wsbridge_connections"] == 0 && m["wsbridge_subscriptions"] == 0 && m["wsbridge_upstream_streams"] == 0
	})
	if released != nil {
		h.stats.violation("%v", released)
	}
	// Idle call workers outlive the load by up to their idle time (10s): wait for the count
	// to come back down before calling it a leak.
	if h.sample.hasG {
		settled := br.WaitFor(60*time.Second, "goroutines back near the start count", func() bool {
			m, err := proc.Metrics(*h.addr.Load())
			if err != nil {
				return false
			}
			h.recordEnd(br, m)
			g, _ := goroutines(m)
			return g <= h.sample.startG+5
		})
		if settled != nil {
			h.stats.violation("bridge goroutines grew from %.0f at start to %.0f after the load", h.sample.startG, h.sample.endG)
		}
	}
	h.stopBridge(br)
	h.mu.Lock()
	h.bridge = nil
	b := h.backend
	h.backend = nil
	h.mu.Unlock()
	b.Stop(syscall.SIGTERM, 15*time.Second)
	if err := b.Err(); err != nil {
		h.stats.violation("backend exited with %v after SIGTERM", err)
	}
	return h.report(out, elapsed), nil
}

func (h *harness) startBackend(addr string) error {
	h.mu.Lock()
	h.backends++
	name := fmt.Sprintf("backend-%d", h.backends)
	h.mu.Unlock()
	p, err := proc.StartLogged(h.cfg.dir, name, nil, h.cfg.backendBin, "-grpc-addr", addr, "-http-addr", "", "-db", h.cfg.dir+"/soak.db")
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.backend = p
	h.logs = append(h.logs, p.Log)
	h.mu.Unlock()
	return p.WaitFor(30*time.Second, "gRPC port open", func() bool { return proc.PortOpen(addr) })
}

func (h *harness) startBridge(backendAddr string) error {
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.bridges++
	name := fmt.Sprintf("bridge-%d", h.bridges)
	h.mu.Unlock()
	maxConns := h.cfg.conns + h.cfg.conns/10 + 10
	p, err := proc.StartLogged(h.cfg.dir, name, nil, h.cfg.bridgeBin, "-listen", addr, "-backend", backendAddr,
		"-max-connections", fmt.Sprint(maxConns), "-drain-timeout", h.cfg.drain.String(), "-call-timeout", "10s",
		"-max-subscriptions", fmt.Sprint(max(100, h.cfg.subs)), "-log-level", h.cfg.bridgeLogLevel)
	if err != nil {
		return err
	}
	p.Addr = addr
	h.mu.Lock()
	h.logs = append(h.logs, p.Log)
	if h.logAddr == nil {
		h.logAddr = map[string]string{}
	}
	h.logAddr[p.Log] = addr
	h.mu.Unlock()
	if err := p.WaitFor(60*time.Second, "200 from /readyz", func() bool { return proc.HTTPOK("http://" + addr + "/readyz") }); err != nil {
		return err
	}
	h.mu.Lock()
	h.bridge = p
	h.sample = sample{}
	h.mu.Unlock()
	if m, err := proc.Metrics(addr); err == nil {
		rss, th, _ := proc.Status(p.Pid())
		h.mu.Lock()
		h.sample.startRSS, h.sample.startThreads = rss, th
		h.sample.startG, h.sample.hasG = goroutines(m)
		h.mu.Unlock()
	}
	h.addr.Store(&addr)
	return nil
}

// exitBound is how long after SIGTERM a bridge may take to exit, by docs/deploy.md: the
// drain, the close handshake's grace (1 s), the write timeout (10 s) and the plain HTTP
// requests' 5 s, plus 2 s for the process itself on a loaded machine.
func (h *harness) exitBound() time.Duration { return h.cfg.drain + 16*time.Second + 2*time.Second }

// stopBridge sends SIGTERM and checks the bridge drains and exits 0 in time.
func (h *harness) stopBridge(p *proc.Proc) {
	inTime := p.Stop(syscall.SIGTERM, h.exitBound())
	switch err := p.Err(); {
	case !inTime:
		h.stats.violation("%s did not exit within %s of SIGTERM; killed", p.Name, h.exitBound())
	case err != nil:
		h.stats.violation("%s exited with %v after SIGTERM (log %s)", p.Name, err, p.Log)
	}
}

func (h *harness) injectFaults(load context.Context, backendAddr string) {
	if len(h.cfg.faults) == 0 {
		return
	}
	h.faults = map[string]int{}
	t := time.NewTicker(h.cfg.interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-load.Done():
			return
		case <-t.C:
		}
		fault := h.cfg.faults[i%len(h.cfg.faults)]
		fmt.Fprintf(os.Stderr, "soak: fault %s\n", fault)
		h.mu.Lock()
		h.faults[fault]++
		oldBackend, oldBridge := h.backend, h.bridge
		h.mu.Unlock()
		var err error
		switch fault {
		case "backend":
			oldBackend.Stop(syscall.SIGKILL, 10*time.Second)
			err = h.startBackend(backendAddr)
		case "bridge":
			// A rolling deploy: the new bridge is ready before the old one drains.
			if err = h.startBridge(backendAddr); err == nil {
				h.stopBridge(oldBridge)
			}
		case "both":
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); h.stopBridge(oldBridge) }()
			oldBackend.Stop(syscall.SIGKILL, 10*time.Second)
			if err = h.startBackend(backendAddr); err == nil {
				err = h.startBridge(backendAddr)
			}
			wg.Wait()
		}
		if err != nil {
			h.stats.violation("fault %s: restart failed: %v", fault, err)
			return
		}
	}
}

func (h *harness) sampleLoop(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		p := h.bridge
		h.mu.Unlock()
		if p == nil {
			continue
		}
		m, err := proc.Metrics(p.Addr)
		if err != nil {
			continue
		}
		rss, th, _ := proc.Status(p.Pid())
		g, _ := goroutines(m)
		h.mu.Lock()
		if h.bridge == p {
			s := &h.sample
			s.peakRSS, s.peakThreads, s.peakG = max(s.peakRSS, rss), max(s.peakThreads, th), max(s.peakG, g)
			s.peakConns = max(s.peakConns, m["wsbridge_connections"])
			s.peakSubs = max(s.peakSubs, m["wsbridge_subscriptions"])
			s.peakUp = max(s.peakUp, m["wsbridge_upstream_streams"])
		}
		h.mu.Unlock()
	}
}

func (h *harness) recordEnd(p *proc.Proc, m map[string]float64) {
	rss, th, _ := proc.Status(p.Pid())
	g, _ := goroutines(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &h.sample
	s.endRSS, s.endThreads, s.endG = rss, th, g
	s.peakRSS, s.peakThreads, s.peakG = max(s.peakRSS, rss), max(s.peakThreads, th), max(s.peakG, g)
	s.endConns, s.endSubs, s.endUp = m["wsbridge_connections"], m["wsbridge_subscriptions"], m["wsbridge_upstream_streams"]
}

// result is the JSON line of the report.
type result struct {
	Conns        int              `json:"conns"`
	Subs         int              `json:"subs_per_conn"`
	Seconds      float64          `json:"seconds"`
	Faults       map[string]int   `json:"faults"`
	Sent         int64            `json:"requests_sent"`
	Statuses     map[string]int64 `json:"replies_by_status"`
	NoReply      int64            `json:"no_reply"`
	Crossed      int64            `json:"unanswered_crossing_close"`
	Broken       int64            `json:"unanswered_broken_conn"`
	Duplicates   int64            `json:"duplicate_replies"`
	Connects     int64            `json:"connects"`
	DialFailures int64            `json:"dial_failures"`
	Closes       map[string]int64 `json:"closes_by_code"`
	Starved      map[string]int64 `json:"closes_1006_write_timeout_by_client_error"`
	Abnormal     map[string]int64 `json:"closes_1006_unexplained_by_client_error"`
	BridgeLost   map[string]int64 `json:"bridge_log_connection_lines"`
	Events       int64            `json:"events"`
	Verified     int64            `json:"events_verified"`
	Lost         int64            `json:"events_lost"`
	DupEvents    int64            `json:"events_duplicated"`
	Unverified   int64            `json:"events_unverifiable"`
	Interrupted  int64            `json:"subscription_interruptions"`
	Resumed      int64            `json:"subscription_resumes"`
	Unsettled    int64            `json:"clients_unsettled"`
	Panics       int              `json:"panics"`
	Races        int              `json:"races"`
	RSSKiB       [3]int64         `json:"bridge_rss_kib_start_peak_end"`
	Threads      [3]int64         `json:"bridge_threads_start_peak_end"`
	Goroutines   *[3]float64      `json:"bridge_goroutines_start_peak_end"`
	PeakGauges   [3]float64       `json:"bridge_peak_conns_subs_upstreams"`
	EndGauges    [3]float64       `json:"bridge_end_conns_subs_upstreams"`
	Violations   int64            `json:"violations"`
	OK           bool             `json:"ok"`
}

func (h *harness) report(out io.Writer, elapsed time.Duration) bool {
	st := &h.stats
	facts := &logFacts{lines: map[string]int64{}, starved: map[string]bool{}}
	h.mu.Lock()
	for _, l := range h.logs {
		p, r, d, first := scanLog(l, h.logAddr[l], facts)
		if p+r > 0 {
			st.violation("%s", first)
		}
		if d > 0 {
			st.violation("%s: the drain timed out although every call has a shorter deadline", filepath.Base(l))
		}
		h.panics += p
		h.races += r
	}
	h.mu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	// A 1006 the bridge logged as a write timeout is a client too starved to read for the
	// whole write timeout: the bridge dropped it as it must, and no close frame could follow.
	// Any other 1006 is a violation.
	starved, unexplained := map[string]int64{}, map[string]int64{}
	for _, a := range st.abnormals {
		if facts.starved[a.key] {
			starved[a.reason]++
		} else {
			unexplained[a.reason]++
		}
	}
	var nStarved int64
	for _, n := range starved {
		nStarved += n
	}
	for code, n := range st.closes {
		if code == 1006 {
			n -= nStarved
		}
		if code != 1000 && code != 1001 && n > 0 {
			st.violations.Add(n)
			if len(st.firstViolations) < 20 {
				st.firstViolations = append(st.firstViolations, fmt.Sprintf("%d connections closed with %d", n, code))
			}
		}
	}
	if n := st.unsettled.Load(); n > 0 {
		st.violations.Add(n)
		st.firstViolations = append(st.firstViolations, fmt.Sprintf("%d clients did not pass the final check within -settle", n))
	}
	s := h.sample
	r := result{
		Conns: h.cfg.conns, Subs: h.cfg.subs, Seconds: elapsed.Round(time.Second).Seconds(), Faults: h.faults,
		Sent: st.sent.Load(), Statuses: map[string]int64{}, NoReply: st.noReply.Load(), Crossed: st.crossed.Load(), Broken: st.lostWithConn.Load(),
		Duplicates: st.duplicates.Load(), Connects: st.connects.Load(), DialFailures: st.dialFailures.Load(),
		Closes: map[string]int64{}, Starved: starved, Abnormal: unexplained, BridgeLost: facts.lines, Events: st.events.Load(), Verified: st.verified.Load(), Lost: st.lost.Load(),
		DupEvents: st.dupEvents.Load(), Unverified: st.unverified.Load(), Interrupted: st.interrupted.Load(),
		Resumed: st.resumed.Load(), Unsettled: st.unsettled.Load(), Panics: h.panics, Races: h.races,
		RSSKiB: [3]int64{s.startRSS, s.peakRSS, s.endRSS}, Threads: [3]int64{s.startThreads, s.peakThreads, s.endThreads},
		PeakGauges: [3]float64{s.peakConns, s.peakSubs, s.peakUp}, EndGauges: [3]float64{s.endConns, s.endSubs, s.endUp},
	}
	if s.hasG {
		r.Goroutines = &[3]float64{s.startG, s.peakG, s.endG}
	}
	for _, k := range sortedKeys(st.statuses) {
		r.Statuses[fmt.Sprint(k)] = st.statuses[k]
	}
	for _, k := range sortedKeys(st.closes) {
		r.Closes[fmt.Sprint(k)] = st.closes[k]
	}
	r.Violations = st.violations.Load()
	r.OK = r.Violations == 0

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	row := func(k string, v any, inv string) { fmt.Fprintf(tw, "%s\t%v\t%s\t\n", k, v, inv) }
	fmt.Fprintln(out)
	row("connections × subscriptions", fmt.Sprintf("%d × %d", r.Conns, r.Subs), "")
	row("duration (load + final check)", elapsed.Round(time.Second), "")
	row("faults", fmt.Sprint(r.Faults), "")
	row("requests sent", r.Sent, "")
	for _, k := range sortedKeys(st.statuses) {
		row(fmt.Sprintf("  replies %d", k), st.statuses[k], "")
	}
	row("no reply (read by the bridge)", r.NoReply, "must be 0")
	row("unanswered, crossing a close", r.Crossed, "not provable either way")
	row("unanswered when the client gave up", st.abandoned.Load(), "end of -settle")
	row("unanswered on a broken connection", st.lostWithConn.Load(), "its 1006 is the violation")
	row("duplicate replies", r.Duplicates, "must be 0")
	row("final patches retried after 503/504", st.finalRetries.Load(), "")
	row("connects / failed dials", fmt.Sprintf("%d / %d", r.Connects, r.DialFailures), "")
	for _, k := range sortedKeys(st.closes) {
		row(fmt.Sprintf("  closes %d", k), st.closes[k], "1000, 1001; 1006 only below")
	}
	for _, k := range sortedStrings(starved) {
		row("    1006, write timeout in the bridge's log: "+k, starved[k], "client starved: allowed")
	}
	for _, k := range sortedStrings(unexplained) {
		row("    1006, unexplained: "+k, unexplained[k], "must be 0")
	}
	for _, k := range sortedStrings(facts.lines) {
		row("bridge log: "+k, facts.lines[k], "")
	}
	row("events received", r.Events, "")
	row("  in-window changes delivered once", r.Verified, "")
	row("  lost", r.Lost, "must be 0")
	row("  duplicated", r.DupEvents, "must be 0")
	row("  unverifiable (tail cut by an outage)", r.Unverified, "")
	row("subscription 503 notices / resumed", fmt.Sprintf("%d / %d", r.Interrupted, r.Resumed), "")
	row("panics / races in logs", fmt.Sprintf("%d / %d", r.Panics, r.Races), "must be 0")
	row("bridge RSS MiB start/peak/end", fmt.Sprintf("%.0f / %.0f / %.0f", float64(s.startRSS)/1024, float64(s.peakRSS)/1024, float64(s.endRSS)/1024), "last bridge")
	row("bridge threads start/peak/end", fmt.Sprintf("%d / %d / %d", s.startThreads, s.peakThreads, s.endThreads), "")
	if s.hasG {
		row("bridge goroutines start/peak/end", fmt.Sprintf("%.0f / %.0f / %.0f", s.startG, s.peakG, s.endG), "end ≈ start")
	} else {
		row("bridge goroutines", "not in /metrics", "")
	}
	row("bridge peak conns/subs/upstreams", fmt.Sprintf("%.0f / %.0f / %.0f", s.peakConns, s.peakSubs, s.peakUp), "")
	row("bridge end conns/subs/upstreams", fmt.Sprintf("%.0f / %.0f / %.0f", s.endConns, s.endSubs, s.endUp), "must be 0")
	row("violations", r.Violations, "must be 0")
	tw.Flush()
	for _, v := range st.firstViolations {
		fmt.Fprintln(out, "violation:", v)
	}
	for k, n := range st.kinds {
		if n > 3 {
			fmt.Fprintf(out, "violations of the kind %q: %d in all\n", k, n)
		}
	}
	b, _ := json.Marshal(r)
	fmt.Fprintln(out, string(b))
	return r.OK
}
