package bridge

// Benchmarks for performance work; `go test` runs none of them by default.
//
//	go test ./bridge -run '^$' -bench . -benchtime 1x      # CI: does every benchmark still work?
//	go test ./bridge -run '^$' -bench RoundTrip -benchtime 3s -cpuprofile cpu.out
//
// The round-trip benchmarks run the example backend (gRPC on loopback, SQLite in a temporary
// directory) and the bridge in this process, so allocs/op counts everyone's allocations:
// the WebSocket client's, the bridge's, and the backend's gRPC server and database driver.
// BenchmarkFramePath measures the bridge's own work per request without any I/O.

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

// benchCalls are the requests the benchmarks make: a retrieve of an existing question and a
// create. frame is the request frame up to its request_id; want is in every good reply.
var benchCalls = []struct {
	name  string
	frame func(pk int64) string
	want  string
}{
	{"retrieve", func(pk int64) string {
		return `{"stream":"questions","payload":{"action":"retrieve","pk":` + strconv.FormatInt(pk, 10) + `,"request_id":`
	}, `"response_status":200`},
	{"create", func(int64) string {
		return `{"stream":"questions","payload":{"action":"create","data":{"question_text":"Benchmark?"},"request_id":`
	}, `"response_status":201`},
}

// benchEnv is the example backend and the bridge in front of it, on loopback.
type benchEnv struct {
	url string // ws://…/ws
	pk  int64  // a question that exists
}

func startBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	backend, err := polls.Start(ctx, polls.Config{GRPCListener: lis, DBPath: filepath.Join(b.TempDir(), "polls.db"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(backend.Stop)

	srv, err := New(WithBackend(Backend{Target: lis.Addr().String()}), WithLogger(quiet), WithDiscoveryRetry(100*time.Millisecond),
		WithRateLimit(0, 0)) // the default 100 messages/s per connection would answer 429
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		hs.Listener.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("bridge shutdown: %v", err)
		}
		hs.Close()
	})
	if err := srv.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}

	// The question the retrieves read.
	ws := e.dial(b)
	reply := benchRoundTrip(b, ws, benchCalls[1].frame(0)+`0}}`)
	if !bytes.Contains(reply, []byte(`"response_status":201`)) {
		b.Fatalf("seeding a question: %s", reply)
	}
	i := bytes.Index(reply, []byte(`"id":"`))
	if i < 0 {
		b.Fatalf("no id in %s", reply)
	}
	rest := reply[i+len(`"id":"`):]
	if e.pk, err = strconv.ParseInt(string(rest[:bytes.IndexByte(rest, '"')]), 10, 64); err != nil {
		b.Fatalf("id in %s: %v", reply, err)
	}
	ws.Close()
	return e
}

func (e *benchEnv) dial(b *testing.B) *websocket.Conn {
	b.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	return ws
}

func benchRoundTrip(b *testing.B, ws *websocket.Conn, frame string) []byte {
	b.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		b.Fatal(err)
	}
	_, reply, err := ws.ReadMessage()
	if err != nil {
		b.Fatal(err)
	}
	return reply
}

// BenchmarkRoundTrip is one request at a time over one WebSocket: ns/op is the latency of a
// call through the bridge, client and backend included.
func BenchmarkRoundTrip(b *testing.B) {
	for _, call := range benchCalls {
		b.Run(call.name, func(b *testing.B) {
			e := startBenchEnv(b)
			ws := e.dial(b)
			head := []byte(call.frame(e.pk))
			want := []byte(call.want)
			frame := make([]byte, 0, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				frame = append(strconv.AppendInt(append(frame[:0], head...), int64(i), 10), "}}"...)
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					b.Fatal(err)
				}
				_, reply, err := ws.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if !bytes.Contains(reply, want) {
					b.Fatalf("reply %s, want %s", reply, want)
				}
			}
		})
	}
}

