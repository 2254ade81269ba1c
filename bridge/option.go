package bridge

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Option configures a Server.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// Backend is one gRPC server the bridge forwards to.
type Backend struct {
	// Target is a grpc.NewClient target, e.g. "127.0.0.1:9090" or "dns:///polls:9090", or
	// replicas separated by '|': "10.0.0.5:9090|10.0.0.6:9090" (dial.go, docs/deploy.md).
	Target string
	// Services, when set, lists the services this backend serves. It is needed only to route
	// services from a descriptor set among several backends; with reflection the backend says.
	Services []string
	// DialOptions are added to the bridge's defaults (insecure credentials unless given).
	DialOptions []grpc.DialOption
}

type options struct {
	backends       []Backend
	descriptors    *protoregistry.Files
	streams        map[string]string                // service full name → stream
	httpRules      map[string]*annotations.HttpRule // WithHTTPRules: method full name → rule (httprule.go)
	pageSize       int
	maxPageSize    int
	callTimeout    time.Duration
	maxInFlight    int
	queueBytes     int
	writeTimeout   time.Duration
	writeDelay     time.Duration // WithWriteDelay; 0: events are written at once
	maxFrameBytes  int64
	maxSubs        int
	discoveryRetry time.Duration
	refresh        time.Duration
	logger         *slog.Logger
	security       securityOptions // authentication, permissions, hardening (security_option.go)
	schemaOff      bool            // WithSchema(false): no /schema (schema.go)
	debugPage      bool            // WithDebugPage(true): serve /debug/ (debug.go)
	int64AsNumber  bool            // WithInt64AsNumber(true) (int64json.go)
	perIdentity    map[string]bool // WithUpstreamPerIdentity: streams (subscribe.go)

	tracerProvider trace.TracerProvider // WithTracerProvider (tracing.go); nil: off
}

func defaultOptions() options {
	return options{
		streams:        map[string]string{},
		pageSize:       25,
		maxPageSize:    1000,
		callTimeout:    10 * time.Second,
		maxInFlight:    64,
		queueBytes:     1 << 20,
		writeTimeout:   10 * time.Second,
		maxFrameBytes:  64 << 10,
		maxSubs:        100,
		discoveryRetry: 5 * time.Second,
		logger:         slog.Default(),
		security:       defaultSecurityOptions(),
	}
}

// OptionError is the error New returns for an option whose value is out of range, naming
// the option and, for an option of several parameters, the one at fault. A program that
// reads its settings from flags or a file maps Option (and Arg) back to its own names:
//
//	var oe *bridge.OptionError
//	if errors.As(err, &oe) && oe.Option == "WithHandshakeTimeout" { ... }
type OptionError struct {
	// Option is the option's function name, e.g. "WithHandshakeTimeout".
	Option string
	// Arg is the parameter at fault as named in the option's signature ("max" of
	// WithPageSize, "burst" of WithRateLimit), or empty for an option of one parameter.
	Arg string
	// Err says what is wrong with the value.
	Err error
}

// Error is "Option: reason", or "Option(arg): reason".
func (e *OptionError) Error() string {
	if e.Arg != "" {
		return e.Option + "(" + e.Arg + "): " + e.Err.Error()
	}
	return e.Option + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *OptionError) Unwrap() error { return e.Err }

func optionErr(option, arg, format string, a ...any) *OptionError {
	return &OptionError{Option: option, Arg: arg, Err: fmt.Errorf(format, a...)}
}

// validate checks every option's range: the only place they are checked.
func (o *options) validate() error {
	switch {
	case len(o.backends) == 0:
		return optionErr("WithBackend", "", "at least one backend is required")
	case slices.ContainsFunc(o.backends, func(b Backend) bool { return b.Target == "" }):
		return optionErr("WithBackend", "", "a backend's target must not be empty")
	case o.logger == nil:
		return optionErr("WithLogger", "", "the logger must not be nil")
	case o.pageSize < 1:
		return optionErr("WithPageSize", "def", "the default page size must be at least 1, got %d", o.pageSize)
	case o.maxPageSize < o.pageSize:
		return optionErr("WithPageSize", "max", "the maximum page size %d is below the default page size %d", o.maxPageSize, o.pageSize)
	case o.callTimeout <= 0:
		return optionErr("WithCallTimeout", "", "must be positive, got %s", o.callTimeout)
	case o.maxInFlight < 1:
		return optionErr("WithMaxInFlight", "", "must be at least 1, got %d", o.maxInFlight)
	case o.queueBytes < 1024:
		return optionErr("WithOutboundQueue", "", "must be at least 1024 bytes, got %d", o.queueBytes)
	case o.writeTimeout <= 0:
		return optionErr("WithWriteTimeout", "", "must be positive, got %s", o.writeTimeout)
	case o.writeDelay < 0:
		return optionErr("WithWriteDelay", "", "must not be negative, got %s", o.writeDelay)
	case o.writeDelay >= o.writeTimeout:
		return optionErr("WithWriteDelay", "", "must be shorter than the write timeout %s, got %s", o.writeTimeout, o.writeDelay)
	case o.maxFrameBytes < 256:
		return optionErr("WithMaxFrameSize", "", "must be at least 256 bytes, got %d", o.maxFrameBytes)
	case o.maxSubs < 0:
		return optionErr("WithMaxSubscriptions", "", "must not be negative, got %d", o.maxSubs)
	case o.discoveryRetry <= 0:
		return optionErr("WithDiscoveryRetry", "", "must be positive, got %s", o.discoveryRetry)
	case o.refresh < 0:
		return optionErr("WithRefresh", "", "must not be negative, got %s", o.refresh)
	}
	for service, stream := range o.streams {
		if service == "" || stream == "" {
			return optionErr("WithStream", "", "service and stream must not be empty, got %q and %q", service, stream)
		}
	}
	if err := o.security.validate(); err != nil {
		return err
	}
	if o.descriptors != nil && len(o.backends) > 1 {
		for _, b := range o.backends {
			if len(b.Services) == 0 {
				return optionErr("WithBackend", "", "backend %s: with a descriptor set and several backends, each backend must list its services", b.Target)
			}
		}
	}
	return nil
}

