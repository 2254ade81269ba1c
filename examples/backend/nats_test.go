package main

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// A NATS server without JetStream is refused at start, in one line naming the flag and
// saying what to change.
func TestRunNATSWithoutJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	cfg := config{grpcAddr: freeAddr(t), natsURL: ns.ClientURL(), db: filepath.Join(t.TempDir(), "polls.db")}
	err = run(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "-nats-url: ") || !strings.Contains(err.Error(), "nats-server with -js") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("run = %v, want one line naming -nats-url and JetStream", err)
	}
}
