package bridge

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Handshake refusals are logged at info so that a developer whose page is refused (a
// cross-origin page, a stale token) finds the reason on the server. Each kind of refusal has
// a token bucket of its own, so that a flood of bad handshakes costs a few lines a second
// and one kind cannot hide another; the lines it suppressed are counted in the next one.
const (
	refusalBurst    = 10          // lines logged at once per kind
	refusalInterval = time.Second // then one line per interval per kind
)

// Kinds of refused handshakes, as logged in "refusal".
const (
	refusedOrigin      = "origin"      // 403
	refusedCredentials = "credentials" // 401
	refusedLimit       = "connections" // 503: -max-connections reached
	refusedDraining    = "draining"    // 503: shutting down
)

type refusalLog struct {
	now     func() time.Time // time.Now; tests move it
	mu      sync.Mutex
	buckets map[string]*refusalBucket
}

type refusalBucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// allow takes a token of kind's bucket. ok reports whether to log; suppressed is how many
// refusals of that kind were not logged since the last line.
func (l *refusalLog) allow(kind string) (ok bool, suppressed int) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	t := now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*refusalBucket{}
	}
	b := l.buckets[kind]
	if b == nil {
		b = &refusalBucket{tokens: refusalBurst, last: t}
		l.buckets[kind] = b
	}
	if t.After(b.last) {
		b.tokens = min(refusalBurst, b.tokens+float64(t.Sub(b.last))/float64(refusalInterval))
		b.last = t
	}
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}

// logRefusal logs a refused handshake, rate-limited per kind. reason never holds a token:
// the credential error is the authenticator's, and a token it quotes is cut out.
func (s *Server) logRefusal(r *http.Request, status int, kind, reason string) {
	s.metrics.refused(kind) // every refusal, logged or not
	ok, suppressed := s.sec.refused.allow(kind)
	if !ok {
		return
	}
	if kind == refusedCredentials {
		if tok, err := credentials(r, s.opts.security.cookie); err == nil && tok != "" {
			reason = strings.ReplaceAll(reason, tok, "<token>")
		}
	}
	attrs := []any{
		slog.String("refusal", kind),
		slog.Int("status", status),
		slog.String("reason", reason),
		slog.String("remote", r.RemoteAddr),
		slog.String("origin", r.Header.Get("Origin")),
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	s.opts.logger.Info("handshake refused", attrs...)
}
