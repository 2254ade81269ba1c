package e2e_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// Subscriptions: the protocol of subscribe and unsubscribe, and the events, end to end.

const subQuestionModel = "polls.v1.Question"

// subscribe subscribes c to questions and checks the 200 reply: data echoes the action as
// sent, and the pk when one was given. pk nil means no pk.
func (c *client) subSubscribe(id string, pk, actions any) {
	c.t.Helper()
	p := map[string]any{"action": "subscribe", "data": map[string]any{"action": actions}, "request_id": id}
	if pk != nil {
		p["pk"] = pk
	}
	f := c.do("questions", p)
	wantStatus(c.t, f, 200)
	want := map[string]any{"action": subJSONValue(c.t, actions)}
	if pk != nil {
		want["pk"] = subJSONValue(c.t, pk)
	}
	got := f.data()
	// On a stream with offsets the reply says where delivery starts (resume_test.go).
	if o, ok := got["offset"]; ok {
		if s, _ := o.(string); s == "" {
			c.t.Fatalf("subscribe reply's data.offset is not a string: %s", f.raw)
		}
		delete(got, "offset")
	}
	if !reflect.DeepEqual(got, want) {
		c.t.Fatalf("subscribe reply data %v, want %v: %s", got, want, f.raw)
	}
	if f.Payload["action"] != "subscribe" || f.Stream != "questions" || f.errors() != "[]" {
		c.t.Fatalf("subscribe reply: %s", f.raw)
	}
}

// unsubscribe sends an unsubscribe and returns the reply.
func (c *client) subUnsubscribe(pk any, data map[string]any) frame {
	c.t.Helper()
	p := map[string]any{"action": "unsubscribe", "data": data}
	if pk != nil {
		p["pk"] = pk
	}
	return c.do("questions", p)
}

// subWantUnsubscribed checks a 200 unsubscribe reply listing exactly ids, in order.
func subWantUnsubscribed(t *testing.T, f frame, ids ...string) {
	t.Helper()
	wantStatus(t, f, 200)
	if f.Payload["action"] != "unsubscribe" {
		t.Fatalf("unsubscribe reply action: %s", f.raw)
	}
	got := []string{}
	for _, id := range f.data()["request_ids"].([]any) {
		got = append(got, id.(string))
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("request_ids %v, want %v: %s", got, ids, f.raw)
	}
}

// subJSONValue is v as it decodes after a round trip through JSON.
func subJSONValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// subWantEvent checks that f is an event of the subscription reqID and returns its data.
func subWantEvent(t *testing.T, f frame, action, pk, reqID string) map[string]any {
	t.Helper()
	p := f.Payload
	if _, ok := p["response_status"]; ok {
		t.Fatalf("event with a response_status: %s", f.raw)
	}
	if _, ok := p["errors"]; ok {
		t.Fatalf("event with errors: %s", f.raw)
	}
	if f.Stream != "questions" || p["action"] != action || p["pk"] != pk || p["model"] != subQuestionModel || p["request_id"] != reqID {
		t.Fatalf("want a %s event of question %s for %s, got %s", action, pk, reqID, f.raw)
	}
	d := f.data()
	if d == nil || d["id"] != pk {
		t.Fatalf("event data is not question %s: %s", pk, f.raw)
	}
	return d
}

// subEvent waits for the next frame and checks it is the event.
func (c *client) subEvent(action, pk, reqID string) map[string]any {
	c.t.Helper()
	return subWantEvent(c.t, c.next(), action, pk, reqID)
}

// subEvents reads n frames, which must be events, and returns them keyed by request_id:
// used where the frames come from several upstreams, whose relative order is not defined.
func (c *client) subEvents(n int) map[string]frame {
	c.t.Helper()
	out := map[string]frame{}
	for range n {
		f := c.next()
		id := fmt.Sprint(f.Payload["request_id"])
		if _, dup := out[id]; dup {
			c.t.Fatalf("second frame for %s: %s", id, f.raw)
		}
		out[id] = f
	}
	return out
}

// sync makes a request that is answered without the backend and waits for its reply: any
// frame the bridge queued for c before it is read first, so it must have been consumed.
func (c *client) subSync() {
	c.t.Helper()
	f := c.subUnsubscribe(nil, map[string]any{"request_id": "no-such-subscription"})
	wantErrors(c.t, f, 404, `["Not found."]`)
}

func (c *client) subUpdate(pk, text string) {
	c.t.Helper()
	f := c.do("questions", map[string]any{"action": "update", "pk": pk, "data": map[string]any{"question_text": text}})
	wantStatus(c.t, f, 200)
}

