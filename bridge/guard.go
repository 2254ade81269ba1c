package bridge

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// originPattern is one WithAllowedOrigins entry.
type originPattern struct {
	any      bool
	null     bool
	scheme   string // "" for any scheme
	host     string // lower-case host[:port]; for a wildcard, the suffix ".example.com"
	wildcard bool
}

func parseOriginPattern(p string) (originPattern, error) {
	bad := func() (originPattern, error) {
		return originPattern{}, fmt.Errorf("allowed origin %q: want https://host[:port], host[:port], *.domain, null or *", p)
	}
	p = strings.ToLower(strings.TrimSpace(p))
	switch p {
	case "*":
		return originPattern{any: true}, nil
	case "null":
		return originPattern{null: true}, nil
	}
	var o originPattern
	host := p
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
		if scheme == "" {
			return bad()
		}
		o.scheme, host = scheme, strings.TrimSuffix(rest, "/")
	}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		o.wildcard, host = true, "."+rest
		if rest == "" {
			return bad()
		}
	}
	if host == "" || strings.ContainsAny(host, "/?#@* ") {
		return bad()
	}
	o.host = host
	return o, nil
}

func (o originPattern) match(scheme, host string) bool {
	if o.scheme != "" && o.scheme != scheme {
		return false
	}
	if o.wildcard {
		return strings.HasSuffix(host, o.host)
	}
	return host == o.host
}

// checkOrigin is the upgrader's CheckOrigin: no Origin (not a browser) or the bridge's own
// origin, else an allowed one.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return true
	}
	if len(origin) > 1 {
		return false
	}
	if origin[0] == "null" {
		for _, p := range s.sec.origins {
			if p.null || p.any {
				return true
			}
		}
		return false
	}
	u, err := url.Parse(origin[0])
	if err != nil || u.Scheme == "" || u.Host == "" {
		return false
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) {
		return true
	}
	for _, p := range s.sec.origins {
		if p.any || !p.null && p.match(scheme, host) {
			return true
		}
	}
	return false
}

// admit reserves a connection slot; false when the Server is at its limit.
func (s *Server) admit() bool {
	n := s.sec.open.Add(1)
	if max := s.opts.security.maxConns; max > 0 && n > int64(max) {
		s.sec.open.Add(-1)
		return false
	}
	return true
}

func (s *Server) release() { s.sec.open.Add(-1) }

// newLimiter is a connection's message rate limiter; nil when unlimited.
func (s *Server) newLimiter() *rate.Limiter {
	if s.opts.security.rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(s.opts.security.rate), s.opts.security.burst)
}

// extendRead pushes the idle deadline back, unless the connection is closing: then the
// close handshake's own deadline stands.
func (c *conn) extendRead() {
	idle := c.srv.opts.security.idleTimeout
	if idle <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		_ = c.nc.SetReadDeadline(time.Now().Add(idle))
	}
}

// keepAlive pings every connection each interval from one goroutine for the whole Server,
// so that an idle connection costs no goroutine and no timer of its own. A connection that
// does not answer misses its read deadline and ends.
func (s *Server) keepAlive() {
	defer s.sec.bg.Done()
	interval := s.opts.security.pingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	const workers = 16
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		// Pings go out in parallel so that a few clients with full TCP buffers delay no one.
		timeout := min(interval, s.opts.writeTimeout)
		work := make(chan *conn)
		var wg sync.WaitGroup
		for range min(workers, len(conns)) {
			wg.Go(func() {
				for c := range work {
					if !c.isClosing() {
						_ = c.writeControl(websocket.PingMessage, nil, timeout)
					}
				}
			})
		}
		for _, c := range conns {
			work <- c
		}
		close(work)
		wg.Wait()
	}
}
