package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

func TestReplyHasExactlyTheFiveKeys(t *testing.T) {
	c := newEnv(t).dial()
	c.sendRaw(`{"stream":"questions","payload":{"action":"create","data":{"question_text":"Keys?"},"request_id":"abc"}}`)
	f := c.next()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(f.raw, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 2 || top["stream"] == nil || top["payload"] == nil {
		t.Fatalf("top-level keys: %s", f.raw)
	}
	want := []string{"action", "data", "errors", "request_id", "response_status"}
	var keys []string
	for k := range f.Payload {
		keys = append(keys, k)
	}
	if fmt.Sprint(sorted(keys)) != fmt.Sprint(want) {
		t.Fatalf("payload keys %v, want %v", sorted(keys), want)
	}
	if f.Stream != "questions" || f.Payload["action"] != "create" || f.Payload["request_id"] != "abc" {
		t.Fatalf("echo wrong: %s", f.raw)
	}
	if f.errors() != "[]" {
		t.Fatalf("errors %s on success, want []", f.errors())
	}
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func TestCRUD(t *testing.T) {
	c := newEnv(t).dial()

	f := c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "What is up?"}})
	wantStatus(t, f, 201)
	q := f.data()
	id := q["id"].(string)
	if q["question_text"] != "What is up?" || q["published"] != false || id == "" {
		t.Fatalf("created %v", q)
	}

	f = c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantStatus(t, f, 200)
	if f.data()["question_text"] != "What is up?" {
		t.Fatalf("retrieved %s", f.raw)
	}

	// A numeric pk works as well as a string one.
	f = c.do("questions", map[string]any{"action": "retrieve", "pk": json.Number(id)})
	wantStatus(t, f, 200)

	f = c.do("questions", map[string]any{"action": "update", "pk": id, "data": map[string]any{"question_text": "Replaced", "published": true}})
	wantStatus(t, f, 200)
	if d := f.data(); d["question_text"] != "Replaced" || d["published"] != true || d["id"] != id {
		t.Fatalf("updated %s", f.raw)
	}

	// Update is a full replace: an absent field is reset.
	f = c.do("questions", map[string]any{"action": "update", "pk": id, "data": map[string]any{"question_text": "Again"}})
	wantStatus(t, f, 200)
	if d := f.data(); d["published"] != false {
		t.Fatalf("update kept published: %s", f.raw)
	}

	// Patch changes only the fields present.
	c.do("questions", map[string]any{"action": "update", "pk": id, "data": map[string]any{"question_text": "Base", "published": true}})
	f = c.do("questions", map[string]any{"action": "patch", "pk": id, "data": map[string]any{"question_text": "Patched"}})
	wantStatus(t, f, 200)
	if d := f.data(); d["question_text"] != "Patched" || d["published"] != true {
		t.Fatalf("patched %s", f.raw)
	}
	f = c.do("questions", map[string]any{"action": "patch", "pk": id, "data": map[string]any{"published": false}})
	if d := f.data(); d["question_text"] != "Patched" || d["published"] != false {
		t.Fatalf("patched %s", f.raw)
	}

	f = c.do("questions", map[string]any{"action": "delete", "pk": id})
	wantStatus(t, f, 200)
	if string(mustJSON(t, f.Payload["data"])) != "{}" {
		t.Fatalf("delete data %s, want {}", f.raw)
	}
	f = c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantErrors(t, f, 404, `["Not found."]`)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNotFound(t *testing.T) {
	c := newEnv(t).dial()
	for _, pk := range []any{"999", 999, "invalid-pk-value", 1.5, "", true} {
		f := c.do("questions", map[string]any{"action": "retrieve", "pk": pk})
		wantErrors(t, f, 404, `["Not found."]`)
	}
	for _, action := range []string{"update", "patch"} {
		f := c.do("questions", map[string]any{"action": action, "pk": "424242", "data": map[string]any{"question_text": "x"}})
		wantErrors(t, f, 404, `["Not found."]`)
	}
	for _, action := range []string{"delete", "publish"} {
		f := c.do("questions", map[string]any{"action": action, "pk": "424242"})
		wantErrors(t, f, 404, `["Not found."]`)
	}
	// A detail action without a pk cannot find anything either.
	f := c.do("questions", map[string]any{"action": "retrieve"})
	wantErrors(t, f, 404, `["Not found."]`)
}

