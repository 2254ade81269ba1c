package natsbroker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
	"github.com/wsbridge/wsbridge/pubsub/pubsubtest"
)

var subscribeSince = pubsubtest.SubscribeSince

func wantStart(t *testing.T, s pubsub.Subscription, offset string, recovered bool, replayed int) {
	t.Helper()
	if got := s.Start(); got.Offset != offset || got.Recovered != recovered || got.Replayed != replayed {
		t.Fatalf("Start() = %+v, want {Offset:%q Recovered:%v Replayed:%d}", got, offset, recovered, replayed)
	}
}

func upd(pk string) pubsub.Event {
	return pubsub.Event{Action: pubsub.ActionUpdate, PK: pk, Data: []byte("data of " + pk)}
}

// A subscription on one replica, resumed on the other from the last offset it saw, gets
// what was published in between, then the live events; events carry distinct offsets.
func TestResumeAcrossReplicas(t *testing.T) {
	a, b := replicas(t)
	s := subscribe(t, b, "t")
	publish(t, a, "t", upd("1"), upd("2"))
	first, last := next(t, s), next(t, s)
	if first.Offset == "" || first.Offset == last.Offset {
		t.Fatalf("offsets %q and %q: want two distinct offsets", first.Offset, last.Offset)
	}
	s.Close()
	publish(t, a, "t", upd("3"), upd("4"))
	publish(t, b, "other", upd("elsewhere")) // another topic in the same stream: not replayed

	r := subscribeSince(t, a, "t", pubsub.Filter{}, last.Offset)
	wantStart(t, r, last.Offset, true, 2)
	publish(t, b, "t", upd("5"))
	for _, w := range []string{"3", "4", "5"} {
		sameEvent(t, next(t, r), upd(w))
	}
	barrier(t, b, "t", r)
}

// The replay applies the filter, and Replayed counts what it kept.
func TestResumeFiltered(t *testing.T) {
	a, b := replicas(t)
	since := subscribe(t, b, "t").Start().Offset
	publish(t, a, "t", upd("1"), upd("2"), pubsub.Event{Action: pubsub.ActionDelete, PK: "1"}, upd("1"))
	r := subscribeSince(t, b, "t", pubsub.Filter{PK: "1", Actions: []string{pubsub.ActionUpdate}}, since)
	wantStart(t, r, since, true, 2)
	sameEvent(t, next(t, r), upd("1"))
	sameEvent(t, next(t, r), upd("1"))
	publish(t, a, "t", upd("2"), upd("1"))
	sameEvent(t, next(t, r), upd("1"))
}

// Start.Offset of a subscription that saw no event is a since that loses nothing, on an
// empty stream too.
func TestResumeFromStart(t *testing.T) {
	a, b := replicas(t)
	s := subscribe(t, b, "t")
	since := s.Start().Offset
	s.Close()
	publish(t, a, "t", upd("1"))
	r := subscribeSince(t, b, "t", pubsub.Filter{}, since)
	wantStart(t, r, since, true, 1)
	sameEvent(t, next(t, r), upd("1"))
}

// A since the stream no longer reaches back to, from another stream, or not an offset, starts
// live and says so, with the stream's latest position as its offset.
func TestResumeNotRecovered(t *testing.T) {
	a, b := replicas(t, pubsub.WithHistory(2))
	s := subscribe(t, b, "t")
	// One at a time: a history of 2 drops an event the live consumer has not fetched yet.
	var offs []string
	for _, pk := range []string{"1", "2", "3", "4"} {
		publish(t, a, "t", upd(pk))
		offs = append(offs, next(t, s).Offset)
	}
	latest := offs[3]
	_, elsewhere := replicas(t)
	o := subscribe(t, elsewhere, "t")
	publish(t, elsewhere, "t", upd("1"))
	foreign := next(t, o).Offset

	for _, since := range []string{offs[0], foreign, strings.TrimSuffix(latest, "4") + "9", "garbage", latest + "x"} {
		r := subscribeSince(t, b, "t", pubsub.Filter{}, since)
		wantStart(t, r, latest, false, 0)
		r.Close()
	}
	// The oldest since the history still covers replays the two events kept.
	r := subscribeSince(t, b, "t", pubsub.Filter{}, offs[1])
	wantStart(t, r, offs[1], true, 2)
	sameEvent(t, next(t, r), upd("3"))
	sameEvent(t, next(t, r), upd("4"))
}