// WithBackend adds a backend. At least one is required, each with a Target; there is no
// default. With WithDescriptors and several backends, each must list its Services.
func WithBackend(b Backend) Option {
	return optionFunc(func(o *options) { o.backends = append(o.backends, b) })
}

// WithDescriptors makes the bridge take service descriptors from files (for example a
// descriptor set made with `buf build -o`) instead of the backends' server reflection.
// Default: nil, use reflection.
func WithDescriptors(files *protoregistry.Files) Option {
	return optionFunc(func(o *options) { o.descriptors = files })
}

// WithStream exposes the service (full name, e.g. "polls.v1.QuestionService") as a resource
// on stream, whether or not its proto carries the bridge's resource option. Neither may be
// empty. Default: only services with the option are exposed.
func WithStream(service, stream string) Option {
	return optionFunc(func(o *options) { o.streams[service] = stream })
}

// WithPageSize sets the page size a list uses when the client sends none (def, default 25,
// at least 1) and the largest a client may ask for (max, default 1000, at least def);
// larger requests are capped.
func WithPageSize(def, max int) Option {
	return optionFunc(func(o *options) { o.pageSize, o.maxPageSize = def, max })
}

// WithCallTimeout bounds every backend call. Default 10s; must be positive.
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.callTimeout = d })
}

// WithMaxInFlight limits concurrent requests per connection; at the limit the bridge stops
// reading that connection until one finishes. Default 64; at least 1.
func WithMaxInFlight(n int) Option {
	return optionFunc(func(o *options) { o.maxInFlight = n })
}

// WithOutboundQueue bounds the bytes waiting to be written to one client. A client whose
// queue would overflow is disconnected with close code 4008. Default 1 MiB; at least 1024.
func WithOutboundQueue(bytes int) Option {
	return optionFunc(func(o *options) { o.queueBytes = bytes })
}

// WithWriteTimeout bounds each write to a client; a client that reads nothing for that
// long is disconnected. Default 10s; must be positive.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.writeTimeout = d })
}

// WithWriteDelay holds the events of a busy subscription, one whose previous event came
// less than d before, up to d before writing them, so that the events that follow
// meanwhile go out in the same write(2) rather than one each. In a fan-out the write system
// call is most of the bridge's CPU (docs/benchmarks.md): a delay above the interval between
// a busy subscription's events trades up to d of latency for fewer writes, while a quiet
// subscription's events still go out at once. Replies, pings and close frames are never
// held, and a reply takes the held events with it. Default 0: every frame is written as soon
// as a writer is free. Must not be negative and must be shorter than the write timeout.
func WithWriteDelay(d time.Duration) Option {
	return optionFunc(func(o *options) { o.writeDelay = d })
}

// WithMaxFrameSize bounds an incoming frame; a larger one closes the connection with 1009.
// Default 64 KiB; at least 256.
func WithMaxFrameSize(bytes int64) Option {
	return optionFunc(func(o *options) { o.maxFrameBytes = bytes })
}

// WithMaxSubscriptions limits subscriptions per connection; a subscribe past the limit is
// refused. Default 100; 0 refuses every subscription; must not be negative.
func WithMaxSubscriptions(n int) Option {
	return optionFunc(func(o *options) { o.maxSubs = n })
}

// WithDiscoveryRetry sets how long to wait before asking a backend's reflection service
// again after a failure (the wait starts at an eighth of it and doubles up to it).
// Default 5s; must be positive.
func WithDiscoveryRetry(d time.Duration) Option {
	return optionFunc(func(o *options) { o.discoveryRetry = d })
}

// WithRefresh makes the bridge discover its backends' services again every interval after
// the first success and swap in the new catalog, so new or changed services and methods
// appear without a restart. A failed refresh keeps the current catalog. Default 0: discover
// once; must not be negative.
func WithRefresh(interval time.Duration) Option {
	return optionFunc(func(o *options) { o.refresh = interval })
}

// WithLogger sets the logger. Default slog.Default(); must not be nil.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithInt64AsNumber makes replies and events write 64-bit integers (int64, uint64, their
// sint/fixed forms and Int64Value/UInt64Value) as JSON numbers when within ±(2^53−1), the
// range a JavaScript number holds exactly, and as strings beyond it. Clients of the
// channels-api family compare ids with numbers, as Django REST framework writes them.
// Input accepts both forms either way. Default false: protojson's strings, always.
func WithInt64AsNumber(on bool) Option {
	return optionFunc(func(o *options) { o.int64AsNumber = on })
}
