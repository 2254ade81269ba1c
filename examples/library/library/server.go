// Package library is an example of an existing gRPC service written in Google's
// resource-oriented style (AIP-131 to AIP-136), with no bridge options: the LibraryService of
// proto/library/v1, shelves and their books on an SQLite file. The bridge serves it as it is.
//
// Start runs it in-process, which is how end-to-end tests use it:
//
//	lis, _ := net.Listen("tcp", "127.0.0.1:0")
//	srv, err := library.Start(library.Config{GRPCListener: lis, DBPath: filepath.Join(dir, "library.db")})
//	...
//	srv.Stop()
package library

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	libraryv1 "github.com/wsbridge/wsbridge/proto/library/v1"
)

// Config configures a Server.
type Config struct {
	// GRPCListener is where the service is served. Required; the Server closes it when it stops.
	GRPCListener net.Listener
	// DBPath is the SQLite database file, created if missing. Required.
	DBPath string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is a running library backend.
type Server struct {
	grpc  *grpc.Server
	store *Store
	done  chan struct{}
}

// Start opens the database and serves the LibraryService, server reflection and health on
// cfg.GRPCListener until Stop.
func Start(cfg Config) (*Server, error) {
	if cfg.GRPCListener == nil {
		return nil, errors.New("library: GRPCListener is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	st, err := OpenStore(cfg.DBPath)
	if err != nil {
		cfg.GRPCListener.Close()
		return nil, err
	}
	s := &Server{grpc: grpc.NewServer(), store: st, done: make(chan struct{})}
	libraryv1.RegisterLibraryServiceServer(s.grpc, &service{store: st})
	reflection.Register(s.grpc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, hs)
	go func() {
		defer close(s.done)
		if err := s.grpc.Serve(cfg.GRPCListener); err != nil {
			log.Error("library: serve", "err", err)
		}
	}()
	return s, nil
}

// Shutdown stops accepting calls and waits for those under way until ctx is done, then
// stops at once; it closes the database.
func (s *Server) Shutdown(ctx context.Context) {
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		<-stopped
	}
	<-s.done
	s.store.Close()
}

// Stop stops at once, ending calls under way, and closes the database.
func (s *Server) Stop() {
	s.grpc.Stop()
	<-s.done
	s.store.Close()
}
