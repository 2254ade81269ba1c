package bridge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace"
)

// Server is the bridge: an http.Handler serving the WebSocket API at /ws plus /healthz and
// /readyz, forwarding to gRPC backends. Create it with New and stop it with Shutdown.
type Server struct {
	opts     options
	backends []*backendConn
	catalog  atomic.Pointer[catalog]
	upgrader websocket.Upgrader
	mux      *http.ServeMux
	hub      *hub
	expiries expiryQueue  // closes connections whose token expired (expiry.go)
	sec      security     // authentication and hardening state (security_option.go)
	pages    pageDefaults // list paging, from the options

	metrics        *metrics     // metrics.go
	metricsHandler http.Handler // /metrics
	tracer         trace.Tracer // nil: tracing off (tracing.go)

	ctx        context.Context // the server's lifetime; cancelled by Shutdown
	cancel     context.CancelFunc
	calls      callWorkers   // the goroutines backend calls run on (call.go)
	discovered chan struct{} // closed when the first discovery ends, successfully or not
	loopDone   chan struct{} // closed when the discovery loop, refreshes included, has ended

	mu       sync.Mutex
	conns    map[*conn]struct{}
	nconns   atomic.Int64 // len(conns), for /metrics without mu
	draining atomic.Bool  // set under mu, so serveWS's check under mu is consistent with conns
	connWG   sync.WaitGroup
}

// New dials the backends (lazily: a backend that is down is not an error) and starts
// discovering their services in the background. /readyz answers 200 once that succeeded.
func New(opts ...Option) (*Server, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts:       o,
		pages:      pagesOf(&o),
		conns:      make(map[*conn]struct{}),
		discovered: make(chan struct{}),
		calls:      newCallWorkers(),
		loopDone:   make(chan struct{}),
	}
	for _, b := range o.backends {
		// Tracing's otelgrpc handler (tracing.go) joins the backend's own dial options.
		b.DialOptions = append(slices.Clip(b.DialOptions), o.tracingDialOptions()...)
		cc, sc, err := dialBackend(b) // dial.go
		if err != nil {
			s.closeBackends()
			return nil, errors.New("backend " + b.Target + ": " + err.Error())
		}
		s.backends = append(s.backends, &backendConn{cfg: b, conn: cc, sc: sc})
	}
	// gorilla does the handshake only (its buffer sizes left 0, it reuses net/http's and
	// allocates none); the connection's frames are read and written by the bridge.
	// CheckOrigin and HandshakeTimeout: initSecurity.
	s.upgrader = websocket.Upgrader{}
	s.hub = newHub(s)
	s.metrics = newMetrics(s)
	s.metricsHandler = newMetricsHandler(s.metrics)
	if o.tracerProvider != nil {
		s.tracer = o.tracerProvider.Tracer(tracerName)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/ws", s.serveWS)
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.draining.Load() {
			// First sign of a shutdown, so a load balancer stops sending new clients.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("discovering backends\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s.mux.HandleFunc("/metrics", s.serveMetrics)
	s.addToolRoutes() // /schema and /debug/ (debug.go)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.initSecurity()
	go s.discoverLoop(s.ctx)
	return s, nil
}

// ServeHTTP serves /ws, /healthz and /readyz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Ready reports whether the backends' services have been discovered and the bridge is not
// shutting down.
func (s *Server) Ready() bool { return s.catalog.Load() != nil && !s.draining.Load() }

// isDraining is read on every request, so it takes no lock.
func (s *Server) isDraining() bool { return s.draining.Load() }

// WaitReady blocks until discovery succeeded or ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	select {
	case <-s.discovered:
		if s.catalog.Load() != nil {
			return nil
		}
		return errors.New("bridge: server closed before discovery succeeded")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.logRefusal(r, http.StatusServiceUnavailable, refusedDraining, "the bridge is shutting down")
		refuseHandshake(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	// Before any work for the client: origin, connection limit, then credentials.
	if !s.checkOrigin(r) {
		s.logRefusal(r, http.StatusForbidden, refusedOrigin, "origin not allowed")
		refuseHandshake(w, http.StatusForbidden, "origin not allowed")
		return
	}
	if !s.admit() {
		s.logRefusal(r, http.StatusServiceUnavailable, refusedLimit, "too many connections")
		refuseHandshake(w, http.StatusServiceUnavailable, "too many connections")
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.release()
		}
	}()
	hs, err := s.handshake(r)
	if err != nil {
		s.logRefusal(r, http.StatusUnauthorized, refusedCredentials, err.Error())
		refuseHandshake(w, http.StatusUnauthorized, "invalid credentials")
		return
	}
	var respHeader http.Header
	if hs.protocol != "" {
		respHeader = http.Header{"Sec-Websocket-Protocol": {hs.protocol}}
	}
	ws, err := s.upgrader.Upgrade(w, r, respHeader)
	if err != nil {
		return // the upgrader has answered the client
	}
	c := newConn(s, ws.NetConn())
	c.initObs(r) // tracing.go: id, logger, handshake traceparent
	c.setIdentity(hs)
	s.mu.Lock()
	if s.draining.Load() {
		// Shutdown started during the upgrade and did not see this connection.
		s.mu.Unlock()
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
		c.teardown()
		return
	}
	s.conns[c] = struct{}{}
	s.nconns.Add(1)
	s.connWG.Add(1)
	s.mu.Unlock()
	// The read loop runs on a goroutine of its own so that this handler returns and
	// net/http lets go of what it kept for the request (its 4 KiB read and write buffers
	// among it): an idle connection then costs only the loop's small stack and the
	// connection's state. serve ends with connEnded.
	admitted = false // released by connEnded
	go c.serve()
}

