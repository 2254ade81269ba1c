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
	"google.golang.org/grpc/credentials/insecure"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"
)

// natsBackend is the example backend on NATS JetStream (an embedded nats-server with its
// store in a temp dir), whose history outlives the backend process.
type natsBackend struct {
	t     *testing.T
	ns    *server.Server
	db    string
	addr  string
	srv   *polls.Server
	nc    *nats.Conn
	nb    *natsbroker.Broker
	gate  atomic.Pointer[chan struct{}] // when set, Subscribe calls wait for it to close
	gated atomic.Int64                  // Subscribe calls that reached the gate
}

func startNATSBackend(t *testing.T) *natsBackend {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	b := &natsBackend{t: t, ns: ns, db: filepath.Join(t.TempDir(), "polls.db")}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

// start starts a backend process's worth: a NATS connection, a broker and the server.
func (b *natsBackend) start(addr string) {
	b.t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // a restarted port can take a moment to be free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("listen %s: %v", addr, err)
	}
	if b.nc, err = nats.Connect(b.ns.ClientURL()); err != nil {
		b.t.Fatal(err)
	}
	if b.nb, err = natsbroker.New(context.Background(), b.nc); err != nil {
		b.t.Fatal(err)
	}
	gateSubscribe := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if g := b.gate.Load(); g != nil {
			b.gated.Add(1)
			select {
			case <-*g:
			case <-ss.Context().Done():
				return ss.Context().Err()
			}
		}
		return h(srv, ss)
	}
	b.srv, err = polls.Start(context.Background(), polls.Config{GRPCListener: lis, DBPath: b.db, Broker: b.nb,
		Logger: quiet, StreamInterceptor: gateSubscribe})
	if err != nil {
		b.t.Fatalf("start backend: %v", err)
	}
	b.addr = lis.Addr().String()
}

// stop stops the backend gracefully (in-flight writes publish their events); safe twice.
func (b *natsBackend) stop() {
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.srv.GracefulStop(ctx)
	b.srv = nil
	_ = b.nb.Close()
	b.nc.Close()
}

// TestResumeUpstreamAcrossBackendRestart: the backend restarts during a steady stream of
// changes, and changes are made after it is back but before the bridge has subscribed again
// (its Subscribe is held at a gate). The bridge reopens the upstream with since = the last
// event it delivered: the resumed notice says recovered: true, and the subscriber gets
// every created question exactly once, in order.
func TestResumeUpstreamAcrossBackendRestart(t *testing.T) {
	be := startNATSBackend(t)
	e := newEnvWith(t, nil, bridge.Backend{Target: be.addr})
	cc, err := grpc.NewClient(be.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	qs := pollsv1.NewQuestionServiceClient(cc)
	create := func(text string) (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// WaitForReady: through the restart, the call waits for the backend, not fails fast.
		q, err := qs.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: text}}, grpc.WaitForReady(true))
		if err != nil {
			return 0, err
		}
		return q.GetId(), nil
	}

	c := e.dial()
	c.resumeSubscribe("s", "")

	// The steady writer: creates until stopped, retrying through the restart. A create
	// whose reply is lost may be made twice; the check below counts what the database has.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = create(fmt.Sprintf("steady %d", i))
		}
	})

	seen := map[string]int{}
	var order []string
	lastOffset := ""
	readEvent := func(f frame) {
		t.Helper()
		pk, _ := f.Payload["pk"].(string)
		o, _ := f.Payload["offset"].(string)
		if f.Payload["action"] != "create" || pk == "" || o == "" || f.Payload["request_id"] != "s" {
			t.Fatalf("want a create event, got %s", f.raw)
		}
		seen[pk]++
		if seen[pk] > 1 {
			t.Fatalf("question %s delivered twice: %s", pk, f.raw)
		}
		order = append(order, pk)
		lastOffset = o
	}
	for len(order) < 5 {
		readEvent(c.next())
	}

	gate := make(chan struct{})
	be.gate.Store(&gate)
	be.stop()
	be.start(be.addr)
	// The backend is back, the bridge's Subscribe waits at the gate: these are missed by
	// the upstream unless it resumes from its position.
	for i := range 5 {
		if _, err := create(fmt.Sprintf("during the outage %d", i)); err != nil {
			t.Fatalf("create on the restarted backend: %v", err)
		}
	}

	// Events until the notice (the writer's, made before the stop), then the notice.
	var notice frame
	for {
		f := c.next()
		if f.status() == 503 {
			notice = f
			break
		}
		readEvent(f)
	}
	if f := notice; f.Payload["action"] != "subscribe" || f.Payload["request_id"] != "s" {
		t.Fatalf("want the 503 notice, got %s", f.raw)
	}
	waitFor(t, "the bridge to subscribe again", func() bool { return be.gated.Load() > 0 })
	be.gate.Store(nil)
	close(gate)
	f := c.next()
	subWantResumed(t, f, "s")
	if d := f.data(); d["recovered"] != true || d["offset"] != lastOffset {
		t.Fatalf("resumed notice %s, want recovered true at %s", f.raw, lastOffset)
	}
	n := len(order)
	for len(order) < n+10 {
		readEvent(c.next())
	}
	close(stop)
	wg.Wait()

	// A last question: once its event is here, every earlier one is.
	final, err := create("final")
	if err != nil {
		t.Fatal(err)
	}
	for seen[fmt.Sprint(final)] == 0 {
		readEvent(c.next())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := qs.List(ctx, &pollsv1.ListQuestionsRequest{Page: 1, PageSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if int(list.GetCount()) != len(list.GetQuestions()) {
		t.Fatalf("list returned %d of %d questions", len(list.GetQuestions()), list.GetCount())
	}
	for _, q := range list.GetQuestions() {
		if seen[fmt.Sprint(q.GetId())] != 1 {
			t.Errorf("question %d (%q) was not delivered", q.GetId(), q.GetQuestionText())
		}
	}
	if len(seen) != len(list.GetQuestions()) {
		t.Errorf("%d events for %d questions", len(seen), len(list.GetQuestions()))
	}
	t.Logf("%d questions, each delivered once", len(seen))
	c.wantQuiet()
}
