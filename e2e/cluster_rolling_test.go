//go:build unix

package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/internal/cluster"
)

// rollingWriter creates questions one at a time, alternating the backend replicas, until
// stopped: the events' order is the writes' order.
type rollingWriter struct {
	backends []*cluster.Proc
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	made     []string // the created questions' pks, in order
	err      error
}

func startWriter(backends []*cluster.Proc) *rollingWriter {
	w := &rollingWriter{backends: backends, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			if _, err := w.create(fmt.Sprintf("steady %d", i)); err != nil {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				return
			}
		}
	}()
	return w
}

func (w *rollingWriter) create(text string) (string, error) {
	w.mu.Lock()
	be := w.backends[len(w.made)%len(w.backends)]
	w.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"question_text": text})
	resp, err := http.Post(restURL(be, "/v1/questions"), "application/json", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var q map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: POST: HTTP %d, %v", be.Name, resp.StatusCode, err)
	}
	pk := fmt.Sprint(q["id"])
	w.mu.Lock()
	w.made = append(w.made, pk)
	w.mu.Unlock()
	return pk, nil
}

func (w *rollingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.made)
}

// halt stops the writer and returns what it made.
func (w *rollingWriter) halt(t *testing.T) []string {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	return slices.Clone(w.made)
}

// rollingSub is a client's subscription to every question's create events.
type rollingSub struct {
	c      *client
	pks    []string
	offset string // the last event's, or the last subscribe reply's
	moves  int
}

func (s *rollingSub) subscribe(t *testing.T) {
	t.Helper()
	data := map[string]any{"action": "create"}
	if s.offset != "" {
		data["since"] = s.offset
	}
	f := s.c.do("questions", map[string]any{"action": "subscribe", "data": data, "request_id": "s"})
	wantStatus(t, f, 200)
	d := f.data()
	if s.offset != "" && (d["recovered"] != true || d["offset"] != s.offset) {
		t.Fatalf("resubscribe since %s: %s, want recovered true and the same offset", s.offset, f.raw)
	}
	s.offset = fmt.Sprint(d["offset"])
}

// take files an event frame.
func (s *rollingSub) take(t *testing.T, f frame) {
	t.Helper()
	if f.Payload["request_id"] != "s" || f.Payload["action"] != "create" {
		t.Fatalf("unexpected frame: %s", f.raw)
	}
	s.pks = append(s.pks, fmt.Sprint(f.Payload["pk"]))
	s.offset = fmt.Sprint(f.Payload["offset"])
}

// until takes events until cond holds.
func (s *rollingSub) until(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for !cond() {
		select {
		case f := <-s.c.frames:
			s.take(t, f)
		case <-time.After(waitLimit):
			t.Fatalf("%s: not within %s", what, waitLimit)
		}
	}
}

// move reads s's connection to its end (a drained bridge's 1001), waits for that bridge to
// exit, so that the balancer certainly takes it to the other, and resubscribes through the
// balancer from the last offset seen: the changes made meanwhile come first.
func (s *rollingSub) move(t *testing.T, cl *cluster.Cluster, from *cluster.Proc) {
	t.Helper()
	for {
		select {
		case f := <-s.c.frames:
			s.take(t, f)
			continue
		case <-s.c.done:
		case <-time.After(waitLimit):
			t.Fatalf("connection not closed within %s", waitLimit)
		}
		break
	}
	for len(s.c.frames) > 0 {
		s.take(t, <-s.c.frames)
	}
	if code := s.c.closeCode(); code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	select {
	case <-from.Done():
	case <-time.After(waitLimit):
		t.Fatalf("%s did not exit within %s", from.Name, waitLimit)
	}
	s.c = dialURL(t, cl.Balancer.URL(), nil)
	s.subscribe(t)
	s.moves++
}

// TestClusterRollingDeploy: a steady stream of creates through both replicas; bridge-1 gets
// SIGTERM (drain, 1001), its client reconnects through the balancer to bridge-2 and
// resubscribes with since; bridge-1 is restarted; bridge-2 gets SIGTERM and both clients
// move to bridge-1. Each subscription sees every create once, in order.
func TestClusterRollingDeploy(t *testing.T) {
	cl := startCluster(t)
	// Two clients through the balancer, which alternates: one on each bridge, which one is
	// seen when bridge-1 goes.
	subs := []*rollingSub{{c: dialURL(t, cl.Balancer.URL(), nil)}, {c: dialURL(t, cl.Balancer.URL(), nil)}}
	for _, s := range subs {
		s.subscribe(t)
	}
	w := startWriter(cl.Backends)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.halt(t)
		}
	}()
	for _, s := range subs {
		s.until(t, func() bool { return len(s.pks) >= 5 }, "events before the deploy")
	}

	// bridge-1 goes; the writer goes on, also while its client has no connection.
	cl.Bridges[0].Signal(syscall.SIGTERM)
	var first, other *rollingSub
	select {
	case <-subs[0].c.done:
		first, other = subs[0], subs[1]
	case <-subs[1].c.done:
		first, other = subs[1], subs[0]
	case <-time.After(waitLimit):
		t.Fatalf("no client lost its connection within %s", waitLimit)
	}
	first.move(t, cl, cl.Bridges[0])
	n := w.count()
	for _, s := range subs {
		s.until(t, func() bool { return len(s.pks) >= n+5 }, "events on bridge-2 after bridge-1 left")
	}

	// bridge-1 comes back on its address; then bridge-2 goes and both clients move to it.
	if _, err := cl.Restart(t.Context(), true, 0); err != nil {
		t.Fatalf("restart bridge-1: %v", err)
	}
	bridge2 := cl.Bridges[1]
	bridge2.Signal(syscall.SIGTERM)
	for _, s := range subs {
		s.move(t, cl, bridge2)
	}
	n = w.count()
	for _, s := range subs {
		s.until(t, func() bool { return len(s.pks) >= n+5 }, "events after bridge-2 left")
	}

	made := w.halt(t)
	last, err := w.create("final")
	if err != nil {
		t.Fatal(err)
	}
	made = append(made, last)
	for i, s := range subs {
		s.until(t, func() bool { return slices.Contains(s.pks, last) }, "the final event")
		// A round trip: anything queued behind the final event would be a duplicate.
		f := s.c.do("questions", map[string]any{"action": "retrieve", "pk": last})
		wantStatus(t, f, 200)
		seen := map[string]int{}
		for _, pk := range s.pks {
			seen[pk]++
		}
		lost, twice := 0, 0
		for _, pk := range made {
			if seen[pk] == 0 {
				lost++
			}
		}
		for _, n := range seen {
			twice += n - 1
		}
		if lost != 0 || twice != 0 || !slices.Equal(s.pks, made) {
			t.Errorf("client %d: %d of %d lost, %d duplicated, in order %v\ngot  %v\nwant %v", i, lost, len(made), twice, slices.Equal(s.pks, made), s.pks, made)
		}
	}
	if first.moves != 2 || other.moves != 1 {
		t.Errorf("moves %d, %d; want 2 (the client first on bridge-1), 1", first.moves, other.moves)
	}
}
