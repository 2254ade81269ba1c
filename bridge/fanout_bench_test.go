package bridge

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// eventStream is a Subscribe stream that delivers the same event n times, for fan-out
// benchmarks: the bridge's side of an upstream without the network.
type eventStream struct {
	ev proto.Message
	n  int
}

func (s *eventStream) RecvMsg(m any) error {
	if s.n == 0 {
		return io.EOF
	}
	s.n--
	proto.Merge(m.(proto.Message), s.ev)
	return nil
}
func (s *eventStream) Header() (metadata.MD, error) { return nil, nil }
func (s *eventStream) Trailer() metadata.MD         { return nil }
func (s *eventStream) CloseSend() error             { return nil }
func (s *eventStream) Context() context.Context     { return context.Background() }
func (s *eventStream) SendMsg(any) error            { return nil }

// BenchmarkEventFanout is the bridge's work for one event delivered to 100 subscribers of
// one upstream: encode it once, queue it to each (the writers are not running).
func BenchmarkEventFanout(b *testing.B) {
	for _, tc := range []struct {
		name   string
		custom bool
	}{{"identity-only", false}, {"per-event-permission", true}} {
		b.Run(tc.name, func(b *testing.B) {
			res := pollsCatalog(b).streams["questions"]
			var cfg accessConfig
			if tc.custom {
				cfg.custom = []Permission{PermissionFunc(func(_ *Identity, _, _, pk string) bool { return pk != "" })}
			}
			res.access = resolveAccess(res, cfg)
			srv := &Server{opts: defaultOptions()}
			srv.metrics = newMetrics(srv)
			srv.opts.queueBytes = 1 << 40
			h := newHub(srv)
			sm := res.subscribe
			ev := dynamicpb.NewMessage(sm.event)
			ev.Set(sm.evActon, protoreflect.ValueOfString("update"))
			ev.Set(sm.evPK, protoreflect.ValueOfInt64(42))
			data := dynamicpb.NewMessage(sm.evData.Message())
			data.Set(sm.evData.Message().Fields().ByName("id"), protoreflect.ValueOfInt64(42))
			data.Set(sm.evData.Message().Fields().ByName("question_text"), protoreflect.ValueOfString("Benchmark?"))
			ev.Set(sm.evData, protoreflect.ValueOfMessage(data))
			up := &upstream{key: subKey{stream: res.stream, events: eventOf("create") | eventOf("update") | eventOf("delete")}, res: res}
			conns := make([]*conn, 100)
			for i := range conns {
				conns[i] = &conn{srv: srv, writing: true} // no writer: frames stay queued
				s := &subscription{conn: conns[i], up: up, stream: res.stream, requestID: []byte(`"s"`)}
				s.tail = appendFrameEnd(nil, s.requestID, nil)
				up.subs = append(up.subs, s)
			}
			b.ReportAllocs()
			b.ResetTimer()
			if _, err := h.pump(up, &eventStream{ev: ev, n: b.N}); err != io.EOF {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := len(conns[0].queue); got != b.N {
				b.Fatalf("%d events queued, want %d", got, b.N)
			}
		})
	}
}
