package e2e_test

import (
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/wsbridge/wsbridge/bridge"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// refusingQuestions is a real backend whose Subscribe refuses, or hangs without ever
// confirming the subscription with a header.
type refusingQuestions struct {
	pollsv1.UnimplementedQuestionServiceServer
	hang bool
}

func (s *refusingQuestions) Subscribe(req *pollsv1.SubscribeQuestionsRequest, stream grpc.ServerStreamingServer[pollsv1.QuestionEvent]) error {
	if s.hang {
		<-stream.Context().Done()
		return nil
	}
	return status.Error(codes.PermissionDenied, "not for you")
}

func startRefusing(t *testing.T, hang bool, opts ...bridge.Option) *env {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pollsv1.RegisterQuestionServiceServer(gs, &refusingQuestions{hang: hang})
	reflection.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return newEnvFor(t, &backend{t: t, addr: lis.Addr().String()}, opts...)
}

func TestSubscribeRefusedByTheBackend(t *testing.T) {
	e := startRefusing(t, false)
	c := e.dial()
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}})
	wantErrors(t, f, 403, `["not for you"]`)
	waitFor(t, "no upstream left", func() bool { return e.bridge.Stats().Subscriptions == 0 && e.bridge.Stats().UpstreamStreams == 0 })
}

func TestSubscribeNeverConfirmedTimesOut(t *testing.T) {
	e := startRefusing(t, true, bridge.WithCallTimeout(200*time.Millisecond))
	c := e.dial()
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}})
	wantStatus(t, f, 504)
	waitFor(t, "no upstream left", func() bool { return e.bridge.Stats().Subscriptions == 0 })
}
