package bridge

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// securityOptions are the options of authentication, permissions and hardening.
type securityOptions struct {
	auth         Authenticator
	cookie       string
	expiryMargin time.Duration
	claims       []string
	headers      []string // canonical lower-case names
	forwardToken bool

	policy      Policy
	permissions []Permission

	origins          []string
	rate             float64 // messages per second; 0: unlimited
	burst            int
	maxConns         int
	handshakeTimeout time.Duration
	pingInterval     time.Duration
	idleTimeout      time.Duration
}

func defaultSecurityOptions() securityOptions {
	return securityOptions{
		rate:             100,
		burst:            500,
		maxConns:         10000,
		handshakeTimeout: 10 * time.Second,
		pingInterval:     30 * time.Second,
		idleTimeout:      75 * time.Second,
	}
}

// security is the Server's runtime state for securityOptions.
type security struct {
	open    atomic.Int64 // connections being set up or served
	origins []originPattern
	bg      sync.WaitGroup // the keep-alive loop
	refused refusalLog     // rate-limited log of refused handshakes (refusal.go)
}

// initSecurity sets up the Server's security state once options are valid.
func (s *Server) initSecurity() {
	for _, p := range s.opts.security.origins {
		o, _ := parseOriginPattern(p) // validated
		s.sec.origins = append(s.sec.origins, o)
	}
	s.upgrader.CheckOrigin = s.checkOrigin
	s.upgrader.HandshakeTimeout = s.opts.security.handshakeTimeout
	if s.opts.security.pingInterval > 0 {
		s.sec.bg.Add(1)
		go s.keepAlive()
	}
}

// neverForwarded are headers that describe one HTTP hop or the WebSocket handshake, or carry
// credentials; they are never forwarded as metadata.
var neverForwarded = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true, "proxy-authorization": true,
	"proxy-connection": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"host": true, "content-length": true, "content-type": true, "user-agent": true,
	"authorization": true, "cookie": true, "origin": true,
}

func (o *securityOptions) validate() error {
	for i, h := range o.headers {
		h = strings.ToLower(strings.TrimSpace(h))
		o.headers[i] = h
		switch {
		case !validMDKey(h):
			return optionErr("WithForwardHeaders", "", "header %q is not a valid header name", h)
		case neverForwarded[h], strings.HasPrefix(h, "sec-websocket-"), strings.HasPrefix(h, "grpc-"),
			strings.HasPrefix(h, mdReserved), strings.HasSuffix(h, "-bin"):
			return optionErr("WithForwardHeaders", "", "header %q cannot be forwarded", h)
		}
	}
	for _, c := range o.claims {
		if !validMDKey(strings.ToLower(c)) {
			return optionErr("WithForwardClaims", "", "claim %q: only letters, digits, '-', '_' and '.' can be forwarded", c)
		}
	}
	if slices.Contains(o.permissions, nil) {
		return optionErr("WithPermissions", "", "a permission must not be nil")
	}
	for _, p := range o.origins {
		if _, err := parseOriginPattern(p); err != nil {
			return &OptionError{Option: "WithAllowedOrigins", Err: err}
		}
	}
	switch {
	case o.rate < 0:
		return optionErr("WithRateLimit", "perSecond", "must not be negative, got %v", o.rate)
	case o.rate > 0 && o.burst < 1:
		return optionErr("WithRateLimit", "burst", "must be at least 1 when the rate is limited, got %d", o.burst)
	case o.maxConns < 0:
		return optionErr("WithMaxConnections", "", "must not be negative, got %d", o.maxConns)
	case o.handshakeTimeout <= 0:
		return optionErr("WithHandshakeTimeout", "", "must be positive, got %s", o.handshakeTimeout)
	case o.expiryMargin < 0:
		return optionErr("WithTokenExpiryMargin", "", "must not be negative, got %s", o.expiryMargin)
	case o.pingInterval < 0:
		return optionErr("WithKeepAlive", "interval", "must not be negative, got %s", o.pingInterval)
	case o.idleTimeout < 0:
		return optionErr("WithKeepAlive", "idle", "must not be negative, got %s", o.idleTimeout)
	case o.pingInterval > 0 && o.idleTimeout <= o.pingInterval:
		return optionErr("WithKeepAlive", "idle", "the idle timeout %s must be longer than the ping interval %s", o.idleTimeout, o.pingInterval)
	}
	return nil
}

