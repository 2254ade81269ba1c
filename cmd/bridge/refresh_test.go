package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

// TestRefreshIntervalFlag: -refresh-interval reaches the bridge, which then asks the
// backend's reflection service again after its first discovery. The flag used to be parsed
// and dropped.
func TestRefreshIntervalFlag(t *testing.T) {
	var reflections atomic.Int64
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend, err := polls.Start(context.Background(), polls.Config{
		GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "polls.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		StreamInterceptor: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if strings.Contains(info.FullMethod, "ServerReflection") {
				reflections.Add(1)
			}
			return h(srv, ss)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Stop()

	c, err := parseFlags([]string{"-backend", lis.Addr().String(), "-refresh-interval", "10ms"})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.options(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := br.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	first := reflections.Load()
	for reflections.Load() <= first {
		select {
		case <-ctx.Done():
			t.Fatalf("no discovery after the first (%d reflection streams): -refresh-interval was not applied", first)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
