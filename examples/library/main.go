// Command library serves the example AIP-style LibraryService (package library) on gRPC with
// server reflection, as an existing service would be: the bridge is put in front of it with
//
//	bridge -backend 127.0.0.1:9092 -http-rules proto/library/v1/library_http.yaml
//
// Flags (environment variable in brackets): -grpc-addr [LIBRARY_GRPC_ADDR], -db [LIBRARY_DB].
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wsbridge/wsbridge/examples/library/library"
)

// shutdownGrace bounds how long in-flight calls may take on SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

func main() {
	fs := flag.NewFlagSet("library", flag.ContinueOnError)
	addr := fs.String("grpc-addr", envOr("LIBRARY_GRPC_ADDR", "127.0.0.1:9092"), "gRPC listen address [LIBRARY_GRPC_ADDR]")
	db := fs.String("db", envOr("LIBRARY_DB", "data/library.db"), "SQLite database file, created if missing [LIBRARY_DB]")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *db, log); err != nil {
		fmt.Fprintln(os.Stderr, "library:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func run(addr, db string, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-grpc-addr: %w", err)
	}
	srv, err := library.Start(library.Config{GRPCListener: lis, DBPath: db, Logger: log})
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	log.Info("library serving", "grpc", lis.Addr().String(), "db", db)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
