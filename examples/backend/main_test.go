package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRun serves until the context ends (as on SIGINT), then returns nil.
func TestRun(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}

	for name, natsURL := range map[string]string{"memory": "", "nats": ns.ClientURL()} {
		t.Run(name, func(t *testing.T) {
			cfg := config{grpcAddr: freeAddr(t), httpAddr: freeAddr(t), natsURL: natsURL,
				db: filepath.Join(t.TempDir(), "new", "dir", "polls.db")}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()

			conn, err := grpc.NewClient(cfg.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			hc := healthpb.NewHealthClient(conn)
			for {
				resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "polls.v1.QuestionService"}, grpc.WaitForReady(true))
				if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("run: %v", err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("run did not return")
			}
		})
	}
}
