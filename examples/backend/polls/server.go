// Package polls is the reference backend of the wsbridge bridge: the
// QuestionService and ChoiceService of proto/polls/v1 on an SQLite file,
// publishing every change on a pubsub.Broker for their Subscribe RPCs.
//
// Start runs it in-process, which is how end-to-end tests use it:
//
//	lis, _ := net.Listen("tcp", "127.0.0.1:0")
//	srv, err := polls.Start(ctx, polls.Config{GRPCListener: lis, DBPath: filepath.Join(dir, "polls.db")})
//	...
//	srv.Stop()
//	// a restart: the same address and database file
//	lis, _ = net.Listen("tcp", lis.Addr().String())
//	srv, err = polls.Start(ctx, polls.Config{GRPCListener: lis, DBPath: filepath.Join(dir, "polls.db")})
package polls

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// Config configures a Server.
type Config struct {
	// GRPCListener is where the gRPC services are served. Required; the
	// Server closes it when it stops.
	GRPCListener net.Listener
	// HTTPListener, if not nil, is where the REST/JSON API is served; the
	// Server closes it when it stops.
	HTTPListener net.Listener
	// DBPath is the SQLite database file, created if missing. Its
	// directory must exist. Required.
	DBPath string
	// Broker carries the events. Nil means a new MemoryBroker, which the
	// Server closes when it stops; a Broker given here is the caller's to
	// close, after the Server has stopped, so in-flight writes still
	// publish.
	Broker pubsub.Broker
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// UnaryInterceptor and StreamInterceptor, if not nil, run before every
	// unary call and stream (reflection and health included); tests use them
	// to see what reaches the backend.
	UnaryInterceptor  grpc.UnaryServerInterceptor
	StreamInterceptor grpc.StreamServerInterceptor
}

// Server is a running backend.
type Server struct {
	grpc      *grpc.Server
	http      *http.Server // nil without REST
	health    *health.Server
	store     *Store
	broker    pubsub.Broker
	ownBroker bool // made by Start, so closed on stop
	log       *slog.Logger
	grpcAddr  net.Addr
	httpAddr  net.Addr
	stopping  context.Context // done once a stop begins: ends every stream
	beginStop context.CancelFunc
	forceOnce sync.Once
	force     chan struct{} // closed by Stop: no more grace
	stopOnce  sync.Once
	stopped   chan struct{} // closed once everything is released
	serving   sync.WaitGroup

	mu  sync.Mutex
	err error // the first serving failure
}

// Start opens the database and serves the services (plus gRPC health and
// reflection) on cfg.GRPCListener and, if set, REST on cfg.HTTPListener,
// until Stop or GracefulStop. ctx bounds the start-up only. If Start fails
// it closes the listeners.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.GRPCListener == nil {
		return nil, errors.New("polls: Config.GRPCListener is required")
	}
	s := &Server{
		grpcAddr: cfg.GRPCListener.Addr(),
		broker:   cfg.Broker,
		log:      cfg.Logger,
		force:    make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.stopping, s.beginStop = context.WithCancel(context.Background())
	fail := func(err error) (*Server, error) {
		cfg.GRPCListener.Close()
		if cfg.HTTPListener != nil {
			cfg.HTTPListener.Close()
		}
		if s.ownBroker {
			s.broker.Close()
		}
		if s.store != nil {
			s.store.Close()
		}
		return nil, err
	}

	if s.broker == nil {
		mb, err := pubsub.NewMemoryBroker()
		if err != nil {
			return fail(err)
		}
		s.broker, s.ownBroker = mb, true
	}
	var err error
	if s.store, err = OpenStore(ctx, cfg.DBPath, s.broker, s.log); err != nil {
		return fail(err)
	}
	qs, cs := NewQuestionService(s.store), NewChoiceService(s.store)

	streamInts := []grpc.StreamServerInterceptor{s.endStreamsOnStop}
	if cfg.StreamInterceptor != nil {
		streamInts = append(streamInts, cfg.StreamInterceptor)
	}
	var unaryInts []grpc.UnaryServerInterceptor
	if cfg.UnaryInterceptor != nil {
		unaryInts = append(unaryInts, cfg.UnaryInterceptor)
	}
	s.grpc = grpc.NewServer(
		grpc.ChainStreamInterceptor(streamInts...),
		grpc.ChainUnaryInterceptor(unaryInts...),
		// Stop waits for the cancelled handlers, so none runs on after the
		// database is closed.
		grpc.WaitForHandlers(true),
	)
	pollsv1.RegisterQuestionServiceServer(s.grpc, qs)
	pollsv1.RegisterChoiceServiceServer(s.grpc, cs)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.SetServing(true)
	reflection.Register(s.grpc)

	if cfg.HTTPListener != nil {
		h, err := NewRESTHandler(ctx, qs, cs)
		if err != nil {
			return fail(err)
		}
		s.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		s.httpAddr = cfg.HTTPListener.Addr()
		s.serve("http", func() error { return s.http.Serve(cfg.HTTPListener) })
	}
	s.serve("grpc", func() error { return s.grpc.Serve(cfg.GRPCListener) })
	return s, nil
}

