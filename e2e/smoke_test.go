package e2e_test

import "testing"

func TestSmoke(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	id := c.createQuestion("What's up?")
	f := c.do("questions", map[string]any{"action": "retrieve", "pk": id})
	wantStatus(t, f, 200)
	t.Logf("%s", f.raw)
	f = c.do("questions", map[string]any{"action": "list"})
	t.Logf("%s", f.raw)
}
