package e2e_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/wsbridge/wsbridge/bridge"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// TestErrorTable: every row of docs/protocol.md's error table that the example backend
// can produce, frame by frame, with what each reply echoes. (The gRPC status rows are in
// TestGRPCStatusMapping, "still discovering" in TestNotDiscoveredYet, "shutting down" in
// the shutdown tests.)
func TestErrorTable(t *testing.T) {
	c := newEnv(t).dial()
	q := c.createQuestion("errors?")
	cases := []struct {
		name, frame         string
		status              int
		errors              string
		stream, action, rid any
	}{
		{"invalid JSON", `{"stream":"questions",`, 400, `["Invalid JSON."]`, nil, nil, nil},
		{"frame not an object", `["questions"]`, 400, `["The frame must be a JSON object."]`, nil, nil, nil},
		{"missing payload", `{"stream":"questions"}`, 400, `["Missing payload."]`, "questions", nil, nil},
		{"non-object payload", `{"stream":"questions","payload":"list"}`, 400, `["payload must be a JSON object."]`, "questions", nil, nil},
		{"missing action", `{"stream":"questions","payload":{"request_id":"a"}}`, 400, `["Missing action."]`, "questions", nil, "a"},
		{"non-string action", `{"stream":"questions","payload":{"action":5,"request_id":"b"}}`, 400, `["action must be a string."]`, "questions", nil, "b"},
		{"missing stream", `{"payload":{"action":"list","request_id":"c"}}`, 400, `["Missing stream."]`, nil, "list", "c"},
		{"non-string stream", `{"stream":7,"payload":{"action":"list","request_id":"d"}}`, 400, `["stream must be a string."]`, nil, "list", "d"},
		{"request_id an object", `{"stream":"questions","payload":{"action":"list","request_id":{"id":1}}}`, 400, `["request_id must be a string or a number."]`, "questions", "list", nil},
		{"request_id a boolean", `{"stream":"questions","payload":{"action":"list","request_id":true}}`, 400, `["request_id must be a string or a number."]`, "questions", "list", nil},
		{"request_id an array", `{"stream":"questions","payload":{"action":"list","request_id":["e"]}}`, 400, `["request_id must be a string or a number."]`, "questions", "list", nil},
		{"unknown action", `{"stream":"questions","payload":{"action":"explode","request_id":"f"}}`, 400, `["Invalid Action"]`, "questions", "explode", "f"},
		{"unknown stream", `{"stream":"answers","payload":{"action":"list","request_id":"g"}}`, 404, `["Unknown stream."]`, "answers", "list", "g"},
		{"not found", `{"stream":"questions","payload":{"action":"retrieve","pk":"999999","request_id":"h"}}`, 404, `["Not found."]`, "questions", "retrieve", "h"},
		{"pk not of the key's type", `{"stream":"questions","payload":{"action":"retrieve","pk":"abc","request_id":"i"}}`, 404, `["Not found."]`, "questions", "retrieve", "i"},
		{"data not an object", `{"stream":"questions","payload":{"action":"create","data":"x","request_id":"j"}}`, 400, `["data must be a JSON object."]`, "questions", "create", "j"},
		{"unknown field", `{"stream":"questions","payload":{"action":"create","data":{"question_text":"x","nope":1},"request_id":"k"}}`, 400, `[{"nope":["Unknown field."]}]`, "questions", "create", "k"},
		{"wrong type", `{"stream":"questions","payload":{"action":"create","data":{"question_text":5},"request_id":"l"}}`, 400, `[{"question_text":["Not a valid string."]}]`, "questions", "create", "l"},
		{"page below 1", `{"stream":"questions","payload":{"action":"list","data":{"page":0},"request_id":"m"}}`, 400, `["Invalid page."]`, "questions", "list", "m"},
		{"page not an integer", `{"stream":"questions","payload":{"action":"list","data":{"page":1.5},"request_id":"n"}}`, 400, `["Invalid page."]`, "questions", "list", "n"},
		{"page_size below 1", `{"stream":"questions","payload":{"action":"list","data":{"page_size":0},"request_id":"o"}}`, 400, `["Invalid page size."]`, "questions", "list", "o"},
		{"page_size not an integer", `{"stream":"questions","payload":{"action":"list","data":{"page_size":"ten"},"request_id":"p"}}`, 400, `["Invalid page size."]`, "questions", "list", "p"},
		{"backend field violations", `{"stream":"questions","payload":{"action":"create","data":{},"request_id":"q"}}`, 400, `[{"question_text":["This field is required."]}]`, "questions", "create", "q"},
		{"backend field violations on update", `{"stream":"questions","payload":{"action":"update","pk":"` + q + `","data":{"question_text":""},"request_id":"r"}}`, 400, `[{"question_text":["This field is required."]}]`, "questions", "update", "r"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.sendRaw(tc.frame)
			f := c.next()
			wantErrors(t, f, tc.status, tc.errors)
			if f.Stream != tc.stream || f.Payload["action"] != tc.action || f.Payload["request_id"] != tc.rid {
				t.Fatalf("echo stream=%v action=%v request_id=%v: %s", f.Stream, f.Payload["action"], f.Payload["request_id"], f.raw)
			}
		})
	}
	c.createQuestion("the connection stays open")
}

// statusQuestions answers Retrieve with the gRPC status its pk names.
type statusQuestions struct {
	pollsv1.UnimplementedQuestionServiceServer
}

var statusByPK = map[int64]codes.Code{
	401: codes.Unauthenticated,
	403: codes.PermissionDenied,
	409: codes.AlreadyExists,
	429: codes.ResourceExhausted,
	501: codes.Unimplemented,
	503: codes.Unavailable,
	504: codes.DeadlineExceeded,
	400: codes.FailedPrecondition,
	500: codes.Internal,
}

func (statusQuestions) Retrieve(_ context.Context, req *pollsv1.RetrieveQuestionRequest) (*pollsv1.Question, error) {
	return nil, status.Error(statusByPK[req.GetPk()], "backend says "+statusByPK[req.GetPk()].String())
}

// TestGRPCStatusMapping: any other gRPC status becomes grpc-gateway's HTTP status with the
// status message as the only error.
func TestGRPCStatusMapping(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pollsv1.RegisterQuestionServiceServer(gs, statusQuestions{})
	reflection.Register(gs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	c := newEnvFor(t, &backend{t: t, addr: lis.Addr().String()}).dial()
	for pk, code := range statusByPK {
		f := c.do("questions", map[string]any{"action": "retrieve", "pk": pk})
		wantErrors(t, f, int(pk), `["backend says `+code.String()+`"]`)
	}
	// Unimplemented methods of the same backend: 501 with gRPC's message.
	f := c.do("questions", map[string]any{"action": "list"})
	wantStatus(t, f, 501)
	if !strings.Contains(f.errors(), "not implemented") {
		t.Fatalf("501 without the backend's message: %s", f.raw)
	}
}

// TestNotDiscoveredYet: a bridge whose backend has not answered yet accepts connections
// and answers every request 503 until discovery succeeds.
func TestNotDiscoveredYet(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there until the backend starts below
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: addr}), bridge.WithLogger(quiet),
		bridge.WithDiscoveryRetry(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	c := dialURL(t, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws", nil)
	f := c.do("questions", map[string]any{"action": "list", "request_id": "early"})
	wantErrors(t, f, 503, `["The bridge has not discovered its backends yet."]`)
	if f.Stream != "questions" || f.Payload["action"] != "list" {
		t.Fatalf("echo: %s", f.raw)
	}
	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}),
		503, `["The bridge has not discovered its backends yet."]`)

	b := &backend{t: t, db: t.TempDir() + "/polls.db"}
	b.start(addr)
	t.Cleanup(b.stop)
	waitFor(t, "discovery", srv.Ready)
	wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
}
