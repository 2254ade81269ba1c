package e2e_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
	"github.com/wsbridge/wsbridge/examples/library/library"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
)

// One bridge backend target naming two replicas of the example backend ("a|b"): they share
// one SQLite file and carry their events over NATS, as in docs/deploy.md.

const (
	retrieveMethod  = "/polls.v1.QuestionService/Retrieve"
	subscribeMethod = "/polls.v1.QuestionService/Subscribe"
)

// replica is one example backend replica that counts the calls it serves and can hold a
// Retrieve until it is stopped.
type replica struct {
	t    *testing.T
	name string
	addr string
	srv  *polls.Server

	mu    sync.Mutex
	calls map[string]int // by full method
	subs  []string       // pk filter of each Subscribe stream served

	hold atomic.Bool   // hold Retrieve calls until the replica stops
	held chan struct{} // one value per held call
}

func runNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return ns
}

func startReplica(t *testing.T, name, db string, ns *server.Server) *replica {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	nb, err := natsbroker.New(t.Context(), nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nb.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{t: t, name: name, addr: lis.Addr().String(), calls: map[string]int{}, held: make(chan struct{}, 16)}
	r.srv, err = polls.Start(context.Background(), polls.Config{
		GRPCListener: lis, DBPath: db, Broker: nb, Logger: quiet,
		UnaryInterceptor: r.unary, StreamInterceptor: r.stream,
	})
	if err != nil {
		t.Fatalf("start replica %s: %v", name, err)
	}
	t.Cleanup(r.srv.Stop) // before the broker and NATS connection close (cleanups run last first)
	return r
}

func (r *replica) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	r.mu.Lock()
	r.calls[info.FullMethod]++
	r.mu.Unlock()
	if info.FullMethod == retrieveMethod && r.hold.Load() {
		r.held <- struct{}{}
		<-ctx.Done() // the replica is stopped under the call
		return nil, ctx.Err()
	}
	return h(ctx, req)
}

func (r *replica) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	r.mu.Lock()
	r.calls[info.FullMethod]++
	r.mu.Unlock()
	if info.FullMethod != subscribeMethod {
		return h(srv, ss)
	}
	return h(srv, &recordingStream{ServerStream: ss, r: r})
}

// recordingStream records the pk filter of the Subscribe request it receives.
type recordingStream struct {
	grpc.ServerStream
	r *replica
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		if pk, ok := m.(interface{ GetPk() int64 }); ok {
			s.r.mu.Lock()
			s.r.subs = append(s.r.subs, fmt.Sprint(pk.GetPk()))
			s.r.mu.Unlock()
		}
	}
	return err
}

func (r *replica) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[method]
}

// serves reports whether a Subscribe stream for pk reached this replica.
func (r *replica) serves(pk string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.subs {
		if p == pk {
			return true
		}
	}
	return false
}

// replicaEnv is a bridge whose one backend target names both replicas.
func replicaEnv(t *testing.T) (*env, *replica, *replica) {
	t.Helper()
	ns := runNATS(t)
	db := filepath.Join(t.TempDir(), "polls.db")
	a := startReplica(t, "a", db, ns)
	b := startReplica(t, "b", db, ns)
	e := newEnvWith(t, nil, bridge.Backend{Target: a.addr + "|" + b.addr})
	return e, a, b
}

// retrieveOn retrieves pk through c until the retrieve in a row of n all reached want,
// which proves the other replica gets no calls. It fails after waitLimit.
func retrieveOn(t *testing.T, c *client, pk string, want, other *replica, n int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	run := 0
	for run < n {
		if time.Now().After(deadline) {
			t.Fatalf("retrieves never went only to replica %s (%d in a row)", want.name, run)
		}
		before := other.count(retrieveMethod)
		wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": pk}), 200)
		if other.count(retrieveMethod) == before {
			run++
		} else {
			run = 0
		}
	}
}

// TestReplicasRoundRobinAndHealth: calls are spread over both replicas; one reporting
// NOT_SERVING on grpc.health.v1 gets none until it reports SERVING again.
func TestReplicasRoundRobinAndHealth(t *testing.T) {
	e, a, b := replicaEnv(t)
	c := e.dial()
	q := c.createQuestion("Which replica?")
	waitFor(t, "retrieves on both replicas", func() bool {
		wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": q}), 200)
		return a.count(retrieveMethod) > 0 && b.count(retrieveMethod) > 0
	})

	a.srv.SetServing(false)
	// The bridge learns it from the health watch stream: wait until it acts on it, then
	// no call at all may reach a.
	retrieveOn(t, c, q, b, a, 10)
	before := a.count(retrieveMethod)
	for range 20 {
		wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": q}), 200)
	}
	wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
	if n := a.count(retrieveMethod) - before; n != 0 {
		t.Fatalf("replica a reports NOT_SERVING but served %d retrieves", n)
	}

	a.srv.SetServing(true)
	waitFor(t, "replica a to get calls again", func() bool {
		wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": q}), 200)
		return a.count(retrieveMethod) > before
	})
}

