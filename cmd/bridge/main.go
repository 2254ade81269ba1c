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
	"github.com/wsbridge/wsbridge/internal/gcfloor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
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
	writeDelay    time.Duration
	gcFloorMiB    int
	maxFrameBytes int64
	maxSubs       int
	drainTimeout  time.Duration
	refresh       time.Duration
	logLevel      string
	logFormat     string
	checkConfig   bool
	schema        bool
	debug         bool
	int64Number   bool
	int64Set      bool          // -int64-as-number given (flag or environment): it overrides -config
	sec           securityFlags // security.go
}

// flagSpec ties a flag to its environment variable and to the bridge option (and, for an
// option of several parameters, the parameter) it sets, so that a refusal of bridge.New
// names the flag. The command checks no option's range itself: the library does.
type flagSpec struct {
	name, env   string
	option, arg string // "" for the command's own settings
}

// flagSpecs lists every flag.
var flagSpecs = []flagSpec{
	{"listen", "BRIDGE_ADDR", "", ""},
	{"metrics-listen", "BRIDGE_METRICS_LISTEN", "", ""},
	{"http-idle-timeout", "BRIDGE_HTTP_IDLE_TIMEOUT", "", ""},
	{"backend", "BRIDGE_BACKENDS", "WithBackend", ""},
	{"stream", "BRIDGE_STREAMS", "WithStream", ""},
	{"descriptor-set", "BRIDGE_DESCRIPTOR_SET", "WithDescriptors", ""},
	{"http-rules", "BRIDGE_HTTP_RULES", "WithHTTPRules", ""},
	{"page-size", "BRIDGE_PAGE_SIZE", "WithPageSize", "def"},
	{"max-page-size", "BRIDGE_MAX_PAGE_SIZE", "WithPageSize", "max"},
	{"call-timeout", "BRIDGE_CALL_TIMEOUT", "WithCallTimeout", ""},
	{"max-in-flight", "BRIDGE_MAX_IN_FLIGHT", "WithMaxInFlight", ""},
	{"queue-bytes", "BRIDGE_QUEUE_BYTES", "WithOutboundQueue", ""},
	{"write-delay", "BRIDGE_WRITE_DELAY", "WithWriteDelay", ""},
	{"gc-floor-mib", "BRIDGE_GC_FLOOR_MIB", "", ""},
	{"max-frame-bytes", "BRIDGE_MAX_FRAME_BYTES", "WithMaxFrameSize", ""},
	{"max-subscriptions", "BRIDGE_MAX_SUBSCRIPTIONS", "WithMaxSubscriptions", ""},
	{"drain-timeout", "BRIDGE_DRAIN_TIMEOUT", "", ""},
	{"refresh-interval", "BRIDGE_REFRESH_INTERVAL", "WithRefresh", ""},
	{"log-level", "BRIDGE_LOG_LEVEL", "", ""},
	{"log-format", "BRIDGE_LOG_FORMAT", "", ""},
	{"check-config", "BRIDGE_CHECK_CONFIG", "", ""},
	{"schema", "BRIDGE_SCHEMA", "WithSchema", ""},
	{"debug", "BRIDGE_DEBUG", "WithDebugPage", ""},
	{"int64-as-number", "BRIDGE_INT64_AS_NUMBER", "WithInt64AsNumber", ""},
	// security.go
	{"config", "BRIDGE_CONFIG", "WithPolicy", ""},
	{"jwt-secret", "BRIDGE_JWT_SECRET", "", ""},
	{"jwt-keys", "BRIDGE_JWT_KEYS", "", ""},
	{"jwt-issuer", "BRIDGE_JWT_ISSUER", "", ""},
	{"jwt-audience", "BRIDGE_JWT_AUDIENCE", "", ""},
	{"jwt-leeway", "BRIDGE_JWT_LEEWAY", "", ""},
	{"token-cookie", "BRIDGE_TOKEN_COOKIE", "WithTokenCookie", ""},
	{"token-expiry-margin", "BRIDGE_TOKEN_EXPIRY_MARGIN", "WithTokenExpiryMargin", ""},
	{"forward-claims", "BRIDGE_FORWARD_CLAIMS", "WithForwardClaims", ""},
	{"forward-headers", "BRIDGE_FORWARD_HEADERS", "WithForwardHeaders", ""},
	{"forward-token", "BRIDGE_FORWARD_TOKEN", "WithForwardToken", ""},
	{"allowed-origins", "BRIDGE_ALLOWED_ORIGINS", "WithAllowedOrigins", ""},
	{"rate-limit", "BRIDGE_RATE_LIMIT", "WithRateLimit", "perSecond"},
	{"rate-burst", "BRIDGE_RATE_BURST", "WithRateLimit", "burst"},
	{"max-connections", "BRIDGE_MAX_CONNECTIONS", "WithMaxConnections", ""},
	{"handshake-timeout", "BRIDGE_HANDSHAKE_TIMEOUT", "WithHandshakeTimeout", ""},
	{"ping-interval", "BRIDGE_PING_INTERVAL", "WithKeepAlive", "interval"},
	{"idle-timeout", "BRIDGE_IDLE_TIMEOUT", "WithKeepAlive", "idle"},
	{"tls-cert", "BRIDGE_TLS_CERT", "", ""},
	{"tls-key", "BRIDGE_TLS_KEY", "", ""},
	{"backend-ca", "BRIDGE_BACKEND_CA", "", ""},
	{"backend-cert", "BRIDGE_BACKEND_CERT", "", ""},
	{"backend-key", "BRIDGE_BACKEND_KEY", "", ""},
}