// validMDKey reports whether k is a lower-case gRPC metadata key.
func validMDKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// WithAuthenticator verifies the token a client sends at the handshake (Authorization:
// Bearer header, token query parameter, the WithTokenCookie cookie, or a bearer.<token>
// subprotocol, in that order). A connection without a token is anonymous; one with a token
// the authenticator refuses gets HTTP 401 and no WebSocket. Default: none; tokens are
// ignored and every connection is anonymous. Package jwtauth is the bridge's JWT
// authenticator.
func WithAuthenticator(a Authenticator) Option {
	return optionFunc(func(o *options) { o.security.auth = a })
}

// WithTokenCookie also reads the token from the cookie of that name. Default "": no cookie.
func WithTokenCookie(name string) Option {
	return optionFunc(func(o *options) { o.security.cookie = name })
}

// WithTokenExpiryMargin closes a connection with 4001 that long before its token expires
// (a token expiring within the margin is refused at the handshake). Default 0: at expiry;
// must not be negative.
func WithTokenExpiryMargin(d time.Duration) Option {
	return optionFunc(func(o *options) { o.security.expiryMargin = d })
}

// WithForwardClaims forwards these claims of the token to the backends, JSON-encoded, as
// metadata x-bridge-claim-<name>. The subject is always forwarded as x-bridge-subject.
// A name holds only letters, digits, '-', '_' and '.'. Default: none.
func WithForwardClaims(names ...string) Option {
	return optionFunc(func(o *options) { o.security.claims = append(o.security.claims, names...) })
}

// WithForwardHeaders forwards these handshake headers to the backends as metadata of the
// same (lower-case) name. Hop-by-hop, WebSocket, credential (Authorization, Cookie) and
// x-bridge-* headers are refused. Default: none.
func WithForwardHeaders(names ...string) Option {
	return optionFunc(func(o *options) { o.security.headers = append(o.security.headers, names...) })
}

// WithForwardToken forwards the raw token to the backends as metadata
// "authorization: Bearer <token>", however the client sent it. Default: false.
func WithForwardToken(on bool) Option {
	return optionFunc(func(o *options) { o.security.forwardToken = on })
}

// WithPolicy sets the configured permissions (see Policy). Default: allow any.
func WithPolicy(p Policy) Option {
	return optionFunc(func(o *options) { o.security.policy = p })
}

// WithPermissions adds permissions that every request, subscription and event must pass
// besides the configured ones. None may be nil. Default: none.
func WithPermissions(ps ...Permission) Option {
	return optionFunc(func(o *options) { o.security.permissions = append(o.security.permissions, ps...) })
}

// WithAllowedOrigins accepts browser handshakes from these origins besides the bridge's
// own. A pattern is an origin ("https://app.example.com", matched exactly), a host with an
// optional port ("app.example.com:8443", any scheme), a host wildcard ("*.example.com":
// subdomains at any depth, not example.com itself), "null", or "*" for any origin.
// Default: only the bridge's own origin (the Origin's host equals the request's Host);
// a handshake without Origin (not from a browser) is always accepted.
func WithAllowedOrigins(patterns ...string) Option {
	return optionFunc(func(o *options) { o.security.origins = append(o.security.origins, patterns...) })
}

// WithRateLimit limits each connection to perSecond messages with bursts of burst; a
// message past the limit is answered 429 ["Too many requests."]. perSecond 0 disables the
// limit. Default 100 per second, burst 500; perSecond must not be negative, and burst must be
// at least 1 when perSecond is not 0.
func WithRateLimit(perSecond float64, burst int) Option {
	return optionFunc(func(o *options) { o.security.rate, o.security.burst = perSecond, burst })
}

// WithMaxConnections limits the WebSocket connections of the Server; a handshake past the
// limit gets HTTP 503. 0 disables the limit. Default 10000; must not be negative.
func WithMaxConnections(n int) Option {
	return optionFunc(func(o *options) { o.security.maxConns = n })
}

// WithHandshakeTimeout bounds writing the handshake response. Reading the request is the
// http.Server's: set its ReadHeaderTimeout too. Default 10s; must be positive.
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.security.handshakeTimeout = d })
}

// WithKeepAlive pings every connection each interval and closes a connection from which
// nothing (no frame, no pong) arrived for idle. An interval of 0 sends no pings; an idle of
// 0 never closes. Default 30s and 75s; neither may be negative, and with pings idle must be
// longer than interval.
func WithKeepAlive(interval, idle time.Duration) Option {
	return optionFunc(func(o *options) { o.security.pingInterval, o.security.idleTimeout = interval, idle })
}
