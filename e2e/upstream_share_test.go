package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
)

// One upstream per subscription, whoever subscribes (issue 11 §1).

// parityPermission lets user-<n> receive (retrieve) only the questions whose pk has n's parity.
var parityPermission = bridge.PermissionFunc(func(id *bridge.Identity, stream, action, pk string) bool {
	if action != "retrieve" || pk == "" || id == nil {
		return true
	}
	n, err := strconv.Atoi(strings.TrimPrefix(id.Subject, "user-"))
	p, err2 := strconv.Atoi(pk)
	return err == nil && err2 == nil && n%2 == p%2
})

// dialUsers connects n users, user-0 … user-<n-1>, each with its own token, and subscribes
// each to created questions.
func dialUsers(t *testing.T, e *env, k *keys, n int) []*subLightConn {
	t.Helper()
	conns := make([]*subLightConn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.ws.Close()
			}
		}
	})
	toks := make([]string, n)
	for i := range toks {
		toks[i] = k.hs256(t, claims(fmt.Sprintf("user-%d", i), nil))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := subForEach(n, 16, func(i int) error {
		ws, _, err := subLightDialer.DialContext(ctx, e.url, http.Header{"Authorization": {"Bearer " + toks[i]}})
		if err != nil {
			return err
		}
		c := &subLightConn{ws: ws, id: fmt.Sprintf("u%d", i)}
		conns[i] = c
		req := fmt.Sprintf(`{"stream":"questions","payload":{"action":"subscribe","data":{"action":"create"},"request_id":%q}}`, c.id)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			return err
		}
		ev, err := c.read(20 * time.Second)
		if err != nil {
			return err
		}
		if ev.Payload.ResponseStatus == nil || *ev.Payload.ResponseStatus != 200 || ev.Payload.RequestID != c.id {
			return fmt.Errorf("user %d: subscribe not confirmed: %+v", i, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("subscribing: %v", err)
	}
	return conns
}

// subscribeCalls lists the metadata of every Subscribe call the backend received.
func subscribeCalls(sp *spy) []spyCall {
	var out []spyCall
	for _, c := range sp.all() {
		if c.method == "/polls.v1.QuestionService/Subscribe" {
			out = append(out, c)
		}
	}
	return out
}

// TestUpstreamSharedAcrossUsers: a thousand signed-in users with the same subscription share
// one upstream stream, which carries none of their metadata, and each still receives only
// the events its permission allows.
func TestUpstreamSharedAcrossUsers(t *testing.T) {
	const users = 1000
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithPermissions(parityPermission),
		bridge.WithForwardClaims("email"), bridge.WithForwardToken(true), bridge.WithForwardHeaders("X-Request-Id"))
	conns := dialUsers(t, e, k, users)

	if n := e.bridge.Stats().UpstreamStreams; n != 1 {
		t.Fatalf("%d signed-in users on one subscription use %d upstream streams, want 1", users, n)
	}
	if _, body, _ := httpGet(t, e.http.URL+"/metrics"); !strings.Contains(body, "\nwsbridge_upstream_streams 1\n") {
		t.Fatalf("/metrics does not say 1 upstream stream:\n%s", body)
	}
	calls := subscribeCalls(sp)
	if len(calls) != 1 {
		t.Fatalf("the backend got %d Subscribe calls, want 1", len(calls))
	}
	for key, vals := range calls[0].md {
		if strings.HasPrefix(key, "x-bridge-") || key == "authorization" || key == "x-request-id" {
			t.Fatalf("the shared upstream carries a user's metadata: %s = %q", key, vals)
		}
	}

	// Four questions, two of each parity: every user gets exactly its two, in order. A
	// wrongly delivered one would come before the second allowed one, so reading two
	// per user is enough.
	w := e.dial()
	var pks []string
	for i := range 4 {
		pks = append(pks, w.createQuestion(fmt.Sprintf("q%d", i)))
	}
	err := subForEach(users, 64, func(i int) error {
		var want []string
		for _, pk := range pks {
			if p, _ := strconv.Atoi(pk); p%2 == i%2 {
				want = append(want, pk)
			}
		}
		for _, pk := range want {
			ev, err := conns[i].read(30 * time.Second)
			if err != nil {
				return fmt.Errorf("user %d: %w", i, err)
			}
			if ev.Payload.Action != "create" || ev.Payload.PK != pk || ev.Payload.RequestID != conns[i].id {
				return fmt.Errorf("user %d: got %+v, want the create of %s (of %q)", i, ev.Payload, pk, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(subscribeCalls(sp)); n != 1 {
		t.Fatalf("the backend got %d Subscribe calls, want 1", n)
	}
}

// TestUpstreamPerIdentityOptIn: a stream configured upstream_per_identity (option or
// configuration file) has one upstream per identity, each carrying that identity's metadata;
// identical subscriptions of one identity still share theirs.
func TestUpstreamPerIdentityOptIn(t *testing.T) {
	cfg, err := bridge.ParseConfig([]byte(`{"upstream_per_identity": ["questions"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]bridge.Option{
		"option": bridge.WithUpstreamPerIdentity("questions"),
		"config": cfg.Option(),
	} {
		t.Run(name, func(t *testing.T) {
			k, _ := signingKeys(t)
			e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), opt)
			sub := map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}
			ann1 := e.dialAs(k.hs256(t, claims("ann", nil)), nil)
			ann2 := e.dialAs(k.rs256(t, claims("ann", nil)), nil)
			bob := e.dialAs(k.hs256(t, claims("bob", nil)), nil)
			wantStatus(t, ann1.do("questions", sub), 200)
			wantStatus(t, ann2.do("questions", sub), 200)
			if n := e.bridge.Stats().UpstreamStreams; n != 1 {
				t.Fatalf("%d upstreams for one identity, want 1", n)
			}
			wantStatus(t, bob.do("questions", sub), 200)
			if n := e.bridge.Stats().UpstreamStreams; n != 2 {
				t.Fatalf("%d upstreams for two identities, want 2", n)
			}
			var subjects []string
			for _, c := range subscribeCalls(sp) {
				subjects = append(subjects, c.md.Get(bridge.MDSubject)...)
			}
			slices.Sort(subjects)
			if !slices.Equal(subjects, []string{"ann", "bob"}) {
				t.Fatalf("upstream subjects %q", subjects)
			}
			e.dial().createQuestion("x")
			for _, c := range []*client{ann1, ann2, bob} {
				if f := c.next(); f.Payload["action"] != "create" {
					t.Fatalf("event %s", f.raw)
				}
			}
		})
	}
}

// TestUpstreamPerIdentityConfigErrors: an empty stream name is refused, naming the key.
func TestUpstreamPerIdentityConfigErrors(t *testing.T) {
	_, err := bridge.ParseConfig([]byte(`{"upstream_per_identity": ["questions", ""]}`))
	if err == nil || err.Error() != "configuration: upstream_per_identity[1]: empty stream name" {
		t.Fatalf("err = %v", err)
	}
}

// TestStuckClientsHoldUpNoOne: more subscribers than the bridge has writer goroutines stop
// reading, so that writes to each of them block in the kernel for the whole write timeout;
// a client that reads still gets every reply. Writers are pooled (conn.go): without a new
// writer when the pool makes no progress, its replies would wait for the write timeout.
func TestStuckClientsHoldUpNoOne(t *testing.T) {
	const (
		subsEach = 20
		updates  = 30
	)
	stuck := 4*runtime.GOMAXPROCS(0) + 16 // more than the pool's writers (maxWriters)
	e := newEnv(t, bridge.WithOutboundQueue(8<<20), bridge.WithWriteTimeout(10*time.Minute), bridge.WithRateLimit(0, 0))
	w := e.dial()
	q := w.createQuestion("Stuck?")

	// The stuck clients reach the bridge through small socket buffers, as in
	// TestSubscribeSlowConsumer, and never read after subscribing.
	url, d := e.smallBufferServer()
	for i := range stuck {
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		c := &subLightConn{ws: ws}
		for j := range subsEach {
			c.id = fmt.Sprintf("stuck%d-%d", i, j)
			if err := c.subscribe(q); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Each update is 20 events of about 400 bytes to each stuck client: after a few, every
	// stuck client's socket is full and a writer blocks on it. Each reply must still come.
	text := func(i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat("x", 197) }
	for i := range updates {
		w.subUpdate(q, text(i))
	}
	wantStatus(t, w.do("questions", map[string]any{"action": "retrieve", "pk": q}), 200)
}