// connEnded forgets a connection whose read loop ended and gives its slot back.
func (s *Server) connEnded(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.nconns.Add(-1)
	s.mu.Unlock()
	s.release()
	s.connWG.Done()
}

// Shutdown stops the bridge. At once /readyz answers 503 and new handshakes get HTTP 503,
// and every request a client sends from then on is answered 503 ["The bridge is shutting
// down."]; requests in flight finish (until ctx ends: then they are cancelled, unanswered,
// and Shutdown logs how many and returns ctx's error); then every connection is closed with
// 1001 (going away) and the backends are closed. A client has the close handshake's grace
// (1 s) plus the write timeout to take its close frame and answer; a connection still open
// then is closed without more waiting, so Shutdown returns at most that long after the
// requests ended or ctx did. Shutdown needs no help from the http.Server: keep it serving
// until Shutdown returns, and close its listener after, so that a reconnecting client meets
// a clear 503 rather than a refused TCP connection.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var drained, closed sync.WaitGroup
	var abandoned atomic.Int64
	for _, c := range conns {
		drained.Add(1)
		closed.Add(1)
		go func() {
			defer closed.Done()
			// Subscriptions still waiting for their backend are answered 503 now rather
			// than confirmed just before the close.
			s.hub.endConn(c, errShuttingDown)
			abandoned.Add(int64(c.drain(ctx)))
			drained.Done()
			c.closeAfterFlush(websocket.CloseGoingAway, "server shutting down")
		}()
	}
	drained.Wait()
	err := ctx.Err()
	if n := abandoned.Load(); n > 0 {
		s.opts.logger.Warn("shutdown: drain timed out; cancelling the requests still in flight", "requests", n)
	}
	// From here every connection is sent what it has queued and its close frame. A client
	// that reads is done within the grace; one that has read nothing for the write timeout is
	// gone, so whatever is still open then is closed (closeOpenConns), which ends its
	// writer, its read loop and its linger at once.
	limit := time.AfterFunc(closeGrace+s.opts.writeTimeout, s.closeOpenConns)
	defer limit.Stop()
	closed.Wait()
	s.cancel()
	s.hub.close()
	s.sec.bg.Wait()
	s.connWG.Wait()
	<-s.loopDone
	s.expiries.stop()
	s.closeBackends()
	return err
}

// closeOpenConns closes the network connection of every connection still open: the end of
// Shutdown's wait for close handshakes.
func (s *Server) closeOpenConns() {
	s.mu.Lock()
	open := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c.nc)
	}
	s.mu.Unlock()
	if len(open) > 0 {
		s.opts.logger.Warn("shutdown: closing the connections whose close handshake did not end within the grace and the write timeout", "connections", len(open), "grace", closeGrace, "write_timeout", s.opts.writeTimeout)
	}
	for _, nc := range open {
		// Under TLS, the socket itself: tls.Conn.Close would first write an alert, which
		// waits on a client that reads nothing.
		if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
			nc = tc.NetConn()
		}
		_ = nc.Close()
	}
}

func (s *Server) closeBackends() {
	for _, b := range s.backends {
		_ = b.conn.Close()
	}
}
