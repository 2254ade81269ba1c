//go:build unix

package e2e_test

// The topology of docs/deploy.md as real processes (internal/cluster, as scripts/cluster
// runs it): NATS, two backend replicas on one SQLite file, two bridges behind a TCP
// balancer. One test, in phases that build on each other: events reach every subscription
// on both bridges exactly once; a backend replica is killed (no retrieve fails, every
// subscription moves to the other replica); a bridge is killed (its clients reconnect
// through the balancer to the other and resubscribe).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/internal/cluster"
)

// startCluster builds the binaries and starts a cluster on free ports.
func startCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the bridge and the backend as processes")
	}
	dir := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"bridge", "../cmd/bridge"}, {"backend", "../examples/backend"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	logs := &syncBuffer{}
	c, err := cluster.Start(t.Context(), cluster.Config{
		BridgeBin: filepath.Join(dir, "bridge"), BackendBin: filepath.Join(dir, "backend"), Dir: dir,
		NATSPort: -1, BridgePorts: []int{0, 0}, BackendPorts: []int{0, 0},
		Output: logs,
	})
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("cluster stop: %v", err)
		}
		if t.Failed() {
			t.Logf("cluster output:\n%s", logs.String())
		}
	})
	return c
}

// rest calls a backend replica's REST API and returns the JSON object it answers.
func rest(t *testing.T, method, url string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("%s %s: HTTP %d, %v", method, url, resp.StatusCode, err)
	}
	return out
}

func restURL(p *cluster.Proc, path string) string { return "http://" + p.HTTP + path }

// setText changes a question's text through one replica.
func setText(t *testing.T, p *cluster.Proc, pk, text string) {
	t.Helper()
	rest(t, http.MethodPatch, restURL(p, "/v1/questions/"+pk), map[string]any{"question_text": text})
}

// csub is a subscription of a cluster test: pk "" for every question; texts collects the
// question_text of each update event, in order.
type csub struct {
	id, pk string
	texts  []string
	broken bool // a 503 notice came and its resumed not yet
	moved  int  // resumed notices
	seen   map[string]bool
	skip   string // ignore events whose text starts with this: changes of an earlier phase
}

// csubs are a client's subscriptions by request_id.
type csubs map[string]*csub

// subscribeAll subscribes c to update events for each sub and checks the replies.
func subscribeAll(t *testing.T, c *client, subs csubs) {
	t.Helper()
	for _, s := range subs {
		p := map[string]any{"action": "subscribe", "data": map[string]any{"action": "update"}, "request_id": s.id}
		if s.pk != "" {
			p["pk"] = s.pk
		}
		wantStatus(t, c.do("questions", p), 200)
	}
}

// take files f under its subscription; a notice must be a 503 followed by one resumed, and
// no event may arrive between them.
func (subs csubs) take(t *testing.T, f frame) {
	t.Helper()
	id, _ := f.Payload["request_id"].(string)
	s := subs[id]
	if s == nil || f.Stream != "questions" {
		t.Fatalf("frame for no subscription: %s", f.raw)
	}
	switch f.Payload["action"] {
	case "subscribe":
		if !s.broken {
			wantStatus(t, f, 503)
			s.broken = true
			return
		}
		subWantResumed(t, f, id)
		s.broken, s.moved = false, s.moved+1
	case "update":
		if s.broken {
			t.Fatalf("event between a 503 notice and resumed: %s", f.raw)
		}
		d := f.data()
		if s.pk != "" && d["id"] != s.pk {
			t.Fatalf("event of another question: %s", f.raw)
		}
		text := d["question_text"].(string)
		if s.seen[text] {
			t.Fatalf("subscription %s got %q twice", id, text) // every change's text is unique
		}
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		s.seen[text] = true
		if s.skip == "" || !strings.HasPrefix(text, s.skip) {
			s.texts = append(s.texts, text)
		}
	default:
		t.Fatalf("unexpected frame: %s", f.raw)
	}
}

// drain files every frame the bridge queued for c before a barrier round trip.
func (subs csubs) drain(t *testing.T, c *client) {
	t.Helper()
	for _, f := range c.barrier() {
		subs.take(t, f)
	}
}

