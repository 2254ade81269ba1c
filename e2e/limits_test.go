package e2e_test

// Per-connection state bounds and integers that do not fit their field (issue 9, items 6
// and 7).

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/wsbridge/wsbridge/bridge"
)

// idOfLen is a JSON string request_id whose raw JSON is n bytes long.
func idOfLen(n int) string { return strings.Repeat("x", n-2) }

func TestLongRequestIDRefusedOnEveryAction(t *testing.T) {
	e, sp := newSpyEnv(t)
	c := e.dial()
	pk := c.createQuestion("long ids")
	long := idOfLen(bridge.MaxRequestIDBytes + 1)
	payloads := []map[string]any{
		{"action": "list"},
		{"action": "retrieve", "pk": pk},
		{"action": "create", "data": map[string]any{"question_text": "q"}},
		{"action": "update", "pk": pk, "data": map[string]any{"question_text": "q"}},
		{"action": "patch", "pk": pk, "data": map[string]any{"question_text": "q"}},
		{"action": "delete", "pk": pk},
		{"action": "publish", "pk": pk},
		{"action": "no_such_action"},
		{"action": "subscribe", "data": map[string]any{"action": "create"}},
		{"action": "unsubscribe", "data": map[string]any{"action": "create"}},
	}
	before := len(sp.resourceCalls())
	for _, p := range payloads {
		p["request_id"] = long
		c.send("questions", p)
		f := c.next()
		wantErrors(t, f, 400, `["Invalid request_id."]`)
		if f.Payload["request_id"] != nil {
			t.Fatalf("%v: request_id echoed: %s", p["action"], f.raw)
		}
	}
	// A numeric one too.
	c.sendRaw(`{"stream":"questions","payload":{"action":"list","request_id":` + strings.Repeat("1", bridge.MaxRequestIDBytes+1) + `}}`)
	wantErrors(t, c.next(), 400, `["Invalid request_id."]`)
	if n := len(sp.resourceCalls()) - before; n != 0 {
		t.Fatalf("%d calls reached the backend", n)
	}
	if st := e.bridge.Stats(); st.Subscriptions != 0 {
		t.Fatalf("%d subscriptions kept", st.Subscriptions)
	}
	// At the limit: accepted and echoed exactly.
	max := idOfLen(bridge.MaxRequestIDBytes)
	f := c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}, "request_id": max})
	wantStatus(t, f, 200)
	f = c.do("questions", map[string]any{"action": "unsubscribe", "data": map[string]any{"request_id": max}})
	wantStatus(t, f, 200)
	// A subscription's pk and data.action are bounded the same way.
	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe", "pk": idOfLen(bridge.MaxRequestIDBytes + 1),
		"data": map[string]any{"action": "update"}}), 404, `["Not found."]`)
	acts := make([]string, 40)
	for i := range acts {
		acts[i] = "create"
	}
	wantErrors(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": acts}}),
		400, `["Invalid event action."]`)
}

// TestConnectionStateBound holds connections at -max-subscriptions subscriptions whose
// request_id, pk and data.action are as long as allowed, and checks that the heap they cost
// stays under the bound docs/security.md gives per subscription.
func TestConnectionStateBound(t *testing.T) {
	const (
		conns   = 10
		subs    = 100
		perSub  = 8 << 10  // docs/security.md: at most 8 KiB per subscription
		perConn = 64 << 10 // and 64 KiB for an idle connection
	)
	e := newEnv(t, bridge.WithMaxSubscriptions(subs), bridge.WithRateLimit(0, 0))
	anchor := e.dial()
	pk := anchor.createQuestion("bound")
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	clients := make([]*client, conns)
	for i := range clients {
		c := e.dial()
		clients[i] = c
		for j := range subs {
			id := fmt.Sprintf("%d-%d-", i, j)
			id += strings.Repeat("x", bridge.MaxRequestIDBytes-2-len(id))
			// All share one upstream: the bound is about what a client makes the bridge keep.
			c.send("questions", map[string]any{"action": "subscribe", "pk": pk,
				"data": map[string]any{"action": []string{"update", "delete", "update", "delete", "update", "delete"}}, "request_id": id})
		}
		for range subs {
			wantStatus(t, c.next(), 200)
		}
	}
	// One more is refused: the count is bounded too.
	wantErrors(t, clients[0].do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}),
		429, `["Too many subscriptions."]`)
	if st := e.bridge.Stats(); st.Subscriptions != conns*subs {
		t.Fatalf("%d subscriptions, want %d", st.Subscriptions, conns*subs)
	}
	after := heap()
	grown := int64(after) - int64(before)
	bound := int64(conns * (perConn + subs*perSub))
	t.Logf("%d connections with %d subscriptions each: heap grew %d bytes (%d per connection); bound %d",
		conns, subs, grown, grown/conns, bound/conns)
	if grown > bound {
		t.Fatalf("heap grew %d bytes, over the bound of %d", grown, bound)
	}
	runtime.KeepAlive(clients)
}

func TestIntegersThatDoNotFitAreRefused(t *testing.T) {
	e, sp := newSpyEnv(t)
	c := e.dial()
	pk := c.createQuestion("fits")
	before := len(sp.resourceCalls())
	// page and page_size are int32 in the polls protos.
	for _, page := range []string{"4294967297", "2147483648", `"4294967297"`, "4.294967297e9"} {
		c.sendRaw(`{"stream":"questions","payload":{"action":"list","data":{"page":` + page + `},"request_id":"p"}}`)
		wantErrors(t, c.next(), 400, `["Invalid page."]`)
	}
	// page_size is capped at -max-page-size first, so only a cap above the field's range
	// could overflow; a value past int64 is refused as it always was.
	c.sendRaw(`{"stream":"questions","payload":{"action":"list","data":{"page_size":9223372036854775808},"request_id":"s"}}`)
	wantErrors(t, c.next(), 400, `["Invalid page size."]`)
	if n := len(sp.resourceCalls()) - before; n != 0 {
		t.Fatalf("%d refused lists reached the backend", n)
	}
	// The largest int32 page is fine.
	f := c.do("questions", map[string]any{"action": "list", "data": map[string]any{"page": 2147483647}})
	wantStatus(t, f, 200)
	// A pk past int64 is not found; it never becomes another key.
	for _, p := range []string{"9223372036854775808", `"18446744073709551617"`, "1e30", `"` + pk + `.5"`} {
		c.sendRaw(`{"stream":"questions","payload":{"action":"retrieve","pk":` + p + `,"request_id":"k"}}`)
		wantErrors(t, c.next(), 404, `["Not found."]`)
	}
	// A data field past its type is a field error.
	c.sendRaw(`{"stream":"choices","payload":{"action":"create","data":{"question_id":"` + pk + `","choice_text":"c","votes":9223372036854775808},"request_id":"d"}}`)
	wantErrors(t, c.next(), 400, `[{"votes":["Not a valid int64."]}]`)
}

func TestPageSizeCapAboveTheFieldIsRefused(t *testing.T) {
	e, sp := newSpyEnv(t, bridge.WithPageSize(25, 1<<40))
	c := e.dial()
	before := len(sp.resourceCalls())
	f := c.do("questions", map[string]any{"action": "list", "data": map[string]any{"page_size": 4294967297}})
	wantErrors(t, f, 400, `["Invalid page size."]`)
	if n := len(sp.resourceCalls()) - before; n != 0 {
		t.Fatalf("the refused list reached the backend")
	}
	wantStatus(t, c.do("questions", map[string]any{"action": "list", "data": map[string]any{"page_size": 2147483647}}), 200)
}
