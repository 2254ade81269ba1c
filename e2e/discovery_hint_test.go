package e2e_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/wsbridge/wsbridge/bridge"
)

// logRecorder is a slog handler that keeps every record's level, message and attributes as text.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += fmt.Sprintf(" %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	return nil
}

// count is the number of lines containing s.
func (r *logRecorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// waitFor waits until a line contains s, failing after 20s.
func (r *logRecorder) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.count(s) < n {
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no %d log lines with %q in:\n%s", n, s, strings.Join(r.lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startGRPC serves a bare gRPC server on loopback, registered by reg.
func startGRPC(t *testing.T, reg func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	reg(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

func startBridge(t *testing.T, addr string, log *logRecorder) *bridge.Server {
	t.Helper()
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: addr}), bridge.WithLogger(slog.New(log)),
		bridge.WithDiscoveryRetry(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// A backend without reflection: the bridge says once what to do, and keeps retrying.
func TestDiscoveryExplainsMissingReflection(t *testing.T) {
	addr := startGRPC(t, func(*grpc.Server) {})
	log := &logRecorder{}
	startBridge(t, addr, log)
	log.waitFor(t, "discovery failed, retrying", 3)
	if n := log.count("reflection.Register(server)"); n != 1 {
		t.Fatalf("the explanation was logged %d times, want once", n)
	}
	if log.count("ERROR a backend does not serve gRPC server reflection") != 1 {
		t.Fatal("the explanation is not an error line")
	}
}

// A backend whose services are none of the bridge's: ready, with a warning naming them.
func TestDiscoveryWarnsWhenNothingIsExposed(t *testing.T) {
	str := proto.String
	fdp := &descriptorpb.FileDescriptorProto{Name: str("e2ehint/greeter.proto"), Package: str("e2ehint"), Syntax: str("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: str("Hello")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: str("Greeter"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: str("SayHello"), InputType: str(".e2ehint.Hello"), OutputType: str(".e2ehint.Hello")},
		}}}}
	if _, err := protoregistry.GlobalFiles.FindFileByPath(fdp.GetName()); err != nil {
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			t.Fatal(err)
		}
		if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
			t.Fatal(err)
		}
	}
	addr := startGRPC(t, func(s *grpc.Server) {
		s.RegisterService(&grpc.ServiceDesc{ServiceName: "e2ehint.Greeter", HandlerType: (*any)(nil), Metadata: fdp.GetName()}, struct{}{})
		reflection.Register(s)
	})
	log := &logRecorder{}
	srv := startBridge(t, addr, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if log.count("WARN no stream is exposed") != 1 || log.count("services=[e2ehint.Greeter]") != 1 {
		log.mu.Lock()
		defer log.mu.Unlock()
		t.Fatalf("no warning naming the service:\n%s", strings.Join(log.lines, "\n"))
	}
}
