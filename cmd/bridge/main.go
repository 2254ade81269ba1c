// Command bridge serves gRPC backends as a REST-like API over one WebSocket.
// Every flag has an environment variable equivalent (see -help); a flag given on the
// command line wins over its variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/wsbridge/wsbridge/bridge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		stop()
		os.Exit(2)
	}
}

// listFlag is a repeatable flag; its environment variable holds a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

type config struct {
	listen        string
	metricsListen string
	httpIdle      time.Duration
	backends      listFlag
	streams       listFlag
	descriptorSet string
	httpRules     string
	pageSize      int
	maxPageSize   int
	callTimeout   time.Duration
	maxInFlight   int
	queueBytes    int
	maxFrameBytes int64
	maxSubs       int
	drainTimeout  time.Duration
	refresh       time.Duration
	logLevel      string
	schema        bool
	debug         bool
	int64Number   bool
	int64Set      bool          // -int64-as-number given (flag or environment): it overrides -config
	sec           securityFlags // security.go
}

// envNames maps each flag to its environment variable.
var envNames = map[string]string{
	"listen":            "BRIDGE_ADDR",
	"metrics-listen":    "BRIDGE_METRICS_LISTEN",
	"http-idle-timeout": "BRIDGE_HTTP_IDLE_TIMEOUT",
	"backend":           "BRIDGE_BACKENDS",
	"stream":            "BRIDGE_STREAMS",
	"descriptor-set":    "BRIDGE_DESCRIPTOR_SET",
	"http-rules":        "BRIDGE_HTTP_RULES",
	"page-size":         "BRIDGE_PAGE_SIZE",
	"max-page-size":     "BRIDGE_MAX_PAGE_SIZE",
	"call-timeout":      "BRIDGE_CALL_TIMEOUT",
	"max-in-flight":     "BRIDGE_MAX_IN_FLIGHT",
	"queue-bytes":       "BRIDGE_QUEUE_BYTES",
	"max-frame-bytes":   "BRIDGE_MAX_FRAME_BYTES",
	"max-subscriptions": "BRIDGE_MAX_SUBSCRIPTIONS",
	"drain-timeout":     "BRIDGE_DRAIN_TIMEOUT",
	"refresh-interval":  "BRIDGE_REFRESH_INTERVAL",
	"log-level":         "BRIDGE_LOG_LEVEL",
	"schema":            "BRIDGE_SCHEMA",
	"debug":             "BRIDGE_DEBUG",
	"int64-as-number":   "BRIDGE_INT64_AS_NUMBER",
}

