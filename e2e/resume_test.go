package e2e_test

// Offsets and resume (docs/protocol.md, "Offsets and resume"): events carry payload.offset,
// subscribe accepts data.since, and an upstream the bridge re-establishes resumes from the
// last event it delivered.

import (
	"strings"
	"testing"
)

// resumeSubscribe sends a subscribe to question creates (with since unless it is "") and
// returns its 200 reply's data.
func (c *client) resumeSubscribe(id, since string) map[string]any {
	c.t.Helper()
	data := map[string]any{"action": "create"}
	if since != "" {
		data["since"] = since
	}
	f := c.do("questions", map[string]any{"action": "subscribe", "data": data, "request_id": id})
	wantStatus(c.t, f, 200)
	d := f.data()
	if o, _ := d["offset"].(string); o == "" {
		c.t.Fatalf("subscribe reply without data.offset: %s", f.raw)
	}
	if _, ok := d["recovered"]; ok != (since != "") {
		c.t.Fatalf("subscribe reply: recovered must be there exactly when since is: %s", f.raw)
	}
	return d
}

// resumeEvent waits for the create event of question pk for subscription id and returns its offset.
func (c *client) resumeEvent(pk, id string) string {
	c.t.Helper()
	f := c.next()
	subWantEvent(c.t, f, "create", pk, id)
	o, _ := f.Payload["offset"].(string)
	if o == "" {
		c.t.Fatalf("event without payload.offset: %s", f.raw)
	}
	return o
}

// wantQuiet checks that nothing is queued for c.
func (c *client) wantQuiet() {
	c.t.Helper()
	if extra := c.barrier(); len(extra) > 0 {
		c.t.Fatalf("unexpected frame: %s", extra[0].raw)
	}
}

// TestResumeOffsets: the subscribe reply says where delivery starts, each event carries its
// offset, and offsets differ from each other.
func TestResumeOffsets(t *testing.T) {
	e := newEnv(t)
	w, c := e.dial(), e.dial()
	w.createQuestion("Before")
	d := c.resumeSubscribe("s", "")
	seen := map[string]bool{d["offset"].(string): true}
	for range 3 {
		o := c.resumeEvent(w.createQuestion("After"), "s")
		if seen[o] {
			t.Fatalf("offset %s seen twice", o)
		}
		seen[o] = true
	}
}

// TestResumeSince: a subscribe with since gets recovered: true, offset = since, the events
// after since in order, then the live ones, each once; whether or not a live upstream of
// the same filter exists, and a since at the live upstream's position joins it.
func TestResumeSince(t *testing.T) {
	e := newEnv(t)
	w, live, c1 := e.dial(), e.dial(), e.dial()
	live.resumeSubscribe("live", "")
	c1.resumeSubscribe("c1", "")
	var pks, offs []string
	for range 3 {
		pk := w.createQuestion("Seen")
		live.resumeEvent(pk, "live")
		pks, offs = append(pks, pk), append(offs, c1.resumeEvent(pk, "c1"))
	}
	c1.close()
	for range 2 { // missed by c1
		pk := w.createQuestion("Missed")
		pks, offs = append(pks, pk), append(offs, live.resumeEvent(pk, "live"))
	}

	// Resuming after the second event: the third, fourth and fifth are replayed, on a
	// catch-up upstream beside the live one.
	c2 := e.dial()
	d := c2.resumeSubscribe("c2", offs[1])
	if d["recovered"] != true || d["offset"] != offs[1] {
		t.Fatalf("resume reply %v, want recovered true at %s", d, offs[1])
	}
	for i := 2; i < 5; i++ {
		if o := c2.resumeEvent(pks[i], "c2"); o != offs[i] {
			t.Fatalf("replayed event %d has offset %s, the live one had %s", i, o, offs[i])
		}
	}
	subWaitUpstreams(t, e, 2)
	pk := w.createQuestion("Live")
	last := live.resumeEvent(pk, "live")
	if o := c2.resumeEvent(pk, "c2"); o != last {
		t.Fatalf("live event offset %s on the catch-up upstream, %s on the shared one", o, last)
	}
	c2.wantQuiet()

	// Resuming at the live upstream's position: no replay, no new upstream.
	c3 := e.dial()
	d = c3.resumeSubscribe("c3", last)
	if d["recovered"] != true || d["offset"] != last {
		t.Fatalf("resume reply %v, want recovered true at %s", d, last)
	}
	c3.wantQuiet()
	if n := e.bridge.Stats().UpstreamStreams; n != 2 {
		t.Fatalf("%d upstream streams, want 2: a since at the live position joins the live upstream", n)
	}
	pk = w.createQuestion("Everyone")
	live.resumeEvent(pk, "live")
	c2.resumeEvent(pk, "c2")
	c3.resumeEvent(pk, "c3")
	for _, c := range []*client{live, c2, c3} {
		c.wantQuiet()
	}
}

