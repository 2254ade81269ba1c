package polls_test

import (
	"path/filepath"
	"testing"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// TestRestart stops a backend and starts it again on the same address and
// database file: nothing is lost and ids are not reused.
func TestRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "polls.db")
	b := start(t, db, nil)
	q := b.question(t, "Kept")
	c := b.choice(t, q.Id, "Yes")
	if _, err := b.c.Vote(t.Context(), &pollsv1.VoteChoiceRequest{Pk: c.Id}); err != nil {
		t.Fatal(err)
	}
	c.Votes = 1
	gone := b.question(t, "Deleted")
	if _, err := b.q.Delete(t.Context(), &pollsv1.DeleteQuestionRequest{Pk: gone.Id}); err != nil {
		t.Fatal(err)
	}
	b.srv.Stop()
	if err := b.srv.Wait(); err != nil {
		t.Fatal(err)
	}

	b = startOn(t, b.srv.GRPCAddr().String(), db, nil)
	ctx := t.Context()
	got, err := b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: q.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, q)
	gotC, err := b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, gotC, c)
	if next := b.question(t, "New"); next.Id != gone.Id+1 {
		t.Errorf("new question id %d, want %d", next.Id, gone.Id+1)
	}
}