// A stream deleted and created again numbers its events from 1 again: an offset of the old
// stream is not recovered, even where the new sequence has passed it.
func TestResumeAfterStreamRecreated(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	b := newBroker(t, nc)
	s := subscribe(t, b, "t")
	publish(t, b, "t", upd("1"))
	old := next(t, s).Offset
	b.Close()

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), "WSBRIDGE_EVENTS"); err != nil {
		t.Fatal(err)
	}
	// The server removes the old stream's files after it answers the delete; a stream created
	// before that can fail ("error creating store for stream"), so try until it is created.
	var again *natsbroker.Broker
	for deadline := time.Now().Add(20 * time.Second); again == nil; {
		nb, err := natsbroker.New(context.Background(), nc)
		if err == nil {
			again = nb
			t.Cleanup(func() { nb.Close() })
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish(t, again, "t", upd("2"), upd("3"))
	r := subscribeSince(t, again, "t", pubsub.Filter{}, old)
	if st := r.Start(); st.Recovered || st.Replayed != 0 || st.Offset == old {
		t.Fatalf("Start() = %+v after the stream was recreated, want not recovered", st)
	}
}

// The seam: a subscriber that keeps dropping its subscription and resuming, alternately on
// either replica, from the last offset it saw, while publishers on both never stop, sees
// every event exactly once, each publisher's in order.
func TestResumeSeamWhilePublishing(t *testing.T) {
	const each = 150
	a, b := replicas(t)
	brokers := []*natsbroker.Broker{a, b}
	s := subscribe(t, b, "t")
	var wg sync.WaitGroup
	for p, br := range brokers {
		wg.Go(func() {
			for i := range each {
				publish(t, br, "t", upd(pubsubtest.SeamPK(p, i)))
			}
		})
	}
	pubsubtest.ResumeSeam(t, s, len(brokers)*each, 23, func(k int, since string) pubsub.Subscription {
		return subscribeSince(t, brokers[k%2], "t", pubsub.Filter{}, since)
	})
	wg.Wait()
}

func TestOptionErrors(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	for _, tc := range []struct {
		opt  pubsub.Option
		want string
	}{
		{pubsub.WithBufferSize(0), "pubsub.WithBufferSize(0)"},
		{pubsub.WithHistory(0), "pubsub.WithHistory(0)"},
		{natsbroker.WithSubjectPrefix("no.dot"), `natsbroker.WithSubjectPrefix("no.dot")`},
		{natsbroker.WithSubjectPrefix("a.*."), `natsbroker.WithSubjectPrefix("a.*.")`},
		{natsbroker.WithStream("a.b"), `natsbroker.WithStream("a.b")`},
		{natsbroker.WithMaxAge(-1), "natsbroker.WithMaxAge(-1ns)"},
		{natsbroker.WithReplicas(0), "natsbroker.WithReplicas(0)"},
	} {
		b, err := natsbroker.New(context.Background(), nc, tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error naming %s", err, tc.want)
		}
		if b != nil {
			t.Errorf("New returned a broker with its error")
		}
	}
	// This package's options are refused by another broker, by name.
	if _, err := pubsub.NewMemoryBroker(natsbroker.WithSubjectPrefix("x.")); err == nil || !strings.Contains(err.Error(), "natsbroker.WithSubjectPrefix") {
		t.Errorf("NewMemoryBroker with a natsbroker option: %v", err)
	}
}

// Without JetStream on the server, New says what to do.
func TestNoJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(waitTimeout) {
		t.Fatal("NATS server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := natsbroker.New(context.Background(), nc); err == nil || !strings.Contains(err.Error(), "-js") {
		t.Fatalf("New without JetStream: %v, want an error telling to run nats-server with -js", err)
	}
}

// Two prefixes are two streams, named after them unless WithStream says otherwise.
func TestStreamPerPrefix(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	newBroker(t, nc, natsbroker.WithSubjectPrefix("tenant1.events."))
	newBroker(t, nc, natsbroker.WithSubjectPrefix("tenant2."), natsbroker.WithStream("T2"))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"TENANT1_EVENTS", "T2"} {
		if _, err := js.Stream(context.Background(), name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
}

// A stream deleted under a live subscription ends it, rather than leave it waiting for
// events that will never come: its subscriber resubscribes, not recovered.
func TestStreamDeletedEndsSubscription(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	s := subscribe(t, newBroker(t, nc), "t")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(context.Background(), "WSBRIDGE_EVENTS"); err != nil {
		t.Fatal(err)
	}
	if err := ended(t, s); err == nil {
		t.Fatal("the subscription ended with no error")
	}
}