// envOf is the environment variable of a flag.
func envOf(name string) string {
	for _, f := range flagSpecs {
		if f.name == name {
			return f.env
		}
	}
	return ""
}

// optionFlagError names the flag behind a refusal of bridge.New. Any other error of New is
// about a backend's target.
func optionFlagError(err error) error {
	var oe *bridge.OptionError
	if !errors.As(err, &oe) {
		return fmt.Errorf("-backend: %v", err)
	}
	for _, f := range flagSpecs {
		if f.option == oe.Option && f.arg == oe.Arg {
			return fmt.Errorf("-%s: %v", f.name, oe.Err)
		}
	}
	return err // an option the command sets without a flag (WithLogger): its own bug
}

// registerFlags defines the flags of c on fs.
func registerFlags(fs *flag.FlagSet, c *config) {
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
	fs.DurationVar(&c.writeDelay, "write-delay", 0, "hold the events of a busy subscription (its previous event came less than this before) up to this long, so that those arriving meanwhile share one write (0: write at once; replies are never held)")
	fs.IntVar(&c.gcFloorMiB, "gc-floor-mib", gcfloor.Default>>20, "let the heap grow to this many MiB before the garbage collector runs; above half of it GOGC applies as set (0: GOGC alone)")
	fs.Int64Var(&c.maxFrameBytes, "max-frame-bytes", 64<<10, "largest incoming frame; larger closes the connection with 1009")
	fs.IntVar(&c.maxSubs, "max-subscriptions", 100, "subscriptions per connection")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for requests in flight")
	fs.DurationVar(&c.refresh, "refresh-interval", 0, "discover the backends' services again this often (0: once, at start)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text (logfmt-like) or json (one JSON object a line)")
	fs.BoolVar(&c.checkConfig, "check-config", false, "check the flags, environment and files, print ok and exit (2 and the error if bad); listens on nothing and dials no backend")
	fs.BoolVar(&c.schema, "schema", true, "serve the JSON description of the streams at GET /schema")
	fs.BoolVar(&c.debug, "debug", false, "serve the interactive debugger page at /debug/; never in production")
	fs.BoolVar(&c.int64Number, "int64-as-number", false, "write 64-bit integers as JSON numbers when within ±(2^53−1), as strings beyond; overrides int64_as_number of -config")
	c.sec.register(fs)
}

