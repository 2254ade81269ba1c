package e2e_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsbridge/wsbridge/bridge"
)

// TestEventPermissionRunsOutsideFanout: a permission checked per event is the embedding
// program's code; while it runs, the upstream it checks for still takes subscribers.
func TestEventPermissionRunsOutsideFanout(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	blockFirstEvent := bridge.PermissionFunc(func(_ *bridge.Identity, _, action, pk string) bool {
		if action == "retrieve" && pk != "" {
			once.Do(func() { close(entered); <-release })
		}
		return true
	})
	e := newEnv(t, bridge.WithPermissions(blockFirstEvent))
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the bridge's shutdown

	sub := map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}
	a := e.dial()
	wantStatus(t, a.do("questions", copyMap(sub, "a")), 200)
	id := e.dial().createQuestion("blocked in the permission")
	select {
	case <-entered:
	case <-time.After(waitLimit):
		t.Fatalf("the permission was not asked about the event within %s", waitLimit)
	}
	// The permission is still running: the same upstream answers a new subscriber.
	b := e.dial()
	fb := b.do("questions", copyMap(sub, "b"))
	wantStatus(t, fb, 200)
	releaseOnce.Do(func() { close(release) })
	if f := a.next(); f.Payload["action"] != "create" || fmt.Sprint(f.Payload["pk"]) != id {
		t.Fatalf("a: %s, want the create event of %s", f.raw, id)
	}
	// b was confirmed at a position before the event (its reply's offset): it gets the
	// event too, asked of the permission after it joined.
	if f := b.next(); f.Payload["action"] != "create" || fmt.Sprint(f.Payload["pk"]) != id || f.Payload["offset"] == fb.data()["offset"] {
		t.Fatalf("b: %s, want the create event of %s after its reply %s", f.raw, id, fb.raw)
	}
}

func copyMap(m map[string]any, requestID string) map[string]any {
	out := map[string]any{"request_id": requestID}
	for k, v := range m {
		out[k] = v
	}
	return out
}