func TestValidation(t *testing.T) {
	c := newEnv(t).dial()
	cases := []struct {
		data map[string]any
		want string
	}{
		{map[string]any{}, `[{"question_text":["This field is required."]}]`},
		{map[string]any{"question_text": ""}, `[{"question_text":["This field is required."]}]`},
		{map[string]any{"question_text": strings.Repeat("x", 201)}, `[{"question_text":["Ensure this field has no more than 200 characters."]}]`},
	}
	for _, tc := range cases {
		f := c.do("questions", map[string]any{"action": "create", "data": tc.data})
		wantErrors(t, f, 400, tc.want)
	}
	// Update validates like create.
	id := c.createQuestion("Valid")
	f := c.do("questions", map[string]any{"action": "update", "pk": id, "data": map[string]any{}})
	wantErrors(t, f, 400, `[{"question_text":["This field is required."]}]`)
	f = c.do("questions", map[string]any{"action": "patch", "pk": id, "data": map[string]any{"question_text": ""}})
	wantErrors(t, f, 400, `[{"question_text":["This field is required."]}]`)

	// 200 characters is fine.
	f = c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": strings.Repeat("é", 200)}})
	wantStatus(t, f, 201)

	// A choice needs an existing question.
	f = c.do("choices", map[string]any{"action": "create", "data": map[string]any{"question_id": "7777", "choice_text": "Yes"}})
	wantStatus(t, f, 400)
	if !strings.HasPrefix(f.errors(), `[{"question_id":[`) {
		t.Fatalf("errors %s, want a field error on question_id", f.errors())
	}
	f = c.do("choices", map[string]any{"action": "create", "data": map[string]any{"question_id": id, "choice_text": ""}})
	wantErrors(t, f, 400, `[{"choice_text":["This field is required."]}]`)

	// Fields the message does not know are refused, not dropped.
	f = c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "x", "colour": "red"}})
	wantErrors(t, f, 400, `[{"colour":["Unknown field."]}]`)
	// Values of the wrong type are refused with the field named.
	f = c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": 12}})
	wantErrors(t, f, 400, `[{"question_text":["Not a valid string."]}]`)
	// Both spellings of a field name are accepted.
	f = c.do("questions", map[string]any{"action": "create", "data": map[string]any{"questionText": "camel"}})
	wantStatus(t, f, 201)
	// data must be an object.
	f = c.do("questions", map[string]any{"action": "create", "data": "text"})
	wantErrors(t, f, 400, `["data must be a JSON object."]`)
}

func TestListPagination(t *testing.T) {
	c := newEnv(t, bridge.WithPageSize(3, 4)).dial()
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, c.createQuestion(fmt.Sprintf("Q%d", i)))
	}
	page := func(data map[string]any) frame {
		t.Helper()
		p := map[string]any{"action": "list"}
		if data != nil {
			p["data"] = data
		}
		f := c.do("questions", p)
		return f
	}
	gotIDs := func(f frame) []string {
		var out []string
		for _, q := range f.list() {
			out = append(out, q.(map[string]any)["id"].(string))
		}
		return out
	}
	meta := func(f frame) string { return string(mustJSON(t, f.Payload["meta"])) }

	f := page(nil)
	wantStatus(t, f, 200)
	if fmt.Sprint(gotIDs(f)) != fmt.Sprint(ids[:3]) || meta(f) != `{"count":7,"page":1,"page_size":3}` {
		t.Fatalf("default page: %s", f.raw)
	}
	f = page(map[string]any{"page": 2})
	if fmt.Sprint(gotIDs(f)) != fmt.Sprint(ids[3:6]) {
		t.Fatalf("page 2: %s", f.raw)
	}
	f = page(map[string]any{"page": 3, "page_size": 3})
	if fmt.Sprint(gotIDs(f)) != fmt.Sprint(ids[6:]) {
		t.Fatalf("page 3: %s", f.raw)
	}
	// Past the end: 200 with an empty list.
	f = page(map[string]any{"page": 9})
	wantStatus(t, f, 200)
	if string(mustJSON(t, f.Payload["data"])) != "[]" {
		t.Fatalf("past the end: %s", f.raw)
	}
	// A page size above the maximum is capped.
	f = page(map[string]any{"page_size": 100})
	if len(f.list()) != 4 || meta(f) != `{"count":7,"page":1,"page_size":4}` {
		t.Fatalf("capped: %s", f.raw)
	}
	// Numbers as strings are integers too.
	f = page(map[string]any{"page": "2", "page_size": "2"})
	if fmt.Sprint(gotIDs(f)) != fmt.Sprint(ids[2:4]) {
		t.Fatalf("string page: %s", f.raw)
	}
	for _, bad := range []any{0, -1, "x", 1.5, true} {
		wantErrors(t, page(map[string]any{"page": bad}), 400, `["Invalid page."]`)
		wantErrors(t, page(map[string]any{"page_size": bad}), 400, `["Invalid page size."]`)
	}
	// The list reply carries meta; other replies do not.
	if _, ok := c.do("questions", map[string]any{"action": "retrieve", "pk": ids[0]}).Payload["meta"]; ok {
		t.Fatal("retrieve reply has meta")
	}
}