// BenchmarkRoundTripPipelined keeps 32 requests in flight over one WebSocket, as a busy
// browser app does: ns/op is the inverse of the throughput of one connection.
func BenchmarkRoundTripPipelined(b *testing.B) {
	const inFlight = 32
	for _, call := range benchCalls {
		b.Run(call.name, func(b *testing.B) {
			e := startBenchEnv(b)
			ws := e.dial(b)
			head := []byte(call.frame(e.pk))
			want := []byte(call.want)
			b.ReportAllocs()
			b.ResetTimer()
			n := b.N
			slots := make(chan struct{}, inFlight)
			readErr := make(chan error, 1)
			go func() {
				for range n {
					_, reply, err := ws.ReadMessage()
					if err == nil && !bytes.Contains(reply, want) {
						err = errorString("reply " + string(reply) + ", want " + string(want))
					}
					if err != nil {
						readErr <- err
						return
					}
					<-slots
				}
				readErr <- nil
			}()
			frame := make([]byte, 0, 256)
		send:
			for i := range n {
				select {
				case slots <- struct{}{}:
				case err := <-readErr:
					readErr <- err
					break send
				}
				frame = append(strconv.AppendInt(append(frame[:0], head...), int64(i), 10), "}}"...)
				if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
					b.Error(err)
					ws.Close() // ends the reader
					break
				}
			}
			if err := <-readErr; err != nil {
				b.Fatal(err)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// BenchmarkFramePath is the bridge's CPU work for one request apart from gRPC and the
// network: decode the frame, build the request, turn the response's wire bytes into the reply.
// The protojson- runs include what gRPC's proto codec then does on that path (marshal the
// request message, unmarshal the response into one), which wirejson's raw-bytes codec skips.
func BenchmarkFramePath(b *testing.B) {
	srv, err := New(WithBackend(Backend{Target: "127.0.0.1:1"}), WithDescriptors(protoregistry.GlobalFiles),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	res := srv.catalog.Load().streams["questions"]
	if res == nil {
		b.Fatalf("no questions stream in the catalog: %v", srv.catalog.Load().names())
	}

	// wirejson (what the bridge uses), then protojson and dynamicpb (its fallback for the
	// messages wirejson does not support, and the path before issue 11).
	for _, path := range []string{"", "protojson-"} {
		for _, call := range benchCalls {
			b.Run(path+call.name, func(b *testing.B) {
				frame := []byte(call.frame(42) + `"r-1"}}`)
				want := []byte(call.want)
				a := *res.actions[call.name]
				a.wire = path == ""
				// The backend's answer: question 42.
				resp := dynamicpb.NewMessage(a.resp)
				fields := a.resp.Fields()
				resp.Set(fields.ByName("id"), protoreflect.ValueOfInt64(42))
				resp.Set(fields.ByName("question_text"), protoreflect.ValueOfString("Benchmark?"))
				wire, err := proto.Marshal(resp)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				var r request // the read loop's is pooled with its frame buffer
				for b.Loop() {
					if e := r.decode(frame); e != nil {
						b.Fatal(e)
					}
					res := srv.catalog.Load().streams[string(unquoted(r.stream))]
					if res.actions[r.name] == nil {
						b.Fatalf("no action %s", r.name)
					}
					wb := getBuf()
					req, pg, e := buildRequest(*wb, &a, &r, pagesOf(&srv.opts))
					if e != nil {
						b.Fatal(e)
					}
					// The call: the request sent, the response received (as call.go does).
					var out *[]byte
					if a.wire {
						sent := mem.BufferSlice{mem.Copy(req.wire, mem.DefaultBufferPool())}
						sent.Free()
						*wb = req.wire[:0]
						out = getBuf()
						*out, err = appendWireReply(*out, res, &a, wire, pg, r.requestID, false)
					} else {
						if _, err := proto.Marshal(req.msg); err != nil {
							b.Fatal(err)
						}
						got := dynamicpb.NewMessage(a.resp)
						if err := proto.Unmarshal(wire, got); err != nil {
							b.Fatal(err)
						}
						out = getBuf()
						*out, err = appendResponseReply(*out, res, &a, got, pg, r.requestID, false)
					}
					putBuf(wb)
					if err != nil {
						b.Fatal(err)
					}
					if !bytes.Contains(*out, want) {
						b.Fatalf("reply %s, want %s", *out, want)
					}
					putBuf(out)
				}
			})
		}
	}
}
