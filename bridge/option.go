package bridge

import (
	"fmt"
	"log/slog"
	"time"

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
	maxFrameBytes  int64
	maxSubs        int
	discoveryRetry time.Duration
	refresh        time.Duration
	logger         *slog.Logger
	security       securityOptions // authentication, permissions, hardening (security_option.go)
	schemaOff      bool            // WithSchema(false): no /schema (schema.go)
	debugPage      bool            // WithDebugPage(true): serve /debug/ (debug.go)
	int64AsNumber  bool            // WithInt64AsNumber(true) (int64json.go)
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

func (o *options) validate() error {
	switch {
	case len(o.backends) == 0:
		return fmt.Errorf("at least one backend is required")
	case o.pageSize < 1:
		return fmt.Errorf("default page size must be at least 1, got %d", o.pageSize)
	case o.maxPageSize < o.pageSize:
		return fmt.Errorf("maximum page size %d is below the default page size %d", o.maxPageSize, o.pageSize)
	case o.callTimeout <= 0:
		return fmt.Errorf("call timeout must be positive, got %s", o.callTimeout)
	case o.maxInFlight < 1:
		return fmt.Errorf("in-flight limit must be at least 1, got %d", o.maxInFlight)
	case o.queueBytes < 1024:
		return fmt.Errorf("outbound queue must be at least 1024 bytes, got %d", o.queueBytes)
	case o.maxFrameBytes < 256:
		return fmt.Errorf("maximum frame size must be at least 256 bytes, got %d", o.maxFrameBytes)
	}
	if err := o.security.validate(); err != nil {
		return err
	}
	if o.descriptors != nil && len(o.backends) > 1 {
		for _, b := range o.backends {
			if len(b.Services) == 0 {
				return fmt.Errorf("backend %s: with a descriptor set and several backends, each backend must list its services", b.Target)
			}
		}
	}
	return nil
}

// WithBackend adds a backend. At least one is required; there is no default.
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
// on stream, whether or not its proto carries the bridge's resource option. Default: only
// services with the option are exposed.
func WithStream(service, stream string) Option {
	return optionFunc(func(o *options) { o.streams[service] = stream })
}

// WithPageSize sets the page size a list uses when the client sends none (default 25)
// and the largest a client may ask for; larger requests are capped (default 1000).
func WithPageSize(def, max int) Option {
	return optionFunc(func(o *options) { o.pageSize, o.maxPageSize = def, max })
}

// WithCallTimeout bounds every backend call. Default 10s.
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.callTimeout = d })
}

// WithMaxInFlight limits concurrent requests per connection; at the limit the bridge stops
// reading that connection until one finishes. Default 64.
func WithMaxInFlight(n int) Option {
	return optionFunc(func(o *options) { o.maxInFlight = n })
}

// WithOutboundQueue bounds the bytes waiting to be written to one client. A client whose
// queue would overflow is disconnected with close code 4008. Default 1 MiB.
func WithOutboundQueue(bytes int) Option {
	return optionFunc(func(o *options) { o.queueBytes = bytes })
}

// WithWriteTimeout bounds each write to a client. Default 10s.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.writeTimeout = d })
}

// WithMaxFrameSize bounds an incoming frame; a larger one closes the connection with 1009.
// Default 64 KiB.
func WithMaxFrameSize(bytes int64) Option {
	return optionFunc(func(o *options) { o.maxFrameBytes = bytes })
}

// WithMaxSubscriptions limits subscriptions per connection. Default 100.
func WithMaxSubscriptions(n int) Option {
	return optionFunc(func(o *options) { o.maxSubs = n })
}

// WithDiscoveryRetry sets how long to wait before asking a backend's reflection service
// again after a failure. Default 5s.
func WithDiscoveryRetry(d time.Duration) Option {
	return optionFunc(func(o *options) { o.discoveryRetry = d })
}

// WithRefresh makes the bridge discover its backends' services again every interval after
// the first success and swap in the new catalog, so new or changed services and methods
// appear without a restart. A failed refresh keeps the current catalog. Default 0: discover
// once.
func WithRefresh(interval time.Duration) Option {
	return optionFunc(func(o *options) { o.refresh = interval })
}

// WithLogger sets the logger. Default slog.Default().
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
