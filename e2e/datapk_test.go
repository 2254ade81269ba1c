package e2e_test

import (
	"testing"
)

// The original channels-api README puts the key inside data: {"action": "publish", "data":
// {"pk": "1"}}, and users copy that into subscribe. data.pk is the key wherever payload.pk is.

const errPKConflict = `[{"pk":["payload.pk and data.pk differ: send the key once, in either place."]}]`

func TestDataPKDetailActions(t *testing.T) {
	c := newEnv(t).dial()
	id := c.createQuestion("Key in data?")

	f := c.do("questions", map[string]any{"action": "publish", "data": map[string]any{"pk": id}})
	wantStatus(t, f, 200)
	if f.data()["published"] != true || f.data()["id"] != id {
		t.Fatalf("publish with data.pk: %s", f.raw)
	}
	f = c.do("questions", map[string]any{"action": "retrieve", "data": map[string]any{"pk": id}})
	if wantStatus(t, f, 200); f.data()["id"] != id {
		t.Fatalf("retrieve with data.pk: %s", f.raw)
	}
	// A number and a string naming the same key are the same key.
	f = c.do("questions", map[string]any{"action": "update", "pk": id, "data": map[string]any{"pk": jsonNumber(id), "question_text": "Updated", "published": true}})
	if wantStatus(t, f, 200); f.data()["question_text"] != "Updated" {
		t.Fatalf("update with both keys: %s", f.raw)
	}
	f = c.do("questions", map[string]any{"action": "patch", "data": map[string]any{"pk": id, "question_text": "Patched"}})
	if wantStatus(t, f, 200); f.data()["question_text"] != "Patched" || f.data()["published"] != true {
		t.Fatalf("patch with data.pk: %s", f.raw)
	}

	// Two different keys: refused, naming pk, whatever the action.
	other := c.createQuestion("Other")
	for _, action := range []string{"retrieve", "update", "patch", "delete", "publish"} {
		wantErrors(t, c.do("questions", map[string]any{"action": action, "pk": id, "data": map[string]any{"pk": other}}), 400, errPKConflict)
	}
	// Nothing silently dropped: a list has no key, so data.pk stays an unknown field.
	wantErrors(t, c.do("questions", map[string]any{"action": "list", "data": map[string]any{"pk": id}}), 400, `[{"pk":["Unknown field."]}]`)

	wantStatus(t, c.do("questions", map[string]any{"action": "delete", "data": map[string]any{"pk": id}}), 200)
	wantErrors(t, c.do("questions", map[string]any{"action": "retrieve", "pk": id}), 404, `["Not found."]`)
	f = c.do("questions", map[string]any{"action": "retrieve", "pk": other})
	if wantStatus(t, f, 200); f.data()["question_text"] != "Other" {
		t.Fatalf("the conflicting requests changed the other question: %s", f.raw)
	}
}

// TestDataPKSubscribe: {"action": "subscribe", "data": {"action": "update", "pk": "1"}} used
// to subscribe to every question.
func TestDataPKSubscribe(t *testing.T) {
	e := newEnv(t)
	w, c := e.dial(), e.dial()
	id := w.createQuestion("Watched")
	other := w.createQuestion("Not watched")

	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "update", "pk": id}, "request_id": "s1"})
	wantStatus(t, f, 200)
	d := f.data()
	delete(d, "offset") // the reply's position (resume), checked by the resume tests
	if got := string(mustJSON(t, d)); got != `{"action":"update","pk":"`+id+`"}` {
		t.Fatalf("subscribe reply data %s: %s", got, f.raw)
	}
	// The other question changes first: were the filter dropped, its event would come first.
	wantStatus(t, w.do("questions", map[string]any{"action": "patch", "pk": other, "data": map[string]any{"question_text": "Changed"}}), 200)
	wantStatus(t, w.do("questions", map[string]any{"action": "patch", "pk": id, "data": map[string]any{"question_text": "Changed too"}}), 200)
	ev := c.next()
	if ev.Payload["action"] != "update" || ev.Payload["pk"] != id || ev.Payload["request_id"] != "s1" {
		t.Fatalf("first event: want the watched question's update, got %s", ev.raw)
	}

	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe", "pk": id, "data": map[string]any{"action": "update", "pk": other}}), 400, errPKConflict)
	// unsubscribe takes data.pk too.
	f = c.do("questions", map[string]any{"action": "unsubscribe", "data": map[string]any{"action": "update", "pk": id}})
	subWantUnsubscribed(t, f, "s1")
}

// jsonNumber is a decimal key as a JSON number.
func jsonNumber(s string) any {
	var n int64
	for _, r := range s {
		n = n*10 + int64(r-'0')
	}
	return n
}

// TestDataPKAIP: the same on an AIP-style service, where the key is a name.
func TestDataPKAIP(t *testing.T) {
	c := newLibraryEnv(t, withLibraryRules(t)).dial()
	wantStatus(t, c.do("shelves", map[string]any{"action": "create", "data": map[string]any{"theme": "Fiction"}}), 201)
	wantStatus(t, c.do("books", map[string]any{"action": "create", "data": map[string]any{"parent": "shelves/1", "book_id": "dune", "title": "Dune"}}), 201)
	f := c.do("books", map[string]any{"action": "retrieve", "data": map[string]any{"pk": "shelves/1/books/dune"}})
	if wantStatus(t, f, 200); f.data()["title"] != "Dune" {
		t.Fatalf("retrieve with data.pk: %s", f.raw)
	}
	f = c.do("books", map[string]any{"action": "patch", "data": map[string]any{"pk": "shelves/1/books/dune", "read": true}})
	if wantStatus(t, f, 200); f.data()["read"] != true || f.data()["title"] != "Dune" {
		t.Fatalf("patch with data.pk: %s", f.raw)
	}
	wantErrors(t, c.do("books", map[string]any{"action": "retrieve", "pk": "shelves/1/books/dune", "data": map[string]any{"pk": "shelves/1/books/x"}}), 400, errPKConflict)
}
