package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wsbridge/wsbridge/bridge"
)

func TestOriginCheck(t *testing.T) {
	// With an authenticator, so that a refusal is seen to come before any credential: the
	// refused handshakes carry a token it would refuse with 401, and it is never called.
	auth := &countingAuth{}
	e := newEnv(t, bridge.WithAuthenticator(auth), bridge.WithAllowedOrigins("https://app.example.com", "*.example.org", "partner.test:8443"))
	own := "http://" + strings.TrimPrefix(e.http.URL, "http://")
	cases := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{own, true},
		{strings.ToUpper(own), true},
		{"http://evil.test", false},
		{"null", false},
		{"https://app.example.com", true},
		{"http://app.example.com", false}, // an origin pattern includes the scheme
		{"https://app.example.com:444", false},
		{"https://a.example.org", true},
		{"http://a.b.example.org", true},
		{"https://example.org", false}, // *.example.org: subdomains only
		{"https://evilexample.org", false},
		{"https://example.org.evil.test", false},
		{"https://partner.test:8443", true},
		{"https://partner.test", false},
		{"not a url", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		if tc.ok {
			ws, resp := handshake(t, e.url, "header", "good", h)
			if ws == nil {
				t.Fatalf("origin %q refused: HTTP %d", tc.origin, resp.StatusCode)
			}
			ws.Close()
			continue
		}
		before := auth.calls.Load()
		ws, resp := handshake(t, e.url, "header", "bad", h)
		wantRefused(t, ws, resp, http.StatusForbidden, "origin "+tc.origin)
		if auth.calls.Load() != before {
			t.Fatalf("origin %q: the token was verified before the origin was refused", tc.origin)
		}
	}

	// By default only the bridge's own origin.
	d := newEnv(t)
	ws, resp := handshake(t, d.url, "", "", http.Header{"Origin": {"https://app.example.com"}})
	wantRefused(t, ws, resp, http.StatusForbidden, "default, cross-origin")
	ws, _ = handshake(t, d.url, "", "", http.Header{"Origin": {"http://" + strings.TrimPrefix(d.http.URL, "http://")}})
	if ws == nil {
		t.Fatal("default: same origin refused")
	}
	ws.Close()
}

func TestOversizedFrameCloses1009(t *testing.T) {
	e := newEnv(t, bridge.WithMaxFrameSize(1024))
	c := e.dial()
	pad := strings.Repeat("x", 900)
	// request_id is bounded to 255 bytes: the padding goes in data. Just under the limit,
	// the frame reaches the backend, which answers it.
	f := c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": pad}})
	wantErrors(t, f, 400, `[{"question_text":["Ensure this field has no more than 200 characters."]}]`)
	c.sendRaw(`{"stream":"questions","payload":{"action":"list","request_id":"` + strings.Repeat("x", 2048) + `"}}`)
	if code := c.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// Other connections are unaffected.
	wantStatus(t, e.dial().do("questions", map[string]any{"action": "list"}), 200)
}