// TestResumeCatchUpBecomesShared: with no live upstream of its filter, the catch-up
// upstream becomes the shared one: a later subscribe without since joins it at its
// position, after the replay, and gets only the events after that.
func TestResumeCatchUpBecomesShared(t *testing.T) {
	e := newEnv(t)
	w, c1 := e.dial(), e.dial()
	c1.resumeSubscribe("c1", "")
	var pks, offs []string
	for range 3 {
		pk := w.createQuestion("Seen")
		pks, offs = append(pks, pk), append(offs, c1.resumeEvent(pk, "c1"))
	}
	c1.close()
	subWaitUpstreams(t, e, 0)

	c2 := e.dial()
	if d := c2.resumeSubscribe("c2", offs[0]); d["recovered"] != true || d["offset"] != offs[0] {
		t.Fatalf("resume reply %v, want recovered true at %s", d, offs[0])
	}
	c2.resumeEvent(pks[1], "c2")
	c2.resumeEvent(pks[2], "c2")

	c3 := e.dial()
	if d := c3.resumeSubscribe("c3", ""); d["offset"] != offs[2] {
		t.Fatalf("subscribe reply %v, want offset %s: the shared upstream's position", d, offs[2])
	}
	if n := e.bridge.Stats().UpstreamStreams; n != 1 {
		t.Fatalf("%d upstream streams, want 1", n)
	}
	pk := w.createQuestion("Both")
	c2.resumeEvent(pk, "c2")
	c3.resumeEvent(pk, "c3")
	c2.wantQuiet()
	c3.wantQuiet()
}

// TestResumeSinceUnknown: a since the backend cannot place (malformed, another epoch) is
// recovered: false and the subscription starts live.
func TestResumeSinceUnknown(t *testing.T) {
	e := newEnv(t)
	w, c := e.dial(), e.dial()
	w.createQuestion("Old")
	d := c.resumeSubscribe("s", "not-an-offset")
	if d["recovered"] != false {
		t.Fatalf("resume reply %v, want recovered false", d)
	}
	c.wantQuiet()
	c.resumeEvent(w.createQuestion("New"), "s")
}

// TestResumeInvalidSince: since must be a string of at most 255 bytes.
func TestResumeInvalidSince(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	for _, since := range []any{5, true, map[string]any{}, strings.Repeat("a", 256)} {
		f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create", "since": since}})
		wantErrors(t, f, 400, `["Invalid since."]`)
		f = c.do("questions", map[string]any{"action": "subscribe_instance", "pk": "1", "data": map[string]any{"since": since}})
		wantErrors(t, f, 400, `["Invalid since."]`)
	}
	if n := e.bridge.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions after refused subscribes", n)
	}
	// 255 bytes is accepted (and unknown to the backend).
	if d := c.resumeSubscribe("s", strings.Repeat("a", 255)); d["recovered"] != false {
		t.Fatalf("resume reply %v", d)
	}
	// null is no since.
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create", "since": nil}})
	wantStatus(t, f, 200)
	if _, ok := f.data()["recovered"]; ok {
		t.Fatalf("recovered without since: %s", f.raw)
	}
}

// TestResumeSubscribeInstance: subscribe_instance takes since the same way.
func TestResumeSubscribeInstance(t *testing.T) {
	e := newEnv(t)
	w, c1 := e.dial(), e.dial()
	pk := w.createQuestion("Watched")
	f := c1.do("questions", map[string]any{"action": "subscribe_instance", "pk": pk, "request_id": "i"})
	wantStatus(t, f, 200)
	since, _ := f.data()["offset"].(string)
	if since == "" {
		t.Fatalf("subscribe_instance reply without offset: %s", f.raw)
	}
	c1.close()
	wantStatus(t, w.do("questions", map[string]any{"action": "patch", "pk": pk, "data": map[string]any{"question_text": "Missed"}}), 200)

	c2 := e.dial()
	f = c2.do("questions", map[string]any{"action": "subscribe_instance", "pk": pk, "data": map[string]any{"since": since}, "request_id": "i2"})
	wantStatus(t, f, 200)
	if d := f.data(); d["recovered"] != true || d["offset"] != since || d["pk"] != pk {
		t.Fatalf("subscribe_instance resume reply: %s", f.raw)
	}
	if d := subWantEvent(t, c2.next(), "update", pk, "i2"); d["question_text"] != "Missed" {
		t.Fatalf("replayed update: %v", d)
	}
	c2.wantQuiet()
}

// TestResumeMemoryBackendRestart: the memory broker's history dies with the backend, so
// the resumed notice after a restart says recovered: false.
func TestResumeMemoryBackendRestart(t *testing.T) {
	e := newEnv(t)
	w, c := e.dial(), e.dial()
	c.resumeSubscribe("s", "")
	c.resumeEvent(w.createQuestion("Before"), "s")
	e.backend.restart()
	if f := c.next(); f.status() != 503 {
		t.Fatalf("want the 503 notice, got %s", f.raw)
	}
	f := c.next()
	subWantResumed(t, f, "s")
	if d := f.data(); d["recovered"] != false {
		t.Fatalf("resumed after a memory backend restart: %s", f.raw)
	}
	if o, _ := f.data()["offset"].(string); o == "" {
		t.Fatalf("resumed without offset: %s", f.raw)
	}
}
