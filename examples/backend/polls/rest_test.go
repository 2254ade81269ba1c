package polls_test

import (
	"net/http"
	"reflect"
	"testing"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

// TestREST checks the grpc-gateway API: JSON with the proto field names,
// served by the same services and database as gRPC.
func TestREST(t *testing.T) {
	b := start(t, "", nil)
	ctx := t.Context()
	check := func(method, path string, body any, wantCode int, want map[string]any) {
		t.Helper()
		code, got := b.do(t, method, path, body)
		if code != wantCode || !reflect.DeepEqual(got, want) {
			t.Errorf("%s %s: got %d %v, want %d %v", method, path, code, got, wantCode, want)
		}
	}

	// int64 fields are strings in the protobuf JSON mapping.
	check("POST", "/v1/questions", map[string]any{"question_text": "From REST"}, http.StatusOK,
		map[string]any{"id": "1", "question_text": "From REST", "published": false})
	q, err := b.q.Retrieve(ctx, &pollsv1.RetrieveQuestionRequest{Pk: 1})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, q, &pollsv1.Question{Id: 1, QuestionText: "From REST"})

	b.question(t, "From gRPC")
	check("GET", "/v1/questions/2", nil, http.StatusOK,
		map[string]any{"id": "2", "question_text": "From gRPC", "published": false})
	// The gateway fills the update mask from the keys sent.
	check("PATCH", "/v1/questions/2", map[string]any{"published": true}, http.StatusOK,
		map[string]any{"id": "2", "question_text": "From gRPC", "published": true})
	check("PUT", "/v1/questions/2", map[string]any{"question_text": "Replaced"}, http.StatusOK,
		map[string]any{"id": "2", "question_text": "Replaced", "published": false})
	check("POST", "/v1/questions/2:publish", nil, http.StatusOK,
		map[string]any{"id": "2", "question_text": "Replaced", "published": true})
	check("GET", "/v1/questions:report", nil, http.StatusOK, map[string]any{"total": "2", "published": "1"})
	check("GET", "/v1/questions?page=2&page_size=1", nil, http.StatusOK, map[string]any{
		"questions": []any{map[string]any{"id": "2", "question_text": "Replaced", "published": true}},
		"count":     float64(2),
	})

	check("POST", "/v1/choices", map[string]any{"question_id": "2", "choice_text": "Yes"}, http.StatusOK,
		map[string]any{"id": "1", "question_id": "2", "choice_text": "Yes", "votes": "0"})
	check("POST", "/v1/choices/1:vote", nil, http.StatusOK,
		map[string]any{"id": "1", "question_id": "2", "choice_text": "Yes", "votes": "1"})
	check("GET", "/v1/choices?question_id=1", nil, http.StatusOK, map[string]any{"choices": []any{}, "count": float64(0)})

	// Errors are google.rpc.Status JSON, with the BadRequest detail.
	checkErr := func(path string, body any, msg, field, desc string) {
		t.Helper()
		code, got := b.do(t, "POST", path, body)
		want := map[string]any{"code": float64(3), "message": msg, "@type": "type.googleapis.com/google.rpc.BadRequest",
			"field": field, "description": desc}
		flat := map[string]any{"code": got["code"], "message": got["message"]}
		if d, _ := got["details"].([]any); len(d) == 1 {
			d0, _ := d[0].(map[string]any)
			flat["@type"] = d0["@type"]
			if fv, _ := d0["field_violations"].([]any); len(fv) == 1 {
				fv0, _ := fv[0].(map[string]any)
				flat["field"], flat["description"] = fv0["field"], fv0["description"]
			}
		}
		if code != http.StatusBadRequest || !reflect.DeepEqual(flat, want) {
			t.Errorf("POST %s: got %d %v, want 400 with %v", path, code, got, want)
		}
	}
	checkErr("/v1/questions", map[string]any{"question_text": ""}, "invalid question", "question_text", "This field is required.")
	checkErr("/v1/choices", map[string]any{"question_id": 7, "choice_text": "x"}, "invalid choice",
		"question_id", `Invalid pk "7" - object does not exist.`)

	check("DELETE", "/v1/questions/2", nil, http.StatusOK, map[string]any{})
	check("GET", "/v1/choices/1", nil, http.StatusNotFound,
		map[string]any{"code": float64(5), "message": "Not found.", "details": []any{}})
}