func parseFlags(args []string) (*config, error) {
	var c config
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	registerFlags(fs, &c)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: bridge -backend host:port [flags]\n\nFlags (environment variable in brackets):")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(fs.Output(), "  -%s [%s]\n    \t%s (default %q)\n", f.Name, envOf(f.Name), f.Usage, f.DefValue)
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
	for _, f := range flagSpecs {
		v, ok := os.LookupEnv(f.env)
		if !ok || set[f.name] || v == "" {
			continue
		}
		if err := fs.Set(f.name, v); err != nil {
			return nil, fmt.Errorf("invalid value %q for -%s (from %s): %v", v, f.name, f.env, err)
		}
	}
	fs.Visit(func(f *flag.Flag) { c.int64Set = c.int64Set || f.Name == "int64-as-number" })
	// The ranges of the bridge's options are checked by bridge.New (optionFlagError); only
	// the command's own settings are checked here.
	switch {
	case c.drainTimeout < 0:
		return nil, fmt.Errorf("-drain-timeout must not be negative, got %s", c.drainTimeout)
	case c.httpIdle <= 0:
		return nil, fmt.Errorf("-http-idle-timeout must be positive, got %s", c.httpIdle)
	case c.gcFloorMiB < 0 || c.gcFloorMiB > 1<<20:
		return nil, fmt.Errorf("-gc-floor-mib must be between 0 and 1048576 (1 TiB), got %d", c.gcFloorMiB)
	}
	if err := c.sec.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// options are the bridge options of the flags. ctx bounds the refresh of a JWKS URL.
func (c *config) options(ctx context.Context, logger *slog.Logger) ([]bridge.Option, error) {
	opts := []bridge.Option{
		bridge.WithLogger(logger),
		bridge.WithPageSize(c.pageSize, c.maxPageSize),
		bridge.WithCallTimeout(c.callTimeout),
		bridge.WithMaxInFlight(c.maxInFlight),
		bridge.WithOutboundQueue(c.queueBytes),
		bridge.WithWriteDelay(c.writeDelay),
		bridge.WithMaxFrameSize(c.maxFrameBytes),
		bridge.WithMaxSubscriptions(c.maxSubs),
		bridge.WithRefresh(c.refresh),
		bridge.WithSchema(c.schema),
		bridge.WithDebugPage(c.debug),
	}
	secOpts, err := c.sec.options(ctx)
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
// Logs go to stderr; stdout gets only -check-config's "ok".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger, err := c.newLogger(stderr) // ops.go
	if err != nil {
		return err
	}
	// Not ctx, which ends at the signal: the JWKS refresh lasts until run returns.
	authCtx, stopAuth := context.WithCancel(context.Background())
	defer stopAuth()
	opts, err := c.options(authCtx, logger)
	if err != nil {
		return err
	}
	tp, err := tracing(authCtx) // ops.go: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
	if err != nil {
		return err
	}
	defer shutdownTracing(tp, logger)
	if tp != nil {
		opts = append(opts, bridge.WithTracerProvider(tp))
	}
	if c.checkConfig {
		if err := c.check(opts); err != nil { // ops.go
			return err
		}
		_, err := fmt.Fprintln(stdout, "ok")
		return err
	}
	// The options are checked before anything listens: a bad flag is reported as such.
	srv, err := bridge.New(opts...)
	if err != nil {
		return optionFlagError(err)
	}
	// A small heap would be collected tens of times a second under load (internal/gcfloor).
	defer gcfloor.Start(uint64(c.gcFloorMiB) << 20)()
	serving := false
	defer func() {
		if !serving { // a listener failed: nothing to drain
			srv.Shutdown(context.Background())
		}
	}()
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
	serving = true
	serveErr := make(chan error, 2)
	go func() { serveErr <- serveHTTP(httpSrv, ln) }()
	if metricsSrv != nil {
		go func() { serveErr <- metricsSrv.Serve(metricsLn) }()
		logger.Info("metrics listening", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	logger.Info("bridge listening", "ws", wsURL, "backends", c.backends.String(), "tracing", tp != nil)
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
