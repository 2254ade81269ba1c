package polls_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

func TestQuestionCRUD(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()

	q, err := b.q.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{Id: 99, QuestionText: "What's new?"}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, q, &pollsv1.Question{Id: 1, QuestionText: "What's new?"}) // the id is the database's

	got, err := b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: q.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, q)

	got, err = b.q.Update(ctx, &pollsv1.UpdateQuestionRequest{Pk: q.Id, Data: &pollsv1.Question{QuestionText: "Updated", Published: true}})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Question{Id: 1, QuestionText: "Updated", Published: true})

	// A patch changes only the fields of its mask.
	got, err = b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
		Pk: q.Id, Data: &pollsv1.Question{QuestionText: "Patched"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"question_text"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Question{Id: 1, QuestionText: "Patched", Published: true})

	// The read-only id in a mask is ignored; an empty mask changes nothing.
	for _, paths := range [][]string{{"id"}, nil} {
		got, err = b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
			Pk: q.Id, Data: &pollsv1.Question{Id: 5}, UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, &pollsv1.Question{Id: 1, QuestionText: "Patched", Published: true})
	}

	del, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: q.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, del, &pollsv1.DeleteQuestionResponse{})
	_, err = b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: q.Id})
	wantCode(t, err, codes.NotFound, "Not found.")
}

func TestQuestionNotFound(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	data := &pollsv1.Question{QuestionText: "x"}
	for name, call := range map[string]func() error{
		"retrieve": func() error { _, err := b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: 7}); return err },
		"update": func() error {
			_, err := b.q.Update(ctx, &pollsv1.UpdateQuestionRequest{Pk: 7, Data: data})
			return err
		},
		// The missing row is reported before the invalid data, as in Django REST framework.
		"update invalid": func() error {
			_, err := b.q.Update(ctx, &pollsv1.UpdateQuestionRequest{Pk: 7})
			return err
		},
		"patch": func() error {
			_, err := b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{Pk: 7, Data: data})
			return err
		},
		"delete":  func() error { _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: 7}); return err },
		"publish": func() error { _, err := b.q.Publish(ctx, &pollsv1.PublishQuestionRequest{Pk: 7}); return err },
	} {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), codes.NotFound, "Not found.") })
	}
}

func TestQuestionValidation(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	const required, tooLong = "This field is required.", "Ensure this field has no more than 200 characters."

	for name, tc := range map[string]struct {
		text string
		want string // "" means valid
	}{
		"empty":              {"", required},
		"200 characters":     {strings.Repeat("é", 200), ""}, // 400 bytes, but 200 characters
		"201 characters":     {strings.Repeat("a", 201), tooLong},
		"201 characters (é)": {strings.Repeat("é", 201), tooLong},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := b.q.Create(ctx, &pollsv1.CreateQuestionRequest{Data: &pollsv1.Question{QuestionText: tc.text}})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantViolations(t, err, "invalid question", "question_text", tc.want)
		})
	}

	_, err := b.q.Create(ctx, &pollsv1.CreateQuestionRequest{})
	wantViolations(t, err, "invalid question", "question_text", required)

	q := b.question(t, "Valid")
	// An update is a full replace and is validated like a create.
	_, err = b.q.Update(ctx, &pollsv1.UpdateQuestionRequest{Pk: q.Id, Data: &pollsv1.Question{Published: true}})
	wantViolations(t, err, "invalid question", "question_text", required)

	// A patch validates the fields it changes, and only those.
	_, err = b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
		Pk: q.Id, Data: &pollsv1.Question{QuestionText: strings.Repeat("a", 201)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"question_text"}},
	})
	wantViolations(t, err, "invalid question", "question_text", tooLong)
	got, err := b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
		Pk: q.Id, Data: &pollsv1.Question{Published: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"published"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Question{Id: q.Id, QuestionText: "Valid", Published: true})

	_, err = b.q.Patch(ctx, &pollsv1.PatchQuestionRequest{
		Pk: q.Id, Data: &pollsv1.Question{}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"votes"}},
	})
	wantViolations(t, err, "invalid update_mask", "update_mask", `Unknown field "votes".`)

	// Nothing invalid was stored.
	got, err = b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: q.Id})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, &pollsv1.Question{Id: q.Id, QuestionText: "Valid", Published: true})
}

func TestQuestionList(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	for i := range 30 {
		b.question(t, "Q"+string(rune('A'+i)))
	}
	ids := func(r *pollsv1.ListQuestionsResponse) (out []int64) {
		for _, q := range r.GetQuestions() {
			out = append(out, q.GetId())
		}
		return out
	}
	seq := func(from, to int64) (out []int64) {
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	for name, tc := range map[string]struct {
		page, size int32
		want       []int64
	}{
		"defaults":         {0, 0, seq(1, 25)},
		"page 2":           {2, 0, seq(26, 30)},
		"past the end":     {3, 0, nil},
		"page size":        {3, 10, seq(21, 30)},
		"page size 1":      {30, 1, seq(30, 30)},
		"far past the end": {1 << 30, 1 << 30, nil},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := b.q.List(ctx, &pollsv1.ListQuestionsRequest{Page: tc.page, PageSize: tc.size})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(r); r.Count != 30 || !slices.Equal(got, tc.want) {
				t.Errorf("got ids %v count %d, want %v count 30", got, r.Count, tc.want)
			}
		})
	}

	_, err := b.q.List(ctx, &pollsv1.ListQuestionsRequest{Page: -1, PageSize: -1})
	wantViolations(t, err, "invalid page",
		"page", "Ensure this value is greater than or equal to 1.",
		"page_size", "Ensure this value is greater than or equal to 1.")
}

func TestQuestionPublishAndReport(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()

	r, err := b.q.Report(ctx, &pollsv1.ReportQuestionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ReportQuestionsResponse{})

	q1, q2 := b.question(t, "One"), b.question(t, "Two")
	b.question(t, "Three")
	for range 2 { // publishing twice is fine
		got, err := b.q.Publish(ctx, &pollsv1.PublishQuestionRequest{Pk: q2.Id})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, got, &pollsv1.Question{Id: q2.Id, QuestionText: "Two", Published: true})
	}
	r, err = b.q.Report(ctx, &pollsv1.ReportQuestionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ReportQuestionsResponse{Total: 3, Published: 1})

	if _, err := b.q.Delete(ctx, &pollsv1.DeleteQuestionRequest{Pk: q1.Id}); err != nil {
		t.Fatal(err)
	}
	r, err = b.q.Report(ctx, &pollsv1.ReportQuestionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, r, &pollsv1.ReportQuestionsResponse{Total: 2, Published: 1})
}