// await reads frames until every subscription has seen each of its expected texts.
func (subs csubs) await(t *testing.T, c *client, want func(*csub) []string) {
	t.Helper()
	for {
		done := true
		for _, s := range subs {
			done = done && len(s.texts) >= len(want(s))
		}
		if done {
			break
		}
		subs.take(t, c.next())
	}
	subs.drain(t, c) // anything more would be a duplicate
	for _, s := range subs {
		// Each change once. Order holds per question (each is changed through one replica
		// here); across replicas it is not promised: each publishes on its own connection.
		w := want(s)
		got, sorted := slices.Clone(s.texts), slices.Clone(w)
		slices.Sort(got)
		slices.Sort(sorted)
		if !slices.Equal(got, sorted) {
			t.Fatalf("subscription %s got %q, want %q in any order", s.id, s.texts, w)
		}
		for _, q := range []string{"q0 ", "q1 "} {
			of := func(l []string) []string {
				return slices.DeleteFunc(slices.Clone(l), func(x string) bool { return !strings.HasPrefix(x, q) })
			}
			if !slices.Equal(of(s.texts), of(w)) {
				t.Fatalf("subscription %s got %q, want %q in this order for %s", s.id, s.texts, w, q)
			}
		}
		s.texts = nil
	}
}

// retrieveLoop retrieves pk through url until stop is closed and reports every reply that
// is not a 200, and how many there were.
func retrieveLoop(t *testing.T, url, pk string, stop <-chan struct{}) (wait func() (n int, failures []string)) {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	var n int
	var failures []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer ws.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n++
			id := fmt.Sprint("r", i)
			req := map[string]any{"stream": "questions", "payload": map[string]any{"action": "retrieve", "pk": pk, "request_id": id}}
			if err := ws.WriteJSON(req); err != nil {
				failures = append(failures, "write: "+err.Error())
				return
			}
			var f frame
			_ = ws.SetReadDeadline(time.Now().Add(waitLimit))
			if err := ws.ReadJSON(&f); err != nil {
				failures = append(failures, "read: "+err.Error())
				return
			}
			if f.status() != 200 || f.Payload["request_id"] != id {
				b, _ := json.Marshal(f.Payload)
				failures = append(failures, string(b))
			}
		}
	}()
	return func() (int, []string) { <-done; return n, failures }
}