func (c *client) subDelete(pk string) {
	c.t.Helper()
	f := c.do("questions", map[string]any{"action": "delete", "pk": pk})
	if f.status() >= 300 {
		c.t.Fatalf("delete %s: %s", pk, f.raw)
	}
}

func subWaitUpstreams(t *testing.T, e *env, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d upstream streams", n), func() bool { return e.bridge.Stats().UpstreamStreams == n })
}

func TestSubscribeReply(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.subSubscribe("s1", nil, "update")
	c.subSubscribe("s2", "1", "update")
	c.subSubscribe("s3", 1, []string{"update", "delete"})
	c.subSubscribe("s4", nil, []string{"delete", "create", "update"})
	c.subSubscribe("s5", nil, []string{"update", "update"})
	// A well-formed pk of a question that does not exist is accepted.
	c.subSubscribe("s6", "987654321", "delete")
	// Numeric request ids are echoed as numbers.
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}, "request_id": 7})
	wantStatus(t, f, 200)
	if f.Payload["request_id"] != float64(7) {
		t.Fatalf("request_id not echoed as sent: %s", f.raw)
	}
	// s1 and s5 share one upstream; the other five filters have one each.
	subWaitUpstreams(t, e, 6)
}

// TestSubscribeEventKinds covers the five kinds of subscription: create any, update any,
// update this pk, delete any, delete this pk.
func TestSubscribeEventKinds(t *testing.T) {
	e := newEnv(t)
	w := e.dial() // makes the changes
	q1 := w.createQuestion("First?")
	q2 := w.createQuestion("Second?")

	createAny, updateAny, updatePK, deleteAny, deletePK := e.dial(), e.dial(), e.dial(), e.dial(), e.dial()
	createAny.subSubscribe("create-any", nil, "create")
	updateAny.subSubscribe("update-any", nil, "update")
	updatePK.subSubscribe("update-pk", q1, "update")
	deleteAny.subSubscribe("delete-any", nil, "delete")
	deletePK.subSubscribe("delete-pk", q1, "delete")

	// create any
	q3 := w.createQuestion("Third?")
	d := createAny.subEvent("create", q3, "create-any")
	if d["question_text"] != "Third?" {
		t.Fatalf("create event data: %v", d)
	}

	// update any sees both; update this pk sees only q1. Events of one subscription come in
	// the order of the changes, so q1's event arriving first shows q2's was filtered out.
	w.subUpdate(q2, "Second, edited?")
	w.subUpdate(q1, "First, edited?")
	if d := updateAny.subEvent("update", q2, "update-any"); d["question_text"] != "Second, edited?" {
		t.Fatalf("update event data: %v", d)
	}
	updateAny.subEvent("update", q1, "update-any")
	if d := updatePK.subEvent("update", q1, "update-pk"); d["question_text"] != "First, edited?" {
		t.Fatalf("update event data: %v", d)
	}

	// delete any sees both; delete this pk sees only q1. The data is the question as it was.
	w.subDelete(q2)
	w.subDelete(q1)
	if d := deleteAny.subEvent("delete", q2, "delete-any"); d["question_text"] != "Second, edited?" {
		t.Fatalf("delete event data: %v", d)
	}
	deleteAny.subEvent("delete", q1, "delete-any")
	if d := deletePK.subEvent("delete", q1, "delete-pk"); d["question_text"] != "First, edited?" {
		t.Fatalf("delete event data: %v", d)
	}

	// The last change of each subscription was consumed; nothing else was queued for them.
	// createAny must not have seen the updates and deletes.
	for _, c := range []*client{createAny, updateAny, updatePK, deleteAny, deletePK} {
		c.subSync()
	}
	// The raw event frame: exact keys, pk as a string.
	q4 := w.createQuestion("Fourth?")
	f := createAny.next()
	var raw struct {
		Stream  string                     `json:"stream"`
		Payload map[string]json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(f.raw, &raw); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(raw.Payload))
	for k := range raw.Payload {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := []string{"action", "data", "model", "offset", "pk", "request_id"}; !slices.Equal(keys, want) {
		t.Fatalf("event payload keys %v, want %v: %s", keys, want, f.raw)
	}
	if string(raw.Payload["pk"]) != `"`+q4+`"` || string(raw.Payload["request_id"]) != `"create-any"` {
		t.Fatalf("event pk or request_id: %s", f.raw)
	}
}

func TestSubscribeActionArrays(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	c := e.dial()
	c.subSubscribe("cd", nil, []string{"create", "delete"})
	q := w.createQuestion("Arrays?")
	w.subUpdate(q, "Arrays, edited?")
	w.subDelete(q)
	c.subEvent("create", q, "cd")
	// The update is not among the actions: the delete comes next.
	c.subEvent("delete", q, "cd")

	// An array with a pk.
	q2 := w.createQuestion("Arrays again?")
	c2 := e.dial()
	c2.subSubscribe("ud", q2, []string{"update", "delete"})
	q3 := w.createQuestion("Other?")
	w.subUpdate(q3, "Other, edited?")
	w.subUpdate(q2, "Arrays again, edited?")
	w.subDelete(q2)
	c2.subEvent("update", q2, "ud")
	c2.subEvent("delete", q2, "ud")
	c2.subSync()
}

func TestSubscribeTwiceOnOneSocket(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Twice?")
	c := e.dial()
	// Identical subscriptions share one upstream stream but each gets every event.
	c.subSubscribe("a", nil, "update")
	c.subSubscribe("b", nil, "update")
	subWaitUpstreams(t, e, 1)
	w.subUpdate(q, "Twice, edited?")
	c.subEvent("update", q, "a")
	c.subEvent("update", q, "b")
	c.subSync()

	// Overlapping filters: a third subscription on the pk gets its own copy.
	c.subSubscribe("c", q, []string{"update"})
	subWaitUpstreams(t, e, 2)
	w.subUpdate(q, "Thrice?")
	got := c.subEvents(3)
	for _, id := range []string{"a", "b", "c"} {
		subWantEvent(t, got[id], "update", q, id)
	}
	c.subSync()
}

func TestUnsubscribeByRequestID(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Unsubscribe?")
	c := e.dial()
	c.subSubscribe("s1", nil, "update")
	c.subSubscribe("s2", nil, "update")
	c.subSubscribe("s3", nil, "create")
	subWaitUpstreams(t, e, 2)

	f := c.subUnsubscribe(nil, map[string]any{"request_id": "s1"})
	subWantUnsubscribed(t, f, "s1")
	// s2 shares s1's upstream: its events are queued together with what s1 would get, so
	// s2's event followed by a synchronous reply shows s1 got none.
	w.subUpdate(q, "Still there?")
	c.subEvent("update", q, "s2")
	c.subSync()

	// A second time: nothing left to end.
	wantErrors(t, c.subUnsubscribe(nil, map[string]any{"request_id": "s1"}), 404, `["Not found."]`)

	// Another connection cannot end c's subscriptions.
	o := e.dial()
	wantErrors(t, o.subUnsubscribe(nil, map[string]any{"request_id": "s2"}), 404, `["Not found."]`)

	// Ending the last subscription of an upstream ends the upstream.
	subWantUnsubscribed(t, c.subUnsubscribe(nil, map[string]any{"request_id": "s2"}), "s2")
	subWaitUpstreams(t, e, 1)
	w.subUpdate(q, "Anyone?")
	// s3 (create) is untouched.
	q2 := w.createQuestion("Created?")
	c.subEvent("create", q2, "s3")
	c.subSync()
}

func TestUnsubscribeByFilter(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Filters?")
	c := e.dial()
	c.subSubscribe("pk-1", q, "update")
	c.subSubscribe("pk-2", q, "update")
	c.subSubscribe("any", nil, "update")
	c.subSubscribe("pk-multi", q, []string{"update", "create"})
	subWaitUpstreams(t, e, 3)

	// Exactly the filter: same pk (written as a number this time), same actions.
	f := c.subUnsubscribe(subNumber(q), map[string]any{"action": "update"})
	subWantUnsubscribed(t, f, "pk-1", "pk-2")
	subWaitUpstreams(t, e, 2)

	// The others are untouched.
	w.subUpdate(q, "Filters, edited?")
	got := c.subEvents(2)
	subWantEvent(t, got["any"], "update", q, "any")
	subWantEvent(t, got["pk-multi"], "update", q, "pk-multi")

	// No match: a filter without pk, and a filter with other actions.
	wantErrors(t, c.subUnsubscribe(nil, map[string]any{"action": "create"}), 404, `["Not found."]`)
	wantErrors(t, c.subUnsubscribe(q, map[string]any{"action": []string{"update"}}), 404, `["Not found."]`)
	wantErrors(t, c.subUnsubscribe(q, map[string]any{"action": "delete"}), 404, `["Not found."]`)

	// Actions compare as sets.
	subWantUnsubscribed(t, c.subUnsubscribe(q, map[string]any{"action": []string{"create", "update"}}), "pk-multi")
	subWantUnsubscribed(t, c.subUnsubscribe(nil, map[string]any{"action": []string{"update"}}), "any")
	subWaitUpstreams(t, e, 0)

	// Nothing left: changes reach nobody.
	w.subUpdate(q, "Nobody?")
	c.subSync()
}

// subNumber makes a decimal string a JSON number.
func subNumber(s string) json.Number { return json.Number(s) }

func TestSubscribeErrors(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	sub := func(p map[string]any) frame {
		t.Helper()
		p["action"] = "subscribe"
		f := c.do("questions", p)
		if f.Payload["action"] != "subscribe" || f.Stream != "questions" {
			t.Fatalf("error reply does not echo stream and action: %s", f.raw)
		}
		return f
	}
	wantErrors(t, sub(map[string]any{}), 400, `["action required"]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{}}), 400, `["action required"]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{"action": nil}}), 400, `["action required"]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{"action": []string{}}}), 400, `["action required"]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{"action": "retrieve"}}), 400, `["Invalid event action."]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{"action": []string{"update", "bogus"}}}), 400, `["Invalid event action."]`)
	wantErrors(t, sub(map[string]any{"data": map[string]any{"action": 3}}), 400, `["Invalid event action."]`)
	wantErrors(t, sub(map[string]any{"pk": "abc", "data": map[string]any{"action": "update"}}), 404, `["Not found."]`)
	wantErrors(t, sub(map[string]any{"pk": "1.5", "data": map[string]any{"action": "update"}}), 404, `["Not found."]`)
	wantErrors(t, sub(map[string]any{"pk": "99999999999999999999", "data": map[string]any{"action": "update"}}), 404, `["Not found."]`)

	unsub := func(p map[string]any) frame {
		t.Helper()
		p["action"] = "unsubscribe"
		return c.do("questions", p)
	}
	wantErrors(t, unsub(map[string]any{}), 400, `["action required"]`)
	wantErrors(t, unsub(map[string]any{"data": map[string]any{"action": "bogus"}}), 400, `["Invalid event action."]`)
	wantErrors(t, unsub(map[string]any{"pk": "abc", "data": map[string]any{"action": "update"}}), 404, `["Not found."]`)

	// None of these left a subscription or an upstream behind.
	wantErrors(t, unsub(map[string]any{"data": map[string]any{"action": "update"}}), 404, `["Not found."]`)
	if n := e.bridge.Stats().UpstreamStreams; n != 0 {
		t.Fatalf("%d upstreams after failed subscribes", n)
	}
}

func TestSubscribeLimit(t *testing.T) {
	e := newEnv(t, bridge.WithMaxSubscriptions(3))
	w := e.dial()
	q := w.createQuestion("Limits?")
	c := e.dial()
	c.subSubscribe("s1", nil, "update")
	c.subSubscribe("s2", nil, "update")
	c.subSubscribe("s3", q, "delete")
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}, "request_id": "s4"})
	wantErrors(t, f, 429, `["Too many subscriptions."]`)

	// The limit is per connection.
	o := e.dial()
	o.subSubscribe("o1", nil, "create")

	// Ending one makes room again.
	subWantUnsubscribed(t, c.subUnsubscribe(nil, map[string]any{"request_id": "s2"}), "s2")
	c.subSubscribe("s4", nil, "create")
	q2 := w.createQuestion("Room?")
	c.subEvent("create", q2, "s4")
	o.subEvent("create", q2, "o1")
}

func TestSubscribeDisconnectCleansUp(t *testing.T) {
	e := newEnv(t)
	w := e.dial()
	q := w.createQuestion("Bye?")
	a, b := e.dial(), e.dial()
	a.subSubscribe("a1", nil, "update")
	a.subSubscribe("a2", q, "delete")
	b.subSubscribe("b1", nil, "update") // shares a1's upstream
	subWaitUpstreams(t, e, 2)

	a.close()
	// b's subscription keeps the shared upstream.
	subWaitUpstreams(t, e, 1)
	w.subUpdate(q, "Still here?")
	b.subEvent("update", q, "b1")
	b.close()
	subWaitUpstreams(t, e, 0)

	// Clients that go away while their subscribe is in flight leave nothing behind either.
	const n = 40
	for i := range n {
		c := dialURL(t, e.url, nil)
		c.send("questions", map[string]any{"action": "subscribe", "pk": fmt.Sprint(i%4 + 1), "data": map[string]any{"action": "update"}})
		if i%2 == 0 {
			c.send("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}})
		}
		c.close()
	}
	// Pending subscriptions count too: an upstream still being set up holds one.
	waitFor(t, "no subscriptions, pending or established, and no upstream streams", func() bool {
		st := e.bridge.Stats()
		return st.Subscriptions == 0 && st.UpstreamStreams == 0
	})
	// And the bridge still serves new subscriptions.
	c := e.dial()
	c.subSubscribe("again", nil, "update")
	w.subUpdate(q, "Again?")
	c.subEvent("update", q, "again")
}