// TestRateLimitIsPerConnection floods one connection past its limit: it gets 429s, while
// another connection's requests are answered normally.
func TestRateLimitIsPerConnection(t *testing.T) {
	e := newEnv(t, bridge.WithRateLimit(1, 5))
	flood, calm := e.dial(), e.dial()
	q := calm.createQuestion("calm") // 1 of calm's 5

	const n = 40
	for i := 0; i < n; i++ {
		flood.send("questions", map[string]any{"action": "retrieve", "pk": q, "request_id": i})
	}
	seen := map[int]bool{}
	limited := 0
	for len(seen) < n {
		f := flood.next()
		id := int(f.Payload["request_id"].(float64))
		if seen[id] {
			t.Fatalf("request %d answered twice", id)
		}
		seen[id] = true
		switch f.status() {
		case 200:
			if f.data()["id"] != q {
				t.Fatalf("wrong reply %s", f.raw)
			}
		case 429:
			wantErrors(t, f, 429, `["Too many requests."]`)
			if f.Stream != "questions" || f.Payload["action"] != "retrieve" {
				t.Fatalf("429 does not echo the request: %s", f.raw)
			}
			limited++
		default:
			t.Fatalf("unexpected reply %s", f.raw)
		}
	}
	if limited == 0 {
		t.Fatalf("%d requests in a burst of 5 at 1/s: none limited", n)
	}
	if n-limited < 5 {
		t.Fatalf("only %d of the burst of 5 answered", n-limited)
	}
	for i := 0; i < 3; i++ {
		f := calm.do("questions", map[string]any{"action": "retrieve", "pk": q})
		wantStatus(t, f, 200)
		if f.data()["question_text"] != "calm" {
			t.Fatalf("calm got %s", f.raw)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	auth := &countingAuth{}
	e := newEnv(t, bridge.WithAuthenticator(auth), bridge.WithMaxConnections(2))
	a, b := e.dial(), e.dial()
	// A token the authenticator would refuse with 401: the limit comes first, and the
	// authenticator is never called.
	ws, resp := handshake(t, e.url, "header", "bad", nil)
	wantRefused(t, ws, resp, http.StatusServiceUnavailable, "third connection")
	if n := auth.calls.Load(); n != 0 {
		t.Fatalf("the authenticator ran %d times before the limit refused the handshake", n)
	}
	wantStatus(t, b.do("questions", map[string]any{"action": "list"}), 200)
	a.close()
	var c *websocket.Conn
	waitFor(t, "a slot to free up", func() bool {
		c, _ = handshake(t, e.url, "", "", nil)
		return c != nil
	})
	wantStatus(t, wrap(t, c).do("questions", map[string]any{"action": "list"}), 200)
}

// TestKeepAlive: a client that answers no ping is closed once idle; one that answers stays.
func TestKeepAlive(t *testing.T) {
	e := newEnv(t, bridge.WithKeepAlive(50*time.Millisecond, time.Second))
	alive := e.dial() // gorilla answers pings while the client reads

	silent, resp := handshake(t, e.url, "", "", nil)
	if silent == nil {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	defer silent.Close()
	pings := make(chan struct{}, 1000)
	silent.SetPingHandler(func(string) error { pings <- struct{}{}; return nil }) // no pong
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := silent.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("a connection that answers no ping was not closed")
	}
	if len(pings) == 0 {
		t.Fatal("the silent client was never pinged")
	}
	wantStatus(t, alive.do("questions", map[string]any{"action": "list"}), 200)
}

// TestOnlyMappedActionsReachBackend: whatever a client names, only the resources' mapped
// actions reach the backend; reflection and health are not streams.
func TestOnlyMappedActionsReachBackend(t *testing.T) {
	e, sp := newSpyEnv(t)
	c := e.dial()
	before := len(sp.all())
	for _, a := range []string{
		"Subscribe", "Create", "Retrieve", "server_reflection_info", "ServerReflectionInfo",
		"check", "Check", "watch", "list_services", "/polls.v1.QuestionService/Create",
		"/grpc.health.v1.Health/Check", "create ", "CREATE", "__proto__", "",
	} {
		wantErrors(t, c.do("questions", map[string]any{"action": a}), 400, `["Invalid Action"]`)
	}
	for _, s := range []string{
		"grpc.health.v1.Health", "health", "grpc.reflection.v1.ServerReflection",
		"grpc.reflection.v1alpha.ServerReflection", "reflection", "polls.v1.QuestionService", "QuestionService",
	} {
		for _, a := range []string{"check", "list", "server_reflection_info", "watch"} {
			wantErrors(t, c.do(s, map[string]any{"action": a}), 404, `["Unknown stream."]`)
		}
	}
	if after := sp.all(); len(after) != before {
		t.Fatalf("the backend saw %v", after[before:])
	}
}

func TestUnknownDataFieldsRefused(t *testing.T) {
	e, sp := newSpyEnv(t)
	c := e.dial()
	before := len(sp.resourceCalls())
	f := c.do("questions", map[string]any{"action": "create", "data": map[string]any{"question_text": "x", "owner_id": 1, "published": true}})
	wantErrors(t, f, 400, `[{"owner_id":["Unknown field."]}]`)
	f = c.do("questions", map[string]any{"action": "update", "pk": 1, "data": map[string]any{"question_text": "x", "id": 5, "is_admin": true}})
	wantErrors(t, f, 400, `[{"is_admin":["Unknown field."]}]`)
	if after := sp.resourceCalls(); len(after) != before {
		t.Fatalf("refused requests reached the backend: %v", after[before:])
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)

	t.Run("bridge serves wss", func(t *testing.T) {
		e := newEnv(t)
		srv := httptest.NewUnstartedServer(e.bridge)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		defer srv.Close()
		url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/ws"
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pki.pool}, HandshakeTimeout: 10 * time.Second}
		ws, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := wrap(t, ws)
		wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
		c.close()
		// A client that does not trust the certificate cannot connect.
		if ws, _, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(url, nil); err == nil {
			ws.Close()
			t.Fatal("untrusted certificate accepted")
		}
	})

	dialTLS := func(cert bool) []grpc.DialOption {
		cfg := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
		if cert {
			cfg.Certificates = []tls.Certificate{pki.client}
		}
		return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}
	}
	for _, mutual := range []bool{false, true} {
		t.Run(fmt.Sprintf("backend TLS mutual=%v", mutual), func(t *testing.T) {
			lis := pki.tlsListener(t, mutual)
			b, sp := startSpyBackend(t, lis)
			e := newEnvWith(t, b, bridge.Backend{Target: b.addr, DialOptions: dialTLS(mutual)})
			wantStatus(t, e.dial().do("questions", map[string]any{"action": "list"}), 200)
			sp.last(t, "/polls.v1.QuestionService/List")

			// Without the CA (plaintext), or without a client certificate for mutual TLS,
			// the bridge cannot reach the backend.
			// The refusal is proven by the backend's failed TLS handshake and the discovery
			// error the bridge logs, not by a wait that ran out.
			bad := map[string][]grpc.DialOption{"plaintext": nil}
			backendSays := map[string]string{"plaintext": "first record does not look like a TLS handshake"}
			if mutual {
				bad["no client certificate"] = dialTLS(false)
				backendSays["no client certificate"] = "client didn't provide a certificate"
			}
			for name, dial := range bad {
				logs := &logBuffer{}
				srv, err := bridge.New(bridge.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
					bridge.WithDiscoveryRetry(50*time.Millisecond),
					bridge.WithBackend(bridge.Backend{Target: b.addr, DialOptions: dial}))
				if err != nil {
					t.Fatal(err)
				}
				waitFor(t, name+": the discovery failure to be logged", func() bool {
					return len(logs.lines(`msg="discovery failed, retrying"`)) > 0
				})
				waitFor(t, name+": the backend to refuse the TLS handshake", func() bool {
					return slices.ContainsFunc(lis.handshakeErrors(), func(e string) bool { return strings.Contains(e, backendSays[name]) })
				})
				ready := srv.Ready()
				_ = srv.Shutdown(context.Background())
				line := logs.lines(`msg="discovery failed, retrying"`)[0]
				if ready || !strings.Contains(line, "code = Unavailable") {
					t.Fatalf("%s: ready %v, logged %s", name, ready, line)
				}
			}
		})
	}
}

