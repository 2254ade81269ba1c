package e2e_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// Subscriptions across backend restarts, and changes made behind the bridge's back.

// TestSubscribeBackendRestart: when the backend goes away every subscription gets one 503
// notice; once the bridge has subscribed again each gets a "resumed" notice, and events flow.
func TestSubscribeBackendRestart(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Restart?")
	c := e.dial()
	c.subSubscribe("upd", nil, "update")
	c.subSubscribe("pk", q, []string{"update", "delete"})
	o := e.dial()
	o.subSubscribe("upd-o", nil, "update") // shares c's "upd" upstream
	subWaitUpstreams(t, e, 2)

	e.backend.restart()

	// On c the two subscriptions' notices interleave in any order, but each one's 503 comes
	// before its resumed.
	seen := map[string]int{} // request_id → notices so far
	for range 4 {
		f := c.next()
		id, _ := f.Payload["request_id"].(string)
		if f.Payload["action"] != "subscribe" {
			t.Fatalf("frame during the outage: %s", f.raw)
		}
		switch seen[id] {
		case 0:
			wantStatus(t, f, 503)
			if f.Payload["data"] != nil || f.errors() == "[]" {
				t.Fatalf("503 notice without errors or with data: %s", f.raw)
			}
		case 1:
			subWantResumed(t, f, id)
		default:
			t.Fatalf("third notice for %s: %s", id, f.raw)
		}
		seen[id]++
	}
	if seen["upd"] != 2 || seen["pk"] != 2 {
		t.Fatalf("notices per subscription: %v", seen)
	}
	f := o.next()
	wantStatus(t, f, 503)
	if f.Payload["request_id"] != "upd-o" {
		t.Fatalf("503 notice for the wrong subscription: %s", f.raw)
	}
	subWantResumed(t, o.next(), "upd-o")
	subWaitUpstreams(t, e, 2)

	// Live again: the changes after "resumed" reach every subscription.
	w.subUpdate(q, "Restarted?")
	got := c.subEvents(2)
	subWantEvent(t, got["upd"], "update", q, "upd")
	subWantEvent(t, got["pk"], "update", q, "pk")
	o.subEvent("update", q, "upd-o")
	w.subDelete(q)
	c.subEvent("delete", q, "pk")
	c.subSync()
	o.subSync()
}

func subWantResumed(t *testing.T, f frame, id string) {
	t.Helper()
	wantStatus(t, f, 200)
	d := f.data()
	if f.Payload["action"] != "subscribe" || d["resumed"] != true || d["action"] == nil || f.Payload["request_id"] != id {
		t.Fatalf("want the resumed notice of %s, got %s", id, f.raw)
	}
}

// TestSubscribeDirectGRPCChanges: changes made through the backend's gRPC API, not through
// the bridge, reach the bridge's subscribers.
func TestSubscribeDirectGRPCChanges(t *testing.T) {
	e := newEnv(t)
	cc, err := grpc.NewClient(e.backend.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	qs := pollsv1.NewQuestionServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := e.dial()
	c.subSubscribe("all", nil, []string{"create", "update", "delete"})

	q, err := qs.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: "Over gRPC?"}})
	if err != nil {
		t.Fatal(err)
	}
	pk := strconv.FormatInt(q.GetId(), 10)
	if d := c.subEvent("create", pk, "all"); d["question_text"] != "Over gRPC?" {
		t.Fatalf("create event data: %v", d)
	}

	if _, err := qs.Publish(ctx, &pollsv1.PublishQuestionRequest{Pk: q.GetId()}); err != nil {
		t.Fatal(err)
	}
	if d := c.subEvent("update", pk, "all"); d["published"] != true {
		t.Fatalf("update event data: %v", d)
	}

	if _, err := qs.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: q.GetId()}); err != nil {
		t.Fatal(err)
	}
	if d := c.subEvent("delete", pk, "all"); d["question_text"] != "Over gRPC?" || d["published"] != true {
		t.Fatalf("delete event data: %v", d)
	}
	c.subSync()
}