// GRPCAddr is the address the gRPC services are served on.
func (s *Server) GRPCAddr() net.Addr { return s.grpcAddr }

// HTTPAddr is the address of the REST API, nil if it is not served.
func (s *Server) HTTPAddr() net.Addr { return s.httpAddr }

// SetServing reports SERVING, or NOT_SERVING, on the gRPC health service for the
// whole server and each service: a bridge (or any client doing gRPC health checking)
// then sends this replica calls, or stops. A stop reports NOT_SERVING for good.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !serving {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range []string{"", pollsv1.QuestionService_ServiceDesc.ServiceName, pollsv1.ChoiceService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(name, st)
	}
}

// serve runs fn until it returns; an error before a stop stops the Server.
func (s *Server) serve(name string, fn func() error) {
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		err := fn()
		if err == nil || errors.Is(err, http.ErrServerClosed) || s.stopping.Err() != nil {
			return
		}
		s.mu.Lock()
		s.err = cmp.Or(s.err, fmt.Errorf("polls: serve %s: %w", name, err))
		s.mu.Unlock()
		s.log.Error("serve", "server", name, "err", err)
		go s.Stop()
	}()
}

// Wait blocks until the Server has stopped and returns why, if it stopped
// because serving failed rather than because of Stop or GracefulStop.
func (s *Server) Wait() error {
	<-s.stopped
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop stops the Server at once: it cancels in-flight RPCs and REST
// requests and closes the database. Calling it during a GracefulStop cuts
// that short.
func (s *Server) Stop() {
	s.forceOnce.Do(func() { close(s.force) })
	s.GracefulStop(context.Background())
}

// GracefulStop reports NOT_SERVING on the health service, ends the Subscribe
// streams with UNAVAILABLE (so that the bridge resubscribes elsewhere), lets
// in-flight calls and REST requests finish until ctx is done and then stops
// like Stop. It returns ctx's error if it had to cut calls short.
func (s *Server) GracefulStop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		s.beginStop()
		var wg sync.WaitGroup
		wg.Go(func() { err = graceful(ctx, s.force, s.grpc.GracefulStop, s.grpc.Stop) })
		if s.http != nil {
			wg.Go(func() {
				graceful(ctx, s.force, func() { s.http.Shutdown(context.Background()) }, func() { s.http.Close() })
			})
		}
		wg.Wait()
		s.serving.Wait()
		if s.ownBroker {
			s.broker.Close()
		}
		s.store.Close()
		close(s.stopped)
	})
	<-s.stopped
	return err
}

// graceful runs stop and, should ctx end or force close first, hardStop.
func graceful(ctx context.Context, force <-chan struct{}, stop, hardStop func()) error {
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	case <-force:
	}
	hardStop()
	<-done
	return cmp.Or(ctx.Err(), context.Canceled)
}

// endStreamsOnStop ends a stream when the Server begins to stop: Subscribe
// (and health Watch) streams never end on their own and would hold up
// grpc.Server.GracefulStop.
func (s *Server) endStreamsOnStop(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	err := handler(srv, ctxStream{ss, ctx})
	if s.stopping.Err() != nil {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return err
}

// ctxStream is a ServerStream with another context.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }
