package polls_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/wsbridge/wsbridge/examples/backend/polls"
	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var grpcInsecure = grpc.WithTransportCredentials(insecure.NewCredentials())

// backend is a running server with clients for it.
type backend struct {
	srv  *polls.Server
	q    pollsv1.QuestionServiceClient
	c    pollsv1.ChoiceServiceClient
	conn *grpc.ClientConn
	rest string // base URL of the REST API
	http *http.Client
}

// start serves a backend on loopback with the database db (a fresh one in
// a temporary directory if db is "") and broker b (nil: its own), stopped
// when the test ends.
func start(t *testing.T, db string, b pubsub.Broker) *backend {
	t.Helper()
	return startOn(t, "127.0.0.1:0", db, b)
}

func startOn(t *testing.T, addr, db string, b pubsub.Broker) *backend {
	t.Helper()
	if db == "" {
		db = filepath.Join(t.TempDir(), "polls.db")
	}
	glis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := polls.Start(t.Context(), polls.Config{GRPCListener: glis, HTTPListener: hlis, DBPath: db, Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpcInsecure)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &backend{
		srv:  srv,
		q:    pollsv1.NewQuestionServiceClient(conn),
		c:    pollsv1.NewChoiceServiceClient(conn),
		conn: conn,
		rest: "http://" + srv.HTTPAddr().String(),
		http: &http.Client{Transport: tr, Timeout: 10 * time.Second},
	}
}

// do sends a REST request with a JSON body (nil: none) and returns the
// status code and the decoded JSON response.
func (b *backend) do(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.rest+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s %s: decoding response: %v", method, path, err)
	}
	return resp.StatusCode, out
}

func (b *backend) question(t *testing.T, text string) *pollsv1.Question {
	t.Helper()
	q, err := b.q.Create(t.Context(), &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: text}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (b *backend) choice(t *testing.T, questionID int64, text string) *pollsv1.Choice {
	t.Helper()
	c, err := b.c.Create(t.Context(), &pollsv1.CreateChoiceRequest{Data: &pollsv1.Choice{QuestionId: questionID, ChoiceText: text}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// equal fails the test unless the messages are equal.
func equal(t *testing.T, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// wantCode fails the test unless err has the code and message.
func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || st.Message() != msg {
		t.Fatalf("got %v, want %v %q", err, code, msg)
	}
}

// wantViolations fails the test unless err is INVALID_ARGUMENT msg with a
// BadRequest of exactly the field violations field, description, ...
func wantViolations(t *testing.T, err error, msg string, fieldDesc ...string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument, msg)
	want := &errdetails.BadRequest{}
	for i := 0; i < len(fieldDesc); i += 2 {
		want.FieldViolations = append(want.FieldViolations,
			&errdetails.BadRequest_FieldViolation{Field: fieldDesc[i], Description: fieldDesc[i+1]})
	}
	details := status.Convert(err).Details()
	if len(details) != 1 {
		t.Fatalf("details %v, want one BadRequest", details)
	}
	got, ok := details[0].(*errdetails.BadRequest)
	if !ok || !proto.Equal(got, want) {
		t.Fatalf("details %v, want %v", details[0], want)
	}
}

// timeout is a test context with a deadline, so that a lost event fails
// the test instead of hanging it.
func timeout(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}
