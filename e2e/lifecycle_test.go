package e2e_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/wsbridge/wsbridge/bridge"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// slowQuestions is a real gRPC backend whose Retrieve blocks until released or cancelled,
// to hold requests in flight.
type slowQuestions struct {
	pollsv1.UnimplementedQuestionServiceServer
	started   chan struct{} // one value per Retrieve that began
	release   chan struct{} // closed by releaseAll to let every Retrieve answer
	once      sync.Once
	cancelled atomic.Int64 // Retrieves that saw their context end
	inFlight  atomic.Int64
	maxSeen   atomic.Int64
}

func (s *slowQuestions) Retrieve(ctx context.Context, req *pollsv1.RetrieveQuestionRequest) (*pollsv1.Question, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxSeen.Load()
		if n <= m || s.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	s.started <- struct{}{}
	select {
	case <-s.release:
		return &pollsv1.Question{Id: req.GetPk(), QuestionText: "slow"}, nil
	case <-ctx.Done():
		s.cancelled.Add(1)
		return nil, ctx.Err()
	}
}

func (s *slowQuestions) releaseAll() { s.once.Do(func() { close(s.release) }) }

// startSlowBackend serves slowQuestions with reflection on loopback.
func startSlowBackend(t *testing.T) (*slowQuestions, string) {
	t.Helper()
	s := &slowQuestions{started: make(chan struct{}, 1000), release: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pollsv1.RegisterQuestionServiceServer(gs, s)
	reflection.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(func() {
		s.releaseAll()
		gs.Stop()
	})
	return s, lis.Addr().String()
}

func newSlowEnv(t *testing.T, opts ...bridge.Option) (*env, *slowQuestions) {
	t.Helper()
	s, addr := startSlowBackend(t)
	return newEnvFor(t, &backend{t: t, addr: addr}, opts...), s
}

// waitLimit bounds every wait of these tests: generous, since CI machines are loaded and a
// wait ends as soon as its condition holds.
const waitLimit = 30 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientDisconnectCancelsCall(t *testing.T) {
	e, slow := newSlowEnv(t)
	c := e.dial()
	c.send("questions", map[string]any{"action": "retrieve", "pk": "1"})
	waitRecv(t, "the call to reach the backend", slow.started)
	c.close()
	waitFor(t, "the backend call to be cancelled", func() bool { return slow.cancelled.Load() == 1 })
}

func TestInFlightLimitIsBackpressure(t *testing.T) {
	e, slow := newSlowEnv(t, bridge.WithMaxInFlight(2))
	c := e.dial()
	const n = 6
	for i := 0; i < n; i++ {
		c.send("questions", map[string]any{"action": "retrieve", "pk": i + 1})
	}
	waitRecv(t, "a first call to reach the backend", slow.started)
	waitRecv(t, "a second call to reach the backend", slow.started)
	slow.releaseAll()
	// The rest waited rather than being refused: every request gets 200, once.
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		f := c.next()
		wantStatus(t, f, 200)
		id := f.Payload["request_id"].(string)
		if seen[id] {
			t.Fatalf("request %s answered twice", id)
		}
		seen[id] = true
	}
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("frame after every request was answered: %s", extra[0].raw)
	}
	if m := slow.maxSeen.Load(); m > 2 {
		t.Fatalf("backend saw %d concurrent calls, limit is 2", m)
	}
}

func TestCallDeadline(t *testing.T) {
	e, slow := newSlowEnv(t, bridge.WithCallTimeout(100*time.Millisecond))
	c := e.dial()
	f := c.do("questions", map[string]any{"action": "retrieve", "pk": "1"})
	waitRecv(t, "the call to reach the backend", slow.started)
	wantStatus(t, f, 504)
	if got, want := f.errors(), `["The backend did not answer in time."]`; got != want {
		t.Fatalf("504 errors = %s, want %s", got, want)
	}
}

