package polls_test

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

func TestChoiceCRUD(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q1, q2 := b.question(t, "One"), b.question(t, "Two")

	c, err := b.c.Create(ctx, &pollsv1.CreateChoiceRequest{Data: &pollsv1.Choice{QuestionId: q1.Id, ChoiceText: "Yes"}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, c, &pollsv1.Choice{Id: 1, QuestionId: q1.Id, ChoiceText: "Yes"})

	got, err := b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, c)

	got, err = b.c.Update(ctx, &pollsv1.UpdateChoiceRequest{Pk: c.Id, Data: &pollsv1.Choice{QuestionId: q2.Id, ChoiceText: "No", Votes: 3}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Choice{Id: c.Id, QuestionId: q2.Id, ChoiceText: "No", Votes: 3})

	got, err = b.c.Patch(ctx, &pollsv1.PatchChoiceRequest{
		Pk: c.Id, Data: &pollsv1.Choice{ChoiceText: "Maybe"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"choice_text"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Choice{Id: c.Id, QuestionId: q2.Id, ChoiceText: "Maybe", Votes: 3})

	if _, err := b.c.Delete(ctx, &pollsv1.DeleteChoiceRequest{Pk: c.Id}); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		second(b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})),
		second(b.c.Update(ctx, &pollsv1.UpdateChoiceRequest{Pk: c.Id, Data: &pollsv1.Choice{QuestionId: q1.Id, ChoiceText: "x"}})),
		second(b.c.Patch(ctx, &pollsv1.PatchChoiceRequest{Pk: c.Id})),
		second(b.c.Delete(ctx, &pollsv1.DeleteChoiceRequest{Pk: c.Id})),
		second(b.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: c.Id})),
	} {
		wantCode(t, err, codes.NotFound, "Not found.")
	}
}

func second[T any](_ T, err error) error { return err }

func TestChoiceValidation(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q := b.question(t, "Q")

	_, err := b.c.Create(ctx, &pollsv1.CreateChoiceRequest{Data: &pollsv1.Choice{QuestionId: 7, ChoiceText: "x"}})
	wantViolations(t, err, "invalid choice", "question_id", `Invalid pk "7" - object does not exist.`)

	_, err = b.c.Create(ctx, &pollsv1.CreateChoiceRequest{})
	wantViolations(t, err, "invalid choice",
		"question_id", "This field is required.",
		"choice_text", "This field is required.")

	_, err = b.c.Create(ctx, &pollsv1.CreateChoiceRequest{Data: &pollsv1.Choice{QuestionId: q.Id, ChoiceText: strings.Repeat("ü", 201)}})
	wantViolations(t, err, "invalid choice", "choice_text", "Ensure this field has no more than 200 characters.")

	c := b.choice(t, q.Id, "Yes")
	_, err = b.c.Update(ctx, &pollsv1.UpdateChoiceRequest{Pk: c.Id, Data: &pollsv1.Choice{QuestionId: 8, ChoiceText: "Yes"}})
	wantViolations(t, err, "invalid choice", "question_id", `Invalid pk "8" - object does not exist.`)

	_, err = b.c.Patch(ctx, &pollsv1.PatchChoiceRequest{
		Pk: c.Id, Data: &pollsv1.Choice{QuestionId: 9},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"question_id"}},
	})
	wantViolations(t, err, "invalid choice", "question_id", `Invalid pk "9" - object does not exist.`)

	got, err := b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, c)
}

func TestChoiceList(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q1, q2 := b.question(t, "One"), b.question(t, "Two")
	var want1, want2 []*pollsv1.Choice
	for range 3 {
		want1 = append(want1, b.choice(t, q1.Id, "a"))
		want2 = append(want2, b.choice(t, q2.Id, "b"))
	}

	r, err := b.c.List(ctx, &pollsv1.ListChoicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ListChoicesResponse{Choices: interleave(want1, want2), Count: 6})

	r, err = b.c.List(ctx, &pollsv1.ListChoicesRequest{QuestionId: proto.Int64(q2.Id)})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ListChoicesResponse{Choices: want2, Count: 3})

	r, err = b.c.List(ctx, &pollsv1.ListChoicesRequest{QuestionId: proto.Int64(q2.Id), Page: 2, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ListChoicesResponse{Choices: want2[2:], Count: 3})

	r, err = b.c.List(ctx, &pollsv1.ListChoicesRequest{QuestionId: proto.Int64(99)})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ListChoicesResponse{})
}

func interleave[T any](a, b []T) (out []T) {
	for i := range a {
		out = append(out, a[i], b[i])
	}
	return out
}

func TestVote(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	c := b.choice(t, b.question(t, "Q").Id, "Yes")

	got, err := b.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Choice{Id: c.Id, QuestionId: c.QuestionId, ChoiceText: "Yes", Votes: 1})

	// Concurrent votes all count.
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := b.c.Vote(ctx, &pollsv1.VoteChoiceRequest{Pk: c.Id}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err = b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})
	if err != nil {
		t.Fatal(err)
	}
	if got.Votes != 51 {
		t.Errorf("votes = %d, want 51", got.Votes)
	}
}

func TestDeleteQuestionDeletesChoices(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	q, other := b.question(t, "Q"), b.question(t, "Other")
	c1, c2, kept := b.choice(t, q.Id, "a"), b.choice(t, q.Id, "b"), b.choice(t, other.Id, "c")

	if _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: q.Id}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pollsv1.Choice{c1, c2} {
		_, err := b.c.Retrieve(ctx, &pollsv1.RetrieveChoiceRequest{Pk: c.Id})
		wantCode(t, err, codes.NotFound, "Not found.")
	}
	r, err := b.c.List(ctx, &pollsv1.ListChoicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ListChoicesResponse{Choices: []*pollsv1.Choice{kept}, Count: 1})
}