func parseFlags(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "address to serve HTTP and the WebSocket on")
	fs.StringVar(&c.metricsListen, "metrics-listen", "", "serve /metrics on this address instead of -listen's (plain HTTP)")
	fs.DurationVar(&c.httpIdle, "http-idle-timeout", 2*time.Minute, "close idle keep-alive HTTP connections (probes, /schema, /metrics) after this long")
	fs.Var(&c.backends, "backend", "gRPC backend target, repeatable; with -descriptor-set and several backends, target=pkg.Service+pkg.Other names the services it serves")
	fs.Var(&c.streams, "stream", "expose a service without the bridge's resource option: pkg.Service=stream, or rename a resource of an AIP-style service: pkg.Message=stream; repeatable")
	fs.StringVar(&c.httpRules, "http-rules", "", "grpc-gateway grpc_api_configuration YAML whose http rules map methods to actions")
	fs.StringVar(&c.descriptorSet, "descriptor-set", "", "file descriptor set (buf build -o) to use instead of server reflection")
	fs.IntVar(&c.pageSize, "page-size", 25, "page size of list when the client sends none")
	fs.IntVar(&c.maxPageSize, "max-page-size", 1000, "largest page size a client may ask for; larger requests are capped")
	fs.DurationVar(&c.callTimeout, "call-timeout", 10*time.Second, "deadline of every backend call")
	fs.IntVar(&c.maxInFlight, "max-in-flight", 64, "concurrent requests per connection; at the limit reading pauses")
	fs.IntVar(&c.queueBytes, "queue-bytes", 1<<20, "outbound bytes queued per connection before it is closed as a slow consumer (4008)")
	fs.Int64Var(&c.maxFrameBytes, "max-frame-bytes", 64<<10, "largest incoming frame; larger closes the connection with 1009")
	fs.IntVar(&c.maxSubs, "max-subscriptions", 100, "subscriptions per connection")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.DurationVar(&c.refresh, "refresh-interval", 0, "discover the backends' services again this often (0: once, at start)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.schema, "schema", true, "serve the JSON description of the streams at GET /schema")
	fs.BoolVar(&c.debug, "debug", false, "serve the interactive debugger page at /debug/; never in production")
	fs.BoolVar(&c.int64Number, "int64-as-number", false, "write 64-bit integers as JSON numbers when within ±(2^53−1), as strings beyond; overrides int64_as_number of -config")
	c.sec.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: bridge -backend host:port [flags]\n\nFlags (environment variable in brackets):")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  -%s [%s]\n    \t%s (default %q)\n", f.Name, envNames[f.Name], f.Usage, f.DefValue)
		})
	}
	// Parse errors come back as one line from run; only -help prints the usage.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fs.Usage()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, env := range envNames {
		v, ok := os.LookupEnv(env)
		if !ok || set[name] || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("invalid value %q for -%s (from %s): %v", v, name, env, err)
		}
	}
	fs.Visit(func(f *flag.Flag) { c.int64Set = c.int64Set || f.Name == "int64-as-number" })
	switch {
	case len(c.backends) == 0:
		return nil, errors.New("-backend is required")
	case c.pageSize < 1:
		return nil, fmt.Errorf("-page-size must be at least 1, got %d", c.pageSize)
	case c.maxPageSize < c.pageSize:
		return nil, fmt.Errorf("-max-page-size (%d) must be at least -page-size (%d)", c.maxPageSize, c.pageSize)
	case c.callTimeout <= 0:
		return nil, fmt.Errorf("-call-timeout must be positive, got %s", c.callTimeout)
	case c.maxInFlight < 1:
		return nil, fmt.Errorf("-max-in-flight must be at least 1, got %d", c.maxInFlight)
	case c.queueBytes < 1024:
		return nil, fmt.Errorf("-queue-bytes must be at least 1024, got %d", c.queueBytes)
	case c.maxFrameBytes < 256:
		return nil, fmt.Errorf("-max-frame-bytes must be at least 256, got %d", c.maxFrameBytes)
	case c.maxSubs < 0:
		return nil, fmt.Errorf("-max-subscriptions must not be negative, got %d", c.maxSubs)
	case c.drainTimeout < 0:
		return nil, fmt.Errorf("-drain-timeout must not be negative, got %s", c.drainTimeout)
	case c.refresh < 0:
		return nil, fmt.Errorf("-refresh-interval must not be negative, got %s", c.refresh)
	case c.httpIdle <= 0:
		return nil, fmt.Errorf("-http-idle-timeout must be positive, got %s", c.httpIdle)
	}
	if err := c.sec.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *config) options(logger *slog.Logger) ([]bridge.Option, error) {
	opts := []bridge.Option{
		bridge.WithLogger(logger),
		bridge.WithPageSize(c.pageSize, c.maxPageSize),
		bridge.WithCallTimeout(c.callTimeout),
		bridge.WithMaxInFlight(c.maxInFlight),
		bridge.WithOutboundQueue(c.queueBytes),
		bridge.WithMaxFrameSize(c.maxFrameBytes),
		bridge.WithMaxSubscriptions(c.maxSubs),
		bridge.WithSchema(c.schema),
		bridge.WithDebugPage(c.debug),
	}
	secOpts, err := c.sec.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, secOpts...)
	dial, err := c.sec.backendDialOptions()
	if err != nil {
		return nil, err
	}
	for _, b := range c.backends {
		target, services, _ := strings.Cut(b, "=")
		be := bridge.Backend{Target: target, DialOptions: dial}
		if services != "" {
			be.Services = strings.Split(services, "+")
		}
		opts = append(opts, bridge.WithBackend(be))
	}
	for _, s := range c.streams {
		svc, stream, ok := strings.Cut(s, "=")
		if !ok || svc == "" || stream == "" {
			return nil, fmt.Errorf("-stream %q: want pkg.Service=stream", s)
		}
		opts = append(opts, bridge.WithStream(svc, stream))
	}
	if c.httpRules != "" {
		rules, err := bridge.LoadHTTPRules(c.httpRules)
		if err != nil {
			return nil, fmt.Errorf("-http-rules: %v", err)
		}
		opts = append(opts, bridge.WithHTTPRules(rules))
	}
	if c.descriptorSet != "" {
		files, err := readDescriptorSet(c.descriptorSet)
		if err != nil {
			return nil, fmt.Errorf("-descriptor-set: %v", err)
		}
		opts = append(opts, bridge.WithDescriptors(files))
	}
	if c.int64Set {
		opts = append(opts, bridge.WithInt64AsNumber(c.int64Number)) // after -config's: the flag wins
	}
	return opts, nil
}

