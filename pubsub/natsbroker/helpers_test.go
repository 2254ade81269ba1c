package natsbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
)

const waitTimeout = 5 * time.Second

// startServer runs an embedded NATS server until the test ends.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
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
func replicas(t *testing.T, opts ...natsbroker.Option) (*natsbroker.Broker, *natsbroker.Broker) {
	t.Helper()
	s := startServer(t)
	return newBroker(t, connect(t, s), opts...), newBroker(t, connect(t, s), opts...)
}

func newBroker(t *testing.T, nc *nats.Conn, opts ...natsbroker.Option) *natsbroker.Broker {
	t.Helper()
	b := natsbroker.New(nc, opts...)
	t.Cleanup(func() { b.Close() })
	return b
}

func subscribe(t *testing.T, b pubsub.Broker, topic string) pubsub.Subscription {
	t.Helper()
	s, err := b.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", topic, err)
	}
	t.Cleanup(s.Close)
	return s
}

func publish(t *testing.T, b pubsub.Broker, topic string, evs ...pubsub.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := b.Publish(context.Background(), topic, ev); err != nil {
			t.Fatalf("Publish(%q, %v): %v", topic, ev, err)
		}
	}
}

func next(t *testing.T, s pubsub.Subscription) pubsub.Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("subscription ended early: %v", s.Err())
		}
		return ev
	case <-time.After(waitTimeout):
		t.Fatal("no event within timeout")
	}
	panic("unreachable")
}

// ended drains s until its channel closes and returns why it ended.
func ended(t *testing.T, s pubsub.Subscription) error {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-s.Events():
			if !ok {
				return s.Err()
			}
		case <-timeout:
			t.Fatal("subscription did not end")
		}
	}
}

func endedWith(t *testing.T, s pubsub.Subscription, want error) {
	t.Helper()
	if err := ended(t, s); !errors.Is(err, want) {
		t.Fatalf("Err() = %v, want %v", err, want)
	}
}

func quiet(t *testing.T, s pubsub.Subscription) {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		t.Fatalf("unexpected receive %v (open %v)", ev, ok)
	case <-time.After(100 * time.Millisecond):
	}
}

func sameEvent(t *testing.T, got, want pubsub.Event) {
	t.Helper()
	if got.Action != want.Action || got.PK != want.PK || string(got.Data) != string(want.Data) {
		t.Fatalf("got event %+v, want %+v", got, want)
	}
}
