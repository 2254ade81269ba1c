package e2e_test

import (
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// djangochannelsrestframework's subscribe_instance and unsubscribe_instance, as dcrf-client
// sends them: {"action": "subscribe_instance", "pk": 1, "request_id": "…"}.

func TestDCRFSubscribeInstance(t *testing.T) {
	e := newEnv(t, bridge.WithInt64AsNumber(true))
	w, c := e.dial(), e.dial()
	create := func(text string) float64 {
		f := w.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": text}})
		wantStatus(t, f, 201)
		return f.data()["id"].(float64)
	}
	id, other := create("Watched"), create("Not watched")

	f := c.do("questions", map[string]any{"action": "subscribe_instance", "pk": id, "request_id": "i1"})
	wantStatus(t, f, 200)
	d := f.data()
	delete(d, "offset") // the reply's position (resume), checked by the resume tests
	if f.Payload["action"] != "subscribe_instance" || string(mustJSON(t, d)) != `{"pk":`+jsonNumberText(id)+`}` {
		t.Fatalf("subscribe_instance reply: %s", f.raw)
	}
	// Another question's change comes first: it must not arrive. Nor a create.
	wantStatus(t, w.do("questions", map[string]any{"action": "patch", "pk": other, "data": map[string]any{"question_text": "Changed"}}), 200)
	create("New")
	wantStatus(t, w.do("questions", map[string]any{"action": "patch", "pk": id, "data": map[string]any{"question_text": "Changed too"}}), 200)
	ev := c.next()
	if ev.Payload["action"] != "update" || ev.data()["id"] != id || ev.Payload["request_id"] != "i1" || ev.data()["question_text"] != "Changed too" {
		t.Fatalf("first event: want the watched question's update, got %s", ev.raw)
	}
	wantStatus(t, w.do("questions", map[string]any{"action": "delete", "pk": id}), 200)
	ev = c.next()
	if ev.Payload["action"] != "delete" || ev.data()["pk"] != id || ev.data()["id"] != id || ev.Payload["request_id"] != "i1" {
		t.Fatalf("delete event: want data.pk %v, got %s", id, ev.raw)
	}

	f = c.do("questions", map[string]any{"action": "unsubscribe_instance", "pk": jsonNumberText(id), "request_id": "u1"})
	wantStatus(t, f, 200)
	if f.Payload["action"] != "unsubscribe_instance" || string(mustJSON(t, f.data())) != `{"request_ids":["i1"]}` {
		t.Fatalf("unsubscribe_instance reply: %s", f.raw)
	}
	wantErrors(t, c.do("questions", map[string]any{"action": "unsubscribe_instance", "pk": id}), 404, `["Not found."]`)
	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe_instance"}), 400, `[{"pk":["This field is required."]}]`)
	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe_instance", "pk": "x"}), 404, `["Not found."]`)
	waitFor(t, "no subscriptions left", func() bool { return e.bridge.Stats().Subscriptions == 0 })
}

// Without -int64-as-number the key is a string, as everywhere else, and a subscribe of the
// same question alongside shares nothing with the instance subscription's delete frames.
func TestDCRFSubscribeInstanceStrings(t *testing.T) {
	e := newEnv(t)
	w, c := e.dial(), e.dial()
	id := w.createQuestion("Strings")
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe_instance", "pk": id, "request_id": "i1"}), 200)
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "pk": id, "data": map[string]any{"action": "delete"}, "request_id": "s1"}), 200)
	wantStatus(t, w.do("questions", map[string]any{"action": "delete", "pk": id}), 200)
	got := map[any]frame{}
	for range 2 {
		ev := c.next()
		got[ev.Payload["request_id"]] = ev
	}
	if d := got["i1"].data(); d["pk"] != id || d["id"] != id {
		t.Fatalf("instance delete event: %s", got["i1"].raw)
	}
	if _, has := got["s1"].data()["pk"]; has || got["s1"].data()["id"] != id {
		t.Fatalf("plain delete event must stay the resource as it was: %s", got["s1"].raw)
	}
}

func TestDCRFSubscribeInstanceNoEvents(t *testing.T) {
	c := newLibraryEnv(t, withLibraryRules(t)).dial()
	f := c.do("shelves", map[string]any{"action": "subscribe_instance", "pk": "shelves/1"})
	wantStatus(t, f, 501)
	if f.Payload["action"] != "subscribe_instance" {
		t.Fatalf("reply: %s", f.raw)
	}
}