// TestReplicaKilled: a replica dies with a retrieve in flight on it and with subscription
// upstreams on it. The retrieve is retried on the other replica (a 200, not a 503); each
// subscription whose upstream was on the dead replica gets one 503 notice and one
// "resumed", the others get nothing; then every subscription gets each change exactly once.
func TestReplicaKilled(t *testing.T) {
	e, a, b := replicaEnv(t)
	w := e.dial()
	var qs []string
	for i := range 8 {
		qs = append(qs, w.createQuestion(fmt.Sprintf("Replica %d?", i)))
	}
	// One upstream per question (the pk is part of the hub's key): subscribe until both
	// replicas serve some.
	s := e.dial()
	var onA, onB []string
	for i, q := range qs {
		s.subSubscribe("s"+q, q, "update")
		switch {
		case a.serves(q):
			onA = append(onA, q)
		case b.serves(q):
			onB = append(onB, q)
		default:
			t.Fatalf("subscription %s confirmed but no replica serves it", q)
		}
		if len(onA) > 0 && len(onB) > 0 && i >= 3 {
			qs = qs[:i+1]
			break
		}
	}
	if len(onA) == 0 || len(onB) == 0 {
		t.Fatalf("round robin put every upstream on one replica: a %v, b %v", onA, onB)
	}

	// A retrieve held on a, then a dies.
	a.hold.Store(true)
	r := e.dial()
	var id string
	for {
		id = r.send("questions", map[string]any{"action": "retrieve", "pk": qs[0]})
		select {
		case <-a.held:
		case f := <-r.frames: // it went to b: answered
			wantStatus(t, f, 200)
			continue
		case <-time.After(waitLimit):
			t.Fatal("the retrieve reached neither replica")
		}
		break
	}
	a.srv.Stop()
	f := r.next()
	if f.Payload["request_id"] != id {
		t.Fatalf("reply for another request: %s", f.raw)
	}
	wantStatus(t, f, 200) // without the retry policy: 503
	if f.data()["id"] != qs[0] {
		t.Fatalf("retried retrieve returned %s", f.raw)
	}

	// Notices: one 503 and one resumed per subscription that was on a, in that order.
	seen := map[string]int{}
	for range 2 * len(onA) {
		f := s.next()
		id, _ := f.Payload["request_id"].(string)
		if f.Payload["action"] != "subscribe" {
			t.Fatalf("frame during the move: %s", f.raw)
		}
		switch seen[id] {
		case 0:
			wantStatus(t, f, 503)
		case 1:
			subWantResumed(t, f, id)
		default:
			t.Fatalf("third notice for %s: %s", id, f.raw)
		}
		seen[id]++
	}
	for _, q := range onA {
		if seen["s"+q] != 2 {
			t.Fatalf("notices per subscription %v; on a: %v", seen, onA)
		}
		if !b.serves(q) {
			t.Fatalf("subscription %s resumed but b does not serve it", q)
		}
	}
	if extra := s.barrier(); len(extra) != 0 {
		t.Fatalf("subscriptions on b got notices: %s", extra[0].raw)
	}

	// Every change, made through the one replica left, reaches each subscription once.
	for _, q := range qs {
		w.subUpdate(q, "Moved "+q)
	}
	got := s.subEvents(len(qs))
	for _, q := range qs {
		subWantEvent(t, got["s"+q], "update", q, "s"+q)
	}
	if extra := s.barrier(); len(extra) != 0 {
		t.Fatalf("a second event: %s", extra[0].raw)
	}
}

// TestReplicasBesideAnotherBackend: two backend targets at once, one naming two replicas of
// the polls service and one the library service; each stream reaches its own backend, and
// a polls replica going NOT_SERVING affects neither the other replica's calls nor the library.
func TestReplicasBesideAnotherBackend(t *testing.T) {
	ns := runNATS(t)
	db := filepath.Join(t.TempDir(), "polls.db")
	a := startReplica(t, "a", db, ns)
	b := startReplica(t, "b", db, ns)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lib, err := library.Start(library.Config{GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "library.db"), Logger: quiet})
	if err != nil {
		t.Fatalf("start library: %v", err)
	}
	t.Cleanup(lib.Stop)
	e := newEnvWith(t, nil, bridge.Backend{Target: a.addr + "|" + b.addr},
		bridge.WithBackend(bridge.Backend{Target: lis.Addr().String()}), withLibraryRules(t))
	c := e.dial()

	q := c.createQuestion("Beside the library?")
	f := c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "Fiction"}})
	wantStatus(t, f, 201)
	shelf := f.data()["name"].(string)

	a.srv.SetServing(false)
	retrieveOn(t, c, q, b, a, 5)
	f = c.do("shelves", map[string]any{"action": "retrieve", "pk": shelf})
	wantStatus(t, f, 200)
	if f.data()["theme"] != "Fiction" {
		t.Fatalf("shelf: %s", f.raw)
	}
}