func TestShutdownDrainsThenCloses1001(t *testing.T) {
	e, slow := newSlowEnv(t)
	c := e.dial()
	c.send("questions", map[string]any{"action": "retrieve", "pk": "5", "request_id": "inflight"})
	waitRecv(t, "the call to reach the backend", slow.started)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- e.bridge.Shutdown(ctx) // the listener stays open, as in the command
	}()
	shutdownStarted(t, c) // the drain has started, with the call still in flight
	slow.releaseAll()
	f := c.next()
	wantStatus(t, f, 200)
	if f.Payload["request_id"] != "inflight" {
		t.Fatalf("got %s", f.raw)
	}
	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := waitRecv(t, "Shutdown to return", done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// New connections are refused by the bridge itself, not by a closed listener.
	if code, body := dialRefused(t, e.url); code != 503 || body != "shutting down" {
		t.Fatalf("handshake after shutdown: HTTP %d %q, want 503", code, body)
	}
}

func TestBackendDownAnswers503(t *testing.T) {
	e := newEnv(t, bridge.WithCallTimeout(30*time.Second))
	c := e.dial()
	id := c.createQuestion("before the outage")
	e.backend.stop()
	start := time.Now()
	f := c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantStatus(t, f, 503)
	if len(f.errors()) < 5 {
		t.Fatalf("503 without a message: %s", f.raw)
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("503 took %s: the request hung", time.Since(start))
	}
	// Back up, the same connection works again.
	e.backend.start(e.backend.addr)
	waitFor(t, "the backend to answer again", func() bool {
		return c.do("questions", map[string]any{"action": "retrieve", "pk": id}).status() == 200
	})
}

func TestHealthAndReadiness(t *testing.T) {
	// A bridge whose backend is not up yet is alive but not ready.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: addr}), bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) int {
		rec := &statusRecorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", path, nil)
		srv.ServeHTTP(rec, req)
		return rec.status
	}
	if get("/healthz") != 200 || get("/readyz") != 503 {
		t.Fatalf("before discovery: healthz %d readyz %d", get("/healthz"), get("/readyz"))
	}
	b := &backend{t: t, db: t.TempDir() + "/polls.db"}
	b.start(addr)
	t.Cleanup(b.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if get("/readyz") != 200 {
		t.Fatalf("after discovery: readyz %d", get("/readyz"))
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(s int) { r.status = s }

func TestDescriptorSetInsteadOfReflection(t *testing.T) {
	// The descriptor set a `buf build -o` would make, from the compiled-in descriptors.
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(pollsv1.File_polls_v1_polls_proto)
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatal(err)
	}
	var _ *protoregistry.Files = files
	e := newEnv(t, bridge.WithDescriptors(files))
	if got := exposedStreams(t, e); got != "choices,questions" {
		t.Fatalf("streams %s", got)
	}
	c := e.dial()
	id := c.createQuestion("from a descriptor set")
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": id}), 200)
}

func TestOnlyResourceMethodsAreReachable(t *testing.T) {
	c := newEnv(t).dial()
	for _, stream := range []string{"grpc.reflection.v1.ServerReflection", "grpc.health.v1.Health", "ServerReflection", "Health", "polls.v1.QuestionService"} {
		wantErrors(t, c.do(stream, map[string]any{"action": "check"}), 404, `["Unknown stream."]`)
	}
	for _, action := range []string{"Subscribe", "Retrieve", "server_reflection_info", "/polls.v1.QuestionService/Create"} {
		wantErrors(t, c.do("questions", map[string]any{"action": action}), 400, `["Invalid Action"]`)
	}
}

func TestRefreshPicksUpNewServices(t *testing.T) {
	// First a backend that serves questions only, then the full backend on the same address.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pollsv1.RegisterQuestionServiceServer(gs, &pollsv1.UnimplementedQuestionServiceServer{})
	reflection.Register(gs)
	go gs.Serve(lis)
	b := &backend{t: t, addr: lis.Addr().String(), db: t.TempDir() + "/polls.db"}
	t.Cleanup(b.stop)
	e := newEnvFor(t, b, bridge.WithRefresh(50*time.Millisecond))
	if got := exposedStreams(t, e); got != "questions" {
		t.Fatalf("streams %s, want questions", got)
	}
	c := e.dial()
	wantErrors(t, c.do("choices", map[string]any{"action": "list"}), 404, `["Unknown stream."]`)

	gs.Stop()
	b.start(b.addr)
	waitFor(t, "the refresh to find choices", func() bool {
		return exposedStreams(t, e) == "choices,questions"
	})
	wantStatus(t, c.do("choices", map[string]any{"action": "list"}), 200)
}