func TestCluster(t *testing.T) {
	cl := startCluster(t)
	be1, be2 := cl.Backends[0], cl.Backends[1]
	var qs []string
	for i := range 2 {
		q := rest(t, http.MethodPost, restURL(cl.Backends[i], "/v1/questions"), map[string]any{"question_text": "Q" + fmt.Sprint(i)})
		qs = append(qs, q["id"].(string))
	}
	// On each bridge: four distinct upstreams (round robin spreads them over the replicas)
	// and one subscription sharing another's.
	newSubs := func() csubs {
		return csubs{
			"all":     {id: "all"},
			"all-too": {id: "all-too"},
			"q0":      {id: "q0", pk: qs[0]},
			"q1":      {id: "q1", pk: qs[1]},
		}
	}
	var clients []*client
	var subsOf []csubs
	for _, br := range cl.Bridges {
		c := dialURL(t, "ws://"+br.Addr+"/ws", nil)
		s := newSubs()
		subscribeAll(t, c, s)
		// A filter of its own, so a fourth upstream key.
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": []string{"update", "delete"}}, "request_id": "ud"}), 200)
		s["ud"] = &csub{id: "ud"}
		clients, subsOf = append(clients, c), append(subsOf, s)
	}
	// want is what a subscription must see of changes: text by question.
	wantOf := func(changes [][2]string) func(*csub) []string {
		return func(s *csub) []string {
			var out []string
			for _, ch := range changes {
				if s.pk == "" || s.pk == ch[0] {
					out = append(out, ch[1])
				}
			}
			return out
		}
	}

	t.Run("changes through either replica reach both bridges once", func(t *testing.T) {
		var changes [][2]string
		for i := range 6 {
			rep := cl.Backends[i%2]
			ch := [2]string{qs[i%2], fmt.Sprintf("q%d through %s #%d", i%2, rep.Name, i)}
			setText(t, rep, ch[0], ch[1])
			changes = append(changes, ch)
		}
		for i, c := range clients {
			subsOf[i].await(t, c, wantOf(changes))
		}
	})

	t.Run("a backend replica killed: retrieves retried, subscriptions move", func(t *testing.T) {
		stop := make(chan struct{})
		var waits []func() (int, []string)
		for _, br := range cl.Bridges {
			waits = append(waits, retrieveLoop(t, "ws://"+br.Addr+"/ws", qs[0], stop))
		}
		be1.Kill()
		// Change the questions through the replica left until every subscription has an
		// event again: those whose upstream was on the dead replica once they resumed.
		deadline := time.Now().Add(waitLimit)
		for round := 0; ; round++ {
			if time.Now().After(deadline) {
				t.Fatal("subscriptions did not all receive events again after the replica died")
			}
			for _, q := range qs {
				setText(t, be2, q, fmt.Sprintf("probe %d of %s", round, q))
			}
			live := true
			for i, c := range clients {
				subsOf[i].drain(t, c)
				for _, s := range subsOf[i] {
					live = live && !s.broken && len(s.texts) > 0
				}
			}
			if live {
				break
			}
			for _, subs := range subsOf {
				for _, s := range subs {
					if !s.broken && s.moved == 0 {
						continue
					}
					s.texts = nil // what a moving subscription saw before it resumed does not count
				}
			}
		}
		close(stop)
		moved := 0
		for _, subs := range subsOf {
			for _, s := range subs {
				if s.moved > 1 {
					t.Fatalf("subscription %s resumed %d times", s.id, s.moved)
				}
				moved += s.moved
				s.texts = nil
				s.skip = "probe " // the last rounds' events may still be on their way
			}
		}
		if moved == 0 {
			t.Fatal("no upstream was on the killed replica: the test proved nothing")
		}
		t.Logf("%d subscriptions moved to the replica left", moved)
		for i, wait := range waits {
			n, failures := wait()
			t.Logf("bridge-%d: %d retrieves while the replica died", i+1, n)
			if len(failures) > 0 {
				t.Fatalf("bridge-%d: %d of %d retrieves failed while a replica died: %v", i+1, len(failures), n, failures)
			}
		}
		// From now on exactly once again.
		changes := [][2]string{{qs[0], "q0 after the move"}, {qs[1], "q1 after the move"}}
		for _, ch := range changes {
			setText(t, be2, ch[0], ch[1])
		}
		for i, c := range clients {
			subsOf[i].await(t, c, wantOf(changes))
		}
	})

	t.Run("a bridge killed: its clients reconnect to the other and resubscribe", func(t *testing.T) {
		// Four clients through the balancer, which alternates: two on each bridge.
		var lbClients []*client
		var lbSubs []csubs
		for range 4 {
			c := dialURL(t, cl.Balancer.URL(), nil)
			s := newSubs()
			subscribeAll(t, c, s)
			lbClients, lbSubs = append(lbClients, c), append(lbSubs, s)
		}
		cl.Bridges[0].Kill()
		reconnected := 0
		for i, c := range lbClients {
			if alive(c) {
				continue
			}
			// What the TypeScript client does on an abnormal close: connect again to the
			// same URL and renew every subscription with its request_id.
			c = dialURL(t, cl.Balancer.URL(), nil)
			for _, s := range lbSubs[i] {
				s.texts = nil
			}
			subscribeAll(t, c, lbSubs[i])
			lbClients[i] = c
			reconnected++
		}
		if reconnected != 2 {
			t.Fatalf("%d clients lost their bridge, want 2 of 4", reconnected)
		}
		changes := [][2]string{{qs[0], "q0 after the bridge died"}, {qs[1], "q1 after the bridge died"}}
		for _, ch := range changes {
			setText(t, be2, ch[0], ch[1])
		}
		for i, c := range lbClients {
			lbSubs[i].await(t, c, wantOf(changes))
		}
		// The clients of the bridge left were never disturbed.
		subsOf[1].await(t, clients[1], wantOf(changes))
	})
}

// alive reports whether c's connection still works: a round trip that reaches no backend
// either answers (alive) or the connection ends (its bridge is gone).
func alive(c *client) bool {
	c.wmu.Lock()
	err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"stream":"no-such-stream","payload":{"action":"ping","request_id":"alive?"}}`))
	c.wmu.Unlock()
	if err != nil {
		<-c.done
		return false
	}
	for {
		select {
		case f := <-c.frames:
			if f.Payload["request_id"] == "alive?" {
				return true
			}
			c.t.Fatalf("unexpected frame: %s", f.raw)
		case <-c.done:
			return false
		case <-time.After(waitLimit):
			c.t.Fatal("neither a reply nor a close within the wait limit")
		}
	}
}
