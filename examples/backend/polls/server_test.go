package polls_test

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/wsbridge/wsbridge/examples/backend/polls"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

func TestHealthAndReflection(t *testing.T) {
	b := start(t, "", nil)
	hc := healthpb.NewHealthClient(b.conn)
	for _, svc := range []string{"", "polls.v1.QuestionService", "polls.v1.ChoiceService"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v, %v", svc, resp, err)
		}
	}

	s, err := reflectionpb.NewServerReflectionClient(b.conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseSend()
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"polls.v1.QuestionService", "polls.v1.ChoiceService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, without %s", names, want)
		}
	}
}

// TestInterceptors: the optional interceptors see the calls that reach the
// backend.
func TestInterceptors(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	see := func(method string) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, method)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := polls.Start(t.Context(), polls.Config{
		GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "polls.db"),
		UnaryInterceptor: func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			see(info.FullMethod)
			return h(ctx, req)
		},
		StreamInterceptor: func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			see(info.FullMethod)
			return h(srv, ss)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	b := &backend{srv: srv}
	b.conn, err = grpc.NewClient(lis.Addr().String(), grpcInsecure)
	if err != nil {
		t.Fatal(err)
	}
	defer b.conn.Close()
	b.q = pollsv1.NewQuestionServiceClient(b.conn)
	b.question(t, "Q")
	b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{})

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/polls.v1.QuestionService/Create", "/polls.v1.QuestionService/Subscribe"}; !slices.Equal(seen, want) {
		t.Errorf("seen %v, want %v", seen, want)
	}
}
