package pubsub_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wsbridge/wsbridge/pubsub"
)

const thingTopic = "test.v1.Thing"

// thingsDesc is a hand-written service with one server-streaming method,
// Subscribe(StringValue pk) returns (stream StringValue "action:pk").
func thingsDesc(b pubsub.Broker) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "test.v1.Things",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Subscribe",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				req := new(wrapperspb.StringValue)
				if err := stream.RecvMsg(req); err != nil {
					return err
				}
				out := &grpc.GenericServerStream[wrapperspb.StringValue, wrapperspb.StringValue]{ServerStream: stream}
				return pubsub.Serve(out, b, thingTopic, pubsub.Filter{PK: req.GetValue()}, "", toString)
			},
		}},
	}
}

// startThings serves thingsDesc on loopback and returns the server and a
// client connection to it.
func startThings(t *testing.T, b pubsub.Broker) (*grpc.Server, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(thingsDesc(b), nil)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return srv, conn
}

func subscribeThings(t *testing.T, ctx context.Context, conn *grpc.ClientConn, pk string) grpc.ClientStream {
	t.Helper()
	cs, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/test.v1.Things/Subscribe")
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(wrapperspb.String(pk)); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestServeOverGRPC(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	_, conn := startThings(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	cs := subscribeThings(t, ctx, conn, "1")
	// Nothing is published yet, so the header can only come from Serve
	// announcing the live subscription, as the bridge waits for.
	if _, err := cs.Header(); err != nil || ctx.Err() != nil {
		t.Fatalf("no header before any event: %v", err)
	}
	publish(t, b, thingTopic, ev("create", "2"), ev("create", "1"), ev("update", "1"))
	for _, want := range []string{"create:1", "update:1"} {
		got := new(wrapperspb.StringValue)
		if err := cs.RecvMsg(got); err != nil {
			t.Fatalf("RecvMsg: %v", err)
		}
		if got.GetValue() != want {
			t.Fatalf("received %q, want %q", got.GetValue(), want)
		}
	}

	b.Close()
	err := cs.RecvMsg(new(wrapperspb.StringValue))
	if s, _ := status.FromError(err); s.Code() != codes.Unavailable || s.Message() != "server shutting down" {
		t.Fatalf("stream ended with %v, want UNAVAILABLE server shutting down", err)
	}
}

func TestServeOverGRPCClientCancels(t *testing.T) {
	b := newMemory(t)
	defer b.Close()
	srv, conn := startThings(t, b)

	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		cs := subscribeThings(t, ctx, conn, "")
		if _, err := cs.Header(); err != nil {
			t.Fatalf("Header: %v", err)
		}
		cancel()
		if code := status.Code(cs.RecvMsg(new(wrapperspb.StringValue))); code != codes.Canceled {
			t.Fatalf("after cancel: code %v", code)
		}
	}
	// GracefulStop waits for every handler: it returns only if Serve
	// noticed each client leaving.
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after its client cancelled")
	}
}
