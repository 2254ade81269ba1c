package polls_test

import (
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// subscribeQuestions returns a live subscription: the backend sends the
// header once it is subscribed, so every later change reaches it.
func (b *backend) subscribeQuestions(t *testing.T, req *pollsv1.SubscribeQuestionsRequest) grpc.ServerStreamingClient[pollsv1.QuestionEvent] {
	t.Helper()
	s, err := b.q.Subscribe(timeout(t), req)
	return live(t, s, err)
}

func (b *backend) subscribeChoices(t *testing.T, req *pollsv1.SubscribeChoicesRequest) grpc.ServerStreamingClient[pollsv1.ChoiceEvent] {
	t.Helper()
	s, err := b.c.Subscribe(timeout(t), req)
	return live(t, s, err)
}

func live[T any](t *testing.T, s grpc.ServerStreamingClient[T], err error) grpc.ServerStreamingClient[T] {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	return s
}

// next fails the test unless the next message of s is want, apart from its offset, which
// must be set (it is opaque), and which next returns.
func next[T any, P interface {
	*T
	proto.Message
}](t *testing.T, s grpc.ServerStreamingClient[T], want P) string {
	t.Helper()
	got, err := s.Recv()
	if err != nil {
		t.Fatalf("Recv: %v, want %v", err, want)
	}
	m := P(got).ProtoReflect()
	fd := m.Descriptor().Fields().ByName("offset")
	offset := m.Get(fd).String()
	if offset == "" {
		t.Fatalf("event %v has no offset", got)
	}
	m.Clear(fd)
	equal(t, P(got), want)
	return offset
}

func TestSubscribeQuestions(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	all := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{})

	// Changes over REST and over gRPC alike are published.
	b.do(t, "POST", "/v1/questions", map[string]any{"question_text": "REST"})
	q1 := &pollsv1.Question{Id: 1, QuestionText: "REST"}
	next(t, all, &pollsv1.QuestionEvent{Action: "create", Pk: 1, Data: q1})

	q2 := b.question(t, "gRPC")
	next(t, all, &pollsv1.QuestionEvent{Action: "create", Pk: 2, Data: q2})

	b.do(t, "PATCH", "/v1/questions/1", map[string]any{"question_text": "REST 2"})
	q1.QuestionText = "REST 2"
	next(t, all, &pollsv1.QuestionEvent{Action: "update", Pk: 1, Data: q1})

	if _, err := b.q.Update(ctx, &pollsv1.UpdateQuestionRequest{Pk: 2, Data: &pollsv1.Question{QuestionText: "gRPC 2"}}); err != nil {
		t.Fatal(err)
	}
	q2.QuestionText = "gRPC 2"
	next(t, all, &pollsv1.QuestionEvent{Action: "update", Pk: 2, Data: q2})

	if code, _ := b.do(t, "POST", "/v1/questions/2:publish", nil); code != http.StatusOK {
		t.Fatalf("publish: %d", code)
	}
	q2.Published = true
	next(t, all, &pollsv1.QuestionEvent{Action: "update", Pk: 2, Data: q2})

	if _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: 2}); err != nil {
		t.Fatal(err)
	}
	next(t, all, &pollsv1.QuestionEvent{Action: "delete", Pk: 2, Data: q2}) // as it was

	// Failed changes and reads publish nothing: the next event is the create.
	b.q.Create(ctx, &pollsv1.CreateQuestionRequest{})
	b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: 2})
	b.q.List(ctx, &pollsv1.ListQuestionsRequest{})
	b.q.Report(ctx, &pollsv1.ReportQuestionsRequest{})
	q3 := b.question(t, "Three")
	next(t, all, &pollsv1.QuestionEvent{Action: "create", Pk: 3, Data: q3})
}

func TestSubscribeFilters(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q1 := b.question(t, "One")
	onlyQ2 := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{Pk: proto.Int64(2)})
	onlyDeletes := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{Actions: []string{"delete"}})
	updatesOrDeletesOfQ1 := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{
		Pk: proto.Int64(1), Actions: []string{"update", "delete"},
	})

	b.question(t, "Two... created after the subscription")
	q2 := &pollsv1.Question{Id: 2, QuestionText: "Two... created after the subscription"}
	if _, err := b.q.Publish(ctx, &pollsv1.PublishQuestionRequest{Pk: q1.Id}); err != nil {
		t.Fatal(err)
	}
	q1.Published = true
	if _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: 2}); err != nil {
		t.Fatal(err)
	}

	next(t, onlyQ2, &pollsv1.QuestionEvent{Action: "create", Pk: 2, Data: q2})
	next(t, onlyQ2, &pollsv1.QuestionEvent{Action: "delete", Pk: 2, Data: q2})
	next(t, onlyDeletes, &pollsv1.QuestionEvent{Action: "delete", Pk: 1, Data: q1})
	next(t, onlyDeletes, &pollsv1.QuestionEvent{Action: "delete", Pk: 2, Data: q2})
	next(t, updatesOrDeletesOfQ1, &pollsv1.QuestionEvent{Action: "update", Pk: 1, Data: q1})
	next(t, updatesOrDeletesOfQ1, &pollsv1.QuestionEvent{Action: "delete", Pk: 1, Data: q1})

	s, err := b.c.Subscribe(ctx, &pollsv1.SubscribeChoicesRequest{Actions: []string{"create", "vote"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantViolations(t, err, "invalid subscription", "actions", `"vote" is not a valid choice.`)
}

func TestSubscribeChoices(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q := b.question(t, "Q")
	s := b.subscribeChoices(t, &pollsv1.SubscribeChoicesRequest{})

	c1 := b.choice(t, q.Id, "a")
	next(t, s, &pollsv1.ChoiceEvent{Action: "create", Pk: c1.Id, Data: c1})
	b.do(t, "POST", "/v1/choices", map[string]any{"question_id": q.Id, "choice_text": "b"})
	c2 := &pollsv1.Choice{Id: 2, QuestionId: q.Id, ChoiceText: "b"}
	next(t, s, &pollsv1.ChoiceEvent{Action: "create", Pk: 2, Data: c2})

	if _, err := b.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: c1.Id}); err != nil {
		t.Fatal(err)
	}
	c1.Votes = 1
	next(t, s, &pollsv1.ChoiceEvent{Action: "update", Pk: c1.Id, Data: c1})

	// Deleting the question deletes its choices, each with its event.
	if code, _ := b.do(t, "DELETE", "/v1/questions/1", nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	next(t, s, &pollsv1.ChoiceEvent{Action: "delete", Pk: c1.Id, Data: c1})
	next(t, s, &pollsv1.ChoiceEvent{Action: "delete", Pk: c2.Id, Data: c2})
}

// TestStopEndsSubscriptions: stopping does not wait for the Subscribe
// streams, which end UNAVAILABLE so that the bridge resubscribes, even when
// the broker is the caller's and stays open.
func TestStopEndsSubscriptions(t *testing.T) {
	broker, err := pubsub.NewMemoryBroker()
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	b := start(t, "", broker)
	s := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{})

	if err := b.srv.GracefulStop(timeout(t)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.Unavailable, "server shutting down")
	if err := b.srv.Wait(); err != nil {
		t.Fatal(err)
	}
}
