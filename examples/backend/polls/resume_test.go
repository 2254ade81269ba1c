package polls_test

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/wsbridge/wsbridge/pubsub"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// header fails the test unless s's response header has exactly the given pubsub.Header*
// values ("" for absent).
func header[T any](t *testing.T, s grpc.ServerStreamingClient[T], want map[string]string) {
	t.Helper()
	md, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	for key, w := range want {
		if got := md.Get(key); (w == "" && len(got) != 0) || (w != "" && (len(got) != 1 || got[0] != w)) {
			t.Errorf("header %s = %q, want %q", key, got, w)
		}
	}
}

func offsetOf(t *testing.T, md metadata.MD) string {
	t.Helper()
	v := md.Get(pubsub.HeaderOffset)
	if len(v) != 1 || v[0] == "" {
		t.Fatalf("header %s = %q, want one offset", pubsub.HeaderOffset, v)
	}
	return v[0]
}

// A subscriber that comes back with the offset of the last event it saw gets, through the
// Subscribe RPC, the changes it missed, then the live ones; the header says it recovered
// and how many events were replayed. The pk and actions filter applies to the replay.
func TestSubscribeResume(t *testing.T) {
	b := start(t, "", nil)
	q := b.question(t, "First")
	ctx, cancel := context.WithCancel(timeout(t))
	s := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{Pk: &q.Id, Actions: []string{"update"}})
	md, _ := s.Header()
	first := offsetOf(t, md)
	header(t, s, map[string]string{pubsub.HeaderRecovered: "", pubsub.HeaderReplayed: ""})
	if _, err := b.q.Publish(ctx, &pollsv1.PublishQuestionRequest{Pk: q.Id}); err != nil {
		t.Fatal(err)
	}
	q.Published = true
	seen := next(t, s, &pollsv1.QuestionEvent{Action: "update", Pk: q.Id, Data: q})
	cancel()

	// Missed: an update of q, a question of another key, and a patch of q.
	b.do(t, "PATCH", "/v1/questions/1", map[string]any{"question_text": "Second"})
	b.question(t, "Other")
	b.do(t, "PATCH", "/v1/questions/1", map[string]any{"question_text": "Third"})

	r, err := b.q.Subscribe(timeout(t), &pollsv1.SubscribeQuestionsRequest{Pk: &q.Id, Actions: []string{"update"}, Since: seen})
	if err != nil {
		t.Fatal(err)
	}
	header(t, r, map[string]string{pubsub.HeaderOffset: seen, pubsub.HeaderRecovered: "true", pubsub.HeaderReplayed: "2"})
	q.QuestionText = "Second"
	next(t, r, &pollsv1.QuestionEvent{Action: "update", Pk: q.Id, Data: q})
	q.QuestionText = "Third"
	last := next(t, r, &pollsv1.QuestionEvent{Action: "update", Pk: q.Id, Data: q})
	b.do(t, "PATCH", "/v1/questions/1", map[string]any{"question_text": "Live"})
	q.QuestionText = "Live"
	next(t, r, &pollsv1.QuestionEvent{Action: "update", Pk: q.Id, Data: q})
	if last == seen {
		t.Fatalf("two events with offset %q", last)
	}

	// A since from before the history (here, one that no broker made) is not recovered:
	// the stream starts live, and its header offset is the latest position.
	lost, err := b.q.Subscribe(timeout(t), &pollsv1.SubscribeQuestionsRequest{Since: "0:0"})
	if err != nil {
		t.Fatal(err)
	}
	header(t, lost, map[string]string{pubsub.HeaderRecovered: "false", pubsub.HeaderReplayed: "0"})
	md, _ = lost.Header()
	if got := offsetOf(t, md); got == first || got == seen {
		t.Fatalf("header offset %q of an unrecovered stream is an old position", got)
	}
}

// Resuming on the other replica: the offsets are the shared JetStream stream's, so a
// subscriber that saw an event through replica B resumes through replica A.
func TestReplicasResume(t *testing.T) {
	ns := runNATS(t)
	db := filepath.Join(t.TempDir(), "polls.db")
	a := start(t, db, natsBroker(t, ns))
	b := start(t, db, natsBroker(t, ns))

	ctx, cancel := context.WithCancel(timeout(t))
	s, err := b.q.Subscribe(ctx, &pollsv1.SubscribeQuestionsRequest{})
	s = live(t, s, err)
	q := a.question(t, "Via A")
	seen := next(t, s, &pollsv1.QuestionEvent{Action: "create", Pk: q.Id, Data: q})
	cancel()

	q2 := b.question(t, "Missed, via B")
	r, err := a.q.Subscribe(timeout(t), &pollsv1.SubscribeQuestionsRequest{Since: seen})
	if err != nil {
		t.Fatal(err)
	}
	header(t, r, map[string]string{pubsub.HeaderOffset: seen, pubsub.HeaderRecovered: "true", pubsub.HeaderReplayed: "1"})
	next(t, r, &pollsv1.QuestionEvent{Action: "create", Pk: q2.Id, Data: q2})
	q3 := b.question(t, "Live, via B")
	next(t, r, &pollsv1.QuestionEvent{Action: "create", Pk: q3.Id, Data: q3})
}