func readDescriptorSet(path string) (*protoregistry.Files, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s is not a file descriptor set: %v", path, err)
	}
	return protodesc.NewFiles(&set)
}

// run serves until ctx ends (SIGINT or SIGTERM in main), then drains. A test gives it an
// ended ctx: a configuration that is accepted then returns nil at once instead of serving.
func run(ctx context.Context, args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts, err := c.options(logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("-listen: %v", err)
	}
	defer ln.Close()
	var metricsLn net.Listener
	if c.metricsListen != "" {
		if metricsLn, err = net.Listen("tcp", c.metricsListen); err != nil {
			return fmt.Errorf("-metrics-listen: %v", err)
		}
		defer metricsLn.Close()
	}
	httpSrv, err := c.sec.httpServer(nil)
	if err != nil {
		return err
	}
	// Idle keep-alive connections (probes, /schema, /metrics) do not live forever.
	httpSrv.IdleTimeout = c.httpIdle
	srv, err := bridge.New(opts...)
	if err != nil {
		return c.sec.newError(err)
	}
	httpSrv.Handler = srv
	var metricsSrv *http.Server
	if metricsLn != nil {
		httpSrv.Handler = withoutMetrics(srv)
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv)
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: httpSrv.ReadHeaderTimeout, IdleTimeout: c.httpIdle}
	}
	// Before Serve, which writes TLSConfig (http2 setup).
	wsURL := wsScheme(httpSrv) + "://" + ln.Addr().String() + "/ws"
	serveErr := make(chan error, 2)
	go func() { serveErr <- serveHTTP(httpSrv, ln) }()
	if metricsSrv != nil {
		go func() { serveErr <- metricsSrv.Serve(metricsLn) }()
		logger.Info("metrics listening", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	logger.Info("bridge listening", "ws", wsURL, "backends", c.backends.String())
	if c.debug {
		logger.Warn("debugger page enabled; never do this in production", "url", "http://"+ln.Addr().String()+"/debug/")
	}

	var failed error
	select {
	case failed = <-serveErr:
		logger.Error("serving failed", "err", failed)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "drain_timeout", c.drainTimeout)
	// The bridge drains first while the listener stays open: a client that reconnects
	// meanwhile gets a clear 503 rather than a refused TCP connection.
	drainCtx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		logger.Warn("drain timed out; connections closed with requests still in flight", "drain_timeout", c.drainTimeout, "err", err)
	}
	// Then the listeners close. The WebSockets are hijacked, so only plain HTTP requests
	// (probes, /metrics) are left to finish.
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelHTTP()
	for _, h := range []*http.Server{httpSrv, metricsSrv} {
		if h != nil && h.Shutdown(httpCtx) != nil {
			_ = h.Close()
		}
	}
	logger.Info("stopped")
	return failed
}

// withoutMetrics serves h except /metrics, which -metrics-listen serves instead.
func withoutMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