// TestPingIntervalZero: -ping-interval 0 sends no pings but keeps the idle deadline, so a
// client must send something (a ping will do) within it (docs/security.md).
func TestPingIntervalZero(t *testing.T) {
	const idle = time.Second
	e := newEnv(t, bridge.WithKeepAlive(0, idle))

	// A client that pings every 50 ms, connected first.
	ws, resp := handshake(t, e.url, "", "", nil)
	if ws == nil {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	pinger := wrap(t, ws)
	stop := make(chan struct{})
	pingerDone := make(chan struct{})
	go func() {
		defer close(pingerDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second))
			}
		}
	}()
	defer func() { close(stop); <-pingerDone }()

	start := time.Now() // before the bridge arms the silent connection's deadline
	silent, resp := handshake(t, e.url, "", "", nil)
	if silent == nil {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	defer silent.Close()
	var pings atomic.Int64
	silent.SetPingHandler(func(string) error { pings.Add(1); return nil })
	closed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := silent.ReadMessage(); err != nil {
				closed <- err
				return
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("a silent connection was not closed at the idle timeout")
	}
	if d := time.Since(start); d < idle {
		t.Fatalf("closed after %s, before the idle timeout", d)
	}
	if n := pings.Load(); n != 0 {
		t.Fatalf("%d pings with -ping-interval 0", n)
	}
	// The pinger connected before the silent client was closed for idleness: it has been
	// there longer than the idle timeout, kept alive by its own pings.
	wantStatus(t, pinger.do("questions", map[string]any{"action": "list"}), 200)
}
