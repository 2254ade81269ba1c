package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
	"github.com/wsbridge/wsbridge/pubsub/pubsubtest"
)

const waitTimeout = pubsubtest.Timeout

// startServer runs an embedded NATS server until the test ends.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

func connect(t *testing.T, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// replicas returns two brokers on separate connections to one server, as
// two replicas of a backend would have.
func replicas(t *testing.T, opts ...pubsub.Option) (*natsbroker.Broker, *natsbroker.Broker) {
	t.Helper()
	s := startServer(t)
	return newBroker(t, connect(t, s), opts...), newBroker(t, connect(t, s), opts...)
}

func newBroker(t *testing.T, nc *nats.Conn, opts ...pubsub.Option) *natsbroker.Broker {
	t.Helper()
	b, err := natsbroker.New(context.Background(), nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

var (
	subscribe = pubsubtest.Subscribe
	publish   = pubsubtest.Publish
	next      = pubsubtest.Next
	ended     = pubsubtest.Ended
	endedWith = pubsubtest.EndedWith
	barrier   = pubsubtest.Barrier
)

func sameEvent(t *testing.T, got, want pubsub.Event) {
	t.Helper()
	if got.Action != want.Action || got.PK != want.PK || string(got.Data) != string(want.Data) {
		t.Fatalf("got event %+v, want %+v", got, want)
	}
}
