// Command backend is wsbridge's reference example backend: the polls gRPC
// services, and the same as REST/JSON, on an SQLite file (package polls).
//
// Every flag has an environment variable; see backend -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/examples/backend/polls"
	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
)

// shutdownGrace bounds how long in-flight calls may take on SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

func main() {
	cfg, err := parseConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then stops gracefully.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(cfg.db), 0o755); err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	var broker pubsub.Broker // nil: the server's own in-memory broker
	if cfg.natsURL != "" {
		nc, err := nats.Connect(cfg.natsURL, nats.Name("wsbridge-example-backend"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("-nats-url: %w", err)
		}
		defer func() {
			nc.FlushTimeout(time.Second) // the last events
			nc.Close()
		}()
		nb, err := natsbroker.New(ctx, nc)
		if err != nil {
			return fmt.Errorf("-nats-url: %w", err)
		}
		defer nb.Close()
		broker = nb
	}

	glis, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		return fmt.Errorf("-grpc-addr: %w", err)
	}
	var hlis net.Listener
	if cfg.httpAddr != "" {
		if hlis, err = net.Listen("tcp", cfg.httpAddr); err != nil {
			glis.Close()
			return fmt.Errorf("-http-addr: %w", err)
		}
	}
	srv, err := polls.Start(ctx, polls.Config{GRPCListener: glis, HTTPListener: hlis, DBPath: cfg.db, Broker: broker, Logger: log})
	if err != nil {
		return err
	}
	log.Info("serving", "grpc", srv.GRPCAddr(), "http", srv.HTTPAddr(), "db", cfg.db, "nats", cfg.natsURL)

	failed := make(chan error, 1)
	go func() { failed <- srv.Wait() }()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.GracefulStop(sctx); err != nil {
		log.Warn("graceful stop cut short", "err", err)
	}
	log.Info("stopped")
	return nil
}
