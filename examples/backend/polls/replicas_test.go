package polls_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsbridge/wsbridge/pubsub"
	"github.com/wsbridge/wsbridge/pubsub/natsbroker"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// runNATS runs an embedded NATS server on a free loopback port.
func runNATS(t *testing.T) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	return ns
}

// natsBroker is a broker on its own connection to ns, as each replica has.
func natsBroker(t *testing.T, ns *server.Server) pubsub.Broker {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := natsbroker.New(t.Context(), nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestReplicas runs two replicas on one database file, each publishing on
// its own NATS connection: a change made through either reaches the
// subscribers of both.
func TestReplicas(t *testing.T) {
	ns := runNATS(t)
	db := filepath.Join(t.TempDir(), "polls.db")
	a := start(t, db, natsBroker(t, ns))
	b := start(t, db, natsBroker(t, ns))
	ctx := t.Context()

	qs := b.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{})
	cs := b.subscribeChoices(t, &pollsv1.SubscribeChoicesRequest{})
	qsA := a.subscribeQuestions(t, &pollsv1.SubscribeQuestionsRequest{})

	q := a.question(t, "Via A")
	next(t, qs, &pollsv1.QuestionEvent{Action: "create", Pk: q.Id, Data: q})
	next(t, qsA, &pollsv1.QuestionEvent{Action: "create", Pk: q.Id, Data: q})
	got, err := b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: q.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, q)

	a.do(t, "POST", "/v1/choices", map[string]any{"question_id": q.Id, "choice_text": "REST via A"})
	c := &pollsv1.Choice{Id: 1, QuestionId: q.Id, ChoiceText: "REST via A"}
	next(t, cs, &pollsv1.ChoiceEvent{Action: "create", Pk: 1, Data: c})
	if _, err := b.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: 1}); err != nil {
		t.Fatal(err)
	}
	c.Votes = 1
	next(t, cs, &pollsv1.ChoiceEvent{Action: "update", Pk: 1, Data: c})

	// Concurrent writes through both replicas wait for each other's locks
	// rather than failing.
	var wg sync.WaitGroup
	for i := range 40 {
		r := []*backend{a, b}[i%2]
		wg.Go(func() {
			_, err := r.q.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: fmt.Sprint(i)}})
			if err != nil {
				t.Error(err)
			}
			if _, err := r.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: 1}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	report, err := a.q.Report(ctx, &pollsv1.ReportQuestionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c, err = b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: 1})
	if err != nil {
		t.Fatal(err)
	}
	if report.Total != 41 || c.Votes != 41 {
		t.Errorf("%d questions and %d votes, want 41 and 41", report.Total, c.Votes)
	}
	for range 40 {
		if ev, err := qs.Recv(); err != nil || ev.Action != "create" {
			t.Fatalf("got %v, %v, want a create", ev, err)
		}
	}
}