func TestCustomActions(t *testing.T) {
	c := newEnv(t).dial()
	id := c.createQuestion("Publish me")
	c.createQuestion("Not me")

	f := c.do("questions", map[string]any{"action": "publish", "pk": id})
	wantStatus(t, f, 200)
	if d := f.data(); d["published"] != true || d["id"] != id {
		t.Fatalf("publish: %s", f.raw)
	}
	f = c.do("questions", map[string]any{"action": "report"})
	wantStatus(t, f, 200)
	if fmt.Sprint(f.data()["total"]) != "2" || fmt.Sprint(f.data()["published"]) != "1" {
		t.Fatalf("report: %s", f.raw)
	}

	f = c.do("choices", map[string]any{"action": "create", "data": map[string]any{"question_id": id, "choice_text": "Yes"}})
	wantStatus(t, f, 201)
	choice := f.data()["id"].(string)
	for i := 1; i <= 3; i++ {
		f = c.do("choices", map[string]any{"action": "vote", "pk": choice})
		wantStatus(t, f, 200)
		if fmt.Sprint(f.data()["votes"]) != fmt.Sprint(i) {
			t.Fatalf("vote %d: %s", i, f.raw)
		}
	}
	f = c.do("choices", map[string]any{"action": "list"})
	if len(f.list()) != 1 || fmt.Sprint(f.Payload["meta"].(map[string]any)["count"]) != "1" {
		t.Fatalf("choices list: %s", f.raw)
	}

	// Deleting a question deletes its choices.
	c.do("questions", map[string]any{"action": "delete", "pk": id})
	f = c.do("choices", map[string]any{"action": "retrieve", "pk": choice})
	wantErrors(t, f, 404, `["Not found."]`)
}

func TestProtocolErrors(t *testing.T) {
	c := newEnv(t).dial()
	cases := []struct {
		name, frame         string
		status              int
		errors              string
		stream, action, rid any
	}{
		{"unknown action", `{"stream":"questions","payload":{"action":"explode","request_id":"1"}}`, 400, `["Invalid Action"]`, "questions", "explode", "1"},
		{"unknown stream", `{"stream":"answers","payload":{"action":"list","request_id":2}}`, 404, `["Unknown stream."]`, "answers", "list", 2.0},
		{"invalid JSON", `{"stream":"questions",`, 400, `["Invalid JSON."]`, nil, nil, nil},
		{"not an object", `["questions"]`, 400, `["The frame must be a JSON object."]`, nil, nil, nil},
		{"missing payload", `{"stream":"questions"}`, 400, `["Missing payload."]`, "questions", nil, nil},
		{"payload not an object", `{"stream":"questions","payload":"list"}`, 400, `["payload must be a JSON object."]`, "questions", nil, nil},
		{"missing action", `{"stream":"questions","payload":{"request_id":"x"}}`, 400, `["Missing action."]`, "questions", nil, "x"},
		{"missing stream", `{"payload":{"action":"list","request_id":"y"}}`, 400, `["Missing stream."]`, nil, "list", "y"},
		{"non-string stream", `{"stream":7,"payload":{"action":"list","request_id":"w"}}`, 400, `["stream must be a string."]`, nil, "list", "w"},
		{"non-string action", `{"stream":"questions","payload":{"action":5,"request_id":"z"}}`, 400, `["action must be a string."]`, "questions", nil, "z"},
		{"subscribe without Subscribe is still parsed", `{"stream":"questions","payload":{"action":"subscribe","request_id":"s"}}`, 400, `["action required"]`, "questions", "subscribe", "s"},
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
	// The connection stays open after all of that.
	c.createQuestion("still here")
}

func TestRequestIDEchoedExactly(t *testing.T) {
	c := newEnv(t).dial()
	for _, rid := range []string{`"abc"`, `42`, `-7`, `"\u00e9\"x"`, `12345678901234567890`} {
		c.sendRaw(`{"stream":"questions","payload":{"action":"list","request_id":` + rid + `}}`)
		f := c.next()
		if !strings.HasSuffix(string(f.raw), `"request_id":`+rid+`,"meta":`+string(mustJSON(t, f.Payload["meta"]))+`}}`) &&
			!strings.Contains(string(f.raw), `"request_id":`+rid) {
			t.Fatalf("request_id %s not echoed exactly: %s", rid, f.raw)
		}
	}
	// Absent request_id is null.
	c.sendRaw(`{"stream":"questions","payload":{"action":"list"}}`)
	if f := c.next(); !strings.Contains(string(f.raw), `"request_id":null`) {
		t.Fatalf("absent request_id: %s", f.raw)
	}
}

func TestBinaryFrameCloses1003(t *testing.T) {
	c := newEnv(t).dial()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(); code != websocket.CloseUnsupportedData {
		t.Fatalf("close code %d, want 1003", code)
	}
}

func TestConcurrentRequestsOneConnection(t *testing.T) {
	c := newEnv(t, bridge.WithMaxInFlight(8)).dial()
	const n = 300
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send("questions", map[string]any{"action": "create", "request_id": i, "data": map[string]any{"question_text": fmt.Sprintf("q%d", i)}})
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for len(seen) < n {
		f := c.next()
		wantStatus(t, f, 201)
		rid := int(f.Payload["request_id"].(float64))
		if seen[rid] {
			t.Fatalf("request %d answered twice", rid)
		}
		if want := fmt.Sprintf("q%d", rid); f.data()["question_text"] != want {
			t.Fatalf("reply for %d carries %v", rid, f.data()["question_text"])
		}
		seen[rid] = true
	}
	// No request was answered twice: a duplicate would have been queued before the barrier's reply.
	if extra := c.barrier(); len(extra) > 0 {
		t.Fatalf("frame after every request was answered: %s", extra[0].raw)
	}
}
