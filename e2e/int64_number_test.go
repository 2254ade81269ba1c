package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// -int64-as-number: clients of the channels-api family compare ids with numbers, as DRF
// writes them; protojson writes 64-bit integers as strings.

func TestInt64AsNumberRepliesAndEvents(t *testing.T) {
	e := newEnv(t, bridge.WithInt64AsNumber(true))
	w, c := e.dial(), e.dial()
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": []string{"create", "update"}}, "request_id": "s1"}), 200)

	f := w.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "Numbers?"}})
	wantStatus(t, f, 201)
	id, ok := f.data()["id"].(float64)
	if !ok {
		t.Fatalf("create: id is not a number: %s", f.raw)
	}
	ev := c.next()
	if ev.Payload["action"] != "create" || ev.Payload["pk"] != id || ev.data()["id"] != id {
		t.Fatalf("create event: pk and data.id must be the number %v: %s", id, ev.raw)
	}
	// Input takes both forms.
	for _, pk := range []any{id, jsonNumberText(id)} {
		f = w.do("questions", map[string]any{"action": "retrieve", "pk": pk})
		if wantStatus(t, f, 200); f.data()["id"] != id {
			t.Fatalf("retrieve %v: %s", pk, f.raw)
		}
	}
	f = w.do("choices", map[string]any{"action": "create", "data": map[string]any{"question_id": jsonNumberText(id), "choice_text": "Yes"}})
	wantStatus(t, f, 201)
	if f.data()["question_id"] != id || f.data()["votes"] != float64(0) {
		t.Fatalf("choice: %s", f.raw)
	}
	f = w.do("questions", map[string]any{"action": "list"})
	if wantStatus(t, f, 200); len(f.list()) != 1 || f.list()[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %s", f.raw)
	}
	f = w.do("questions", map[string]any{"action": "report"})
	if wantStatus(t, f, 200); f.data()["total"] != float64(1) {
		t.Fatalf("report (int64 total): %s", f.raw)
	}
	wantStatus(t, w.do("questions", map[string]any{"action": "publish", "pk": id}), 200)
	ev = c.next()
	if ev.Payload["action"] != "update" || ev.Payload["pk"] != id || ev.data()["published"] != true {
		t.Fatalf("update event: %s", ev.raw)
	}
}

// The default is protojson's strings.
func TestInt64AsStringsByDefault(t *testing.T) {
	c := newEnv(t).dial()
	f := c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "Strings?"}})
	if _, ok := f.data()["id"].(string); !ok {
		t.Fatalf("create: id is not a string: %s", f.raw)
	}
}

// TestCommandInt64AsNumber: the configuration file's int64_as_number, and the flag, which
// overrides it.
func TestCommandInt64AsNumber(t *testing.T) {
	b := startBackend(t)
	cfg := filepath.Join(t.TempDir(), "bridge.json")
	if err := os.WriteFile(cfg, []byte(`{"int64_as_number": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args   []string
		number bool
	}{
		{[]string{"-config", cfg}, true},
		{[]string{"-config", cfg, "-int64-as-number=false"}, false},
		{[]string{"-int64-as-number"}, true},
	} {
		p := startBridgeBinary(t, append([]string{"-backend", b.addr}, c.args...)...)
		ws := dialURL(t, "ws://"+p.addr+"/ws", nil)
		f := ws.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "Flag?"}})
		wantStatus(t, f, 201)
		if _, isNum := f.data()["id"].(float64); isNum != c.number {
			t.Fatalf("%s: id %s, want a number: %v", strings.Join(c.args, " "), mustJSON(t, f.data()["id"]), c.number)
		}
		ws.close()
	}
}

func jsonNumberText(n float64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
