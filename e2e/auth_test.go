package e2e_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/bridge/jwtauth"
)

const denied = `["Permission Denied"]`

// exerciseAllowed runs every kind of request on questions and expects each to succeed.
func exerciseAllowed(t *testing.T, c *client, pk string) {
	t.Helper()
	id := c.createQuestion("mine")
	steps := []struct {
		payload map[string]any
		status  int
	}{
		{map[string]any{"action": "retrieve", "pk": pk}, 200},
		{map[string]any{"action": "update", "pk": id, "data": map[string]any{"question_text": "u"}}, 200},
		{map[string]any{"action": "patch", "pk": id, "data": map[string]any{"question_text": "p"}}, 200},
		{map[string]any{"action": "list"}, 200},
		{map[string]any{"action": "publish", "pk": id}, 200},
		{map[string]any{"action": "report"}, 200},
		{map[string]any{"action": "subscribe", "request_id": "sub", "data": map[string]any{"action": "create"}}, 200},
		{map[string]any{"action": "unsubscribe", "data": map[string]any{"request_id": "sub"}}, 200},
		{map[string]any{"action": "delete", "pk": id}, 200},
	}
	for _, s := range steps {
		f := c.do("questions", s.payload)
		if f.status() != s.status {
			t.Fatalf("%v: %s, want %d", s.payload, f.raw, s.status)
		}
	}
	f := c.do("questions", map[string]any{"action": "explode"})
	wantErrors(t, f, 400, `["Invalid Action"]`)
}

// exerciseDenied runs every kind of request on questions and expects each to be denied
// without reaching the backend.
func exerciseDenied(t *testing.T, c *client, sp *spy, pk string) {
	t.Helper()
	before := len(sp.resourceCalls())
	for _, p := range []map[string]any{
		{"action": "create", "data": map[string]any{"question_text": "no"}},
		{"action": "retrieve", "pk": pk},
		{"action": "update", "pk": pk, "data": map[string]any{"question_text": "no"}},
		{"action": "patch", "pk": pk, "data": map[string]any{"question_text": "no"}},
		{"action": "list"},
		{"action": "delete", "pk": pk},
		{"action": "publish", "pk": pk},
		{"action": "report"},
		{"action": "subscribe", "data": map[string]any{"action": "create"}},
		{"action": "subscribe", "pk": pk, "data": map[string]any{"action": []string{"update", "delete"}}},
		{"action": "unsubscribe", "data": map[string]any{"action": "create"}},
		{"action": "explode"}, // unknown actions are denied too, not reported as unknown
	} {
		f := c.do("questions", p)
		wantErrors(t, f, 401, denied)
	}
	if after := sp.resourceCalls(); len(after) != before {
		t.Fatalf("denied requests reached the backend: %v", after[before:])
	}
}

func TestBuiltinPermissions(t *testing.T) {
	k, _ := signingKeys(t)
	users := []struct{ name, token string }{
		{"anonymous", ""},
		{"plain", k.hs256(t, claims("plain", nil))},
		{"scope", k.hs256(t, claims("scoped", jwt.MapClaims{"scope": "polls.read polls.write"}))},
		{"scp", k.rs256(t, claims("scp", jwt.MapClaims{"scp": []string{"polls.write"}}))},
		{"admin", k.es256(t, claims("admin", jwt.MapClaims{"roles": []string{"admin"}, "scope": "polls.read"}))},
	}
	cases := []struct {
		perm    string
		allowed []string
	}{
		{"allow_any", []string{"anonymous", "plain", "scope", "scp", "admin"}},
		{"is_authenticated", []string{"plain", "scope", "scp", "admin"}},
		{"scope:polls.write", []string{"scope", "scp"}},
		{"role:admin", []string{"admin"}},
	}
	for _, tc := range cases {
		t.Run(tc.perm, func(t *testing.T) {
			p, err := bridge.ParsePermission(tc.perm)
			if err != nil {
				t.Fatal(err)
			}
			e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithPolicy(bridge.Policy{Default: p}))
			var pk string
			for _, u := range users {
				if u.name == tc.allowed[0] {
					pk = e.dialAs(u.token, nil).createQuestion("seed")
				}
			}
			for _, u := range users {
				c := e.dialAs(u.token, nil)
				if slices.Contains(tc.allowed, u.name) {
					exerciseAllowed(t, c, pk)
				} else {
					exerciseDenied(t, c, sp, pk)
				}
			}
		})
	}
}

// TestDemoAuthConfig checks the demo's configuration file: choices need a token except to
// read and subscribe, questions are open.
func TestDemoAuthConfig(t *testing.T) {
	raw, err := os.ReadFile("../examples/demo-auth.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bridge.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, jwtauth.Config{Secret: k.secret}), cfg.Option())
	anon := e.dial()
	user := e.dialAs(k.hs256(t, claims("ann", nil)), nil)

	q := anon.createQuestion("open to all") // questions stay open
	f := user.do("choices", map[string]any{"action": "create", "data": map[string]any{"question_id": q, "choice_text": "Yes"}})
	wantStatus(t, f, 201)
	ch := f.data()["id"].(string)

	before := len(sp.resourceCalls())
	for _, p := range []map[string]any{
		{"action": "create", "data": map[string]any{"question_id": q, "choice_text": "No"}},
		{"action": "update", "pk": ch, "data": map[string]any{"question_id": q, "choice_text": "x"}},
		{"action": "patch", "pk": ch, "data": map[string]any{"choice_text": "x"}},
		{"action": "delete", "pk": ch},
		{"action": "vote", "pk": ch},
		{"action": "explode"},
	} {
		wantErrors(t, anon.do("choices", p), 401, denied)
	}
	if after := sp.resourceCalls(); len(after) != before {
		t.Fatalf("denied requests reached the backend: %v", after[before:])
	}
	for _, p := range []map[string]any{
		{"action": "retrieve", "pk": ch},
		{"action": "list"},
		{"action": "subscribe", "request_id": "s", "data": map[string]any{"action": "update"}},
		{"action": "unsubscribe", "data": map[string]any{"request_id": "s"}},
	} {
		wantStatus(t, anon.do("choices", p), 200)
	}
	wantStatus(t, user.do("choices", map[string]any{"action": "vote", "pk": ch}), 200)
	wantErrors(t, user.do("choices", map[string]any{"action": "explode"}), 400, `["Invalid Action"]`)
	wantStatus(t, anon.do("questions", map[string]any{"action": "delete", "pk": q}), 200)
}

// TestConfigPrecedence: per action over per stream over global.
func TestConfigPrecedence(t *testing.T) {
	cfg, err := bridge.ParseConfig([]byte(`{"permissions": {
		"default": "deny_all",
		"streams": {"questions": {"default": "is_authenticated", "actions": {"list": "allow_any", "report": "role:auditor"}}}
	}}`))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := signingKeys(t)
	e, _ := newSpyEnv(t, withJWT(t, k.jwtConfig()), cfg.Option())
	anon, user := e.dial(), e.dialAs(k.hs256(t, claims("u", nil)), nil)
	auditor := e.dialAs(k.hs256(t, claims("a", jwt.MapClaims{"roles": []string{"auditor"}})), nil)

	wantStatus(t, anon.do("questions", map[string]any{"action": "list"}), 200)                      // action
	wantErrors(t, anon.do("questions", map[string]any{"action": "report"}), 401, denied)            // action
	wantErrors(t, user.do("questions", map[string]any{"action": "report"}), 401, denied)            // action
	wantStatus(t, auditor.do("questions", map[string]any{"action": "report"}), 200)                 // action
	wantErrors(t, anon.do("questions", map[string]any{"action": "retrieve", "pk": 1}), 401, denied) // stream
	wantErrors(t, user.do("questions", map[string]any{"action": "retrieve", "pk": 1}), 404, `["Not found."]`)
	wantErrors(t, user.do("choices", map[string]any{"action": "list"}), 401, denied) // global
}

func TestBackendAuthErrorsMapped(t *testing.T) {
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()))
	sp.reject = func(method string, md metadata.MD) error {
		if !strings.HasPrefix(method, "/polls.v1.") {
			return nil
		}
		switch strings.Join(md.Get(bridge.MDSubject), ",") {
		case "locked":
			return status.Error(codes.Unauthenticated, "account locked")
		case "mallory":
			return status.Error(codes.PermissionDenied, "not yours")
		}
		return nil
	}
	f := e.dialAs(k.hs256(t, claims("locked", nil)), nil).do("questions", map[string]any{"action": "list"})
	wantErrors(t, f, 401, `["account locked"]`)
	f = e.dialAs(k.hs256(t, claims("mallory", nil)), nil).do("questions", map[string]any{"action": "list"})
	wantErrors(t, f, 403, `["not yours"]`)
	wantStatus(t, e.dialAs(k.hs256(t, claims("ann", nil)), nil).do("questions", map[string]any{"action": "list"}), 200)
}

// TestEventsFilteredPerSubscriber: with a permission that depends on the pk, each event is
// delivered only to the subscribers allowed to retrieve it.
func TestEventsFilteredPerSubscriber(t *testing.T) {
	k, _ := signingKeys(t)
	evenOnly := bridge.PermissionFunc(func(id *bridge.Identity, stream, action, pk string) bool {
		if action != "retrieve" || pk == "" || id == nil || id.Subject != "even" {
			return true
		}
		n, err := strconv.Atoi(pk)
		return err == nil && n%2 == 0
	})
	e, _ := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithPermissions(evenOnly))
	even := e.dialAs(k.hs256(t, claims("even", nil)), nil)
	all := e.dialAs(k.hs256(t, claims("all", nil)), nil)
	for _, c := range []*client{even, all} {
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "request_id": "s", "data": map[string]any{"action": "create"}}), 200)
	}
	w := e.dial()
	ids := []string{w.createQuestion("a"), w.createQuestion("b"), w.createQuestion("c")}
	var wantEven []string
	for _, id := range ids {
		if n, _ := strconv.Atoi(id); n%2 == 0 {
			wantEven = append(wantEven, id)
		}
	}
	for _, id := range ids {
		if f := all.next(); fmt.Sprint(f.Payload["pk"]) != id {
			t.Fatalf("all: event %s, want pk %s", f.raw, id)
		}
	}
	for _, id := range wantEven {
		if f := even.next(); fmt.Sprint(f.Payload["pk"]) != id {
			t.Fatalf("even: event %s, want pk %s (odd ones are not delivered)", f.raw, id)
		}
	}
	// Events are delivered in order: one more event, allowed, shows nothing odd was queued.
	last := w.createQuestion("d")
	for n, _ := strconv.Atoi(last); n%2 != 0; n, _ = strconv.Atoi(last) {
		last = w.createQuestion("e")
	}
	if f := even.next(); fmt.Sprint(f.Payload["pk"]) != last {
		t.Fatalf("even: event %s, want pk %s", f.raw, last)
	}
	// Retrieving an odd question directly is denied too.
	odd := ids[0]
	if n, _ := strconv.Atoi(odd); n%2 == 0 {
		odd = ids[1]
	}
	wantErrors(t, even.do("questions", map[string]any{"action": "retrieve", "pk": odd}), 401, denied)
}

// TestSubscribeNeedsRetrieve: a subscriber who may not retrieve (whatever the pk) would never
// get an event, so the subscription is refused.
func TestSubscribeNeedsRetrieve(t *testing.T) {
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithPolicy(bridge.Policy{Streams: map[string]bridge.StreamPolicy{
		"questions": {Actions: map[string]bridge.Permission{"retrieve": bridge.IsAuthenticated}},
	}}))
	before := len(sp.resourceCalls())
	wantErrors(t, e.dial().do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 401, denied)
	if after := sp.resourceCalls(); len(after) != before {
		t.Fatalf("a denied subscription reached the backend: %v", after[before:])
	}
	c := e.dialAs(k.hs256(t, claims("ann", nil)), nil)
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
}

func TestBadTokensRefusedAtHandshake(t *testing.T) {
	k, other := signingKeys(t)
	cfg := k.jwtConfig()
	cfg.Issuer, cfg.Audience = "https://issuer.test", "bridge"
	e, sp := newSpyEnv(t, withJWT(t, cfg), bridge.WithTokenCookie(tokenCookie))
	good := func(extra jwt.MapClaims) jwt.MapClaims {
		c := claims("ann", jwt.MapClaims{"iss": "https://issuer.test", "aud": "bridge"})
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, good(nil))
	confused.Header["kid"] = "rsa1"
	confusedTok, err := confused.SignedString(pubPEM) // RS256 public key used as an HMAC secret
	if err != nil {
		t.Fatal(err)
	}
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, good(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs384, err := jwt.NewWithClaims(jwt.SigningMethodHS384, good(nil)).SignedString(k.secret)
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		"expired":        k.hs256(t, good(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})),
		"not yet valid":  k.hs256(t, good(jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()})),
		"no expiry":      k.hs256(t, good(jwt.MapClaims{"exp": nil})),
		"no subject":     k.hs256(t, good(jwt.MapClaims{"sub": nil})),
		"wrong issuer":   k.hs256(t, good(jwt.MapClaims{"iss": "https://evil.test"})),
		"wrong audience": k.hs256(t, good(jwt.MapClaims{"aud": "other"})),
		"malformed":      "not-a-jwt",
		"truncated":      k.hs256(t, good(nil))[:40],
		"bad signature":  k.hs256(t, good(nil)) + "x",
		"wrong secret":   other.hs256(t, good(nil)),
		"wrong RSA key":  other.rs256(t, good(nil)),
		"wrong EC key":   other.es256(t, good(nil)),
		"alg none":       noneTok,
		"alg confusion":  confusedTok,
		"alg HS384":      hs384,
	}
	for _, way := range tokenWays {
		for name, tok := range bad {
			ws, resp := handshake(t, e.url, way, tok, nil)
			wantRefused(t, ws, resp, http.StatusUnauthorized, way+" "+name)
		}
		// The same ways with a good token of each algorithm work.
		for _, tok := range []string{k.hs256(t, good(nil)), k.rs256(t, good(nil)), k.es256(t, good(nil))} {
			ws, resp := handshake(t, e.url, way, tok, nil)
			if ws == nil {
				t.Fatalf("%s: good token refused: HTTP %d", way, resp.StatusCode)
			}
			c := wrap(t, ws)
			wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
			if got := sp.last(t, "/polls.v1.QuestionService/List").md.Get(bridge.MDSubject); !slices.Equal(got, []string{"ann"}) {
				t.Fatalf("%s: backend saw subject %q, want ann", way, got)
			}
			c.close()
		}
	}
	// No token at all: anonymous (a Basic header is not a token: TestCredentialSources).
	ws, _ := handshake(t, e.url, "", "", nil)
	if ws == nil {
		t.Fatal("anonymous handshake refused")
	}
	ws.Close()
}

func TestSubprotocolNeverEchoesToken(t *testing.T) {
	k, _ := signingKeys(t)
	e, _ := newSpyEnv(t, withJWT(t, k.jwtConfig()))
	tok := k.hs256(t, claims("ann", nil))
	ws, resp := handshake(t, e.url, "subprotocol", tok, nil)
	if ws == nil {
		t.Fatalf("handshake refused: HTTP %d", resp.StatusCode)
	}
	defer ws.Close()
	if got := resp.Header.Values("Sec-Websocket-Protocol"); !slices.Equal(got, []string{"channels"}) {
		t.Fatalf("answered subprotocol %q, want channels", got)
	}
	if ws.Subprotocol() != "channels" {
		t.Fatalf("negotiated %q", ws.Subprotocol())
	}
	for name, vals := range resp.Header {
		for _, v := range vals {
			if strings.Contains(v, tok) || strings.Contains(v, "bearer.") {
				t.Fatalf("response header %s echoes the token: %q", name, v)
			}
		}
	}
	// A refused token is not echoed either.
	ws2, resp := handshake(t, e.url, "subprotocol", tok+"x", nil)
	wantRefused(t, ws2, resp, http.StatusUnauthorized, "bad subprotocol token")
	for name, vals := range resp.Header {
		for _, v := range vals {
			if strings.Contains(v, tok) {
				t.Fatalf("refusal header %s echoes the token: %q", name, v)
			}
		}
	}
}

// TestForwardedMetadata: the backend sees the subject, configured claims and allowlisted
// headers, on unary calls and on Subscribe, and nothing a client tries to inject.
func TestForwardedMetadata(t *testing.T) {
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()),
		bridge.WithForwardClaims("email", "roles"),
		bridge.WithForwardHeaders("X-Request-Id", "Accept-Language"))
	inject := http.Header{
		"X-Request-Id":         {"req-1"},
		"Accept-Language":      {"fr"},
		"X-Bridge-Subject":     {"root"},
		"X-Bridge-Claim-Roles": {`["admin"]`},
		"X-Evil":               {"1"},
		"Grpc-Timeout":         {"1n"},
		"Cookie":               {"session=s3cret"},
	}
	tok := k.hs256(t, claims("ann", jwt.MapClaims{"email": "ann@exämple.test", "roles": []string{"reader"}}))
	c := e.dialAs(tok, inject)
	wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
	wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
	want := map[string][]string{
		"x-bridge-subject":     {"ann"},
		"x-bridge-claim-email": {`"ann@ex\u00e4mple.test"`},
		"x-bridge-claim-roles": {`["reader"]`},
		"x-request-id":         {"req-1"},
		"accept-language":      {"fr"},
	}
	// A shared upstream Subscribe carries none of it (TestUpstreamSharedAcrossUsers); calls do.
	if md := sp.last(t, "/polls.v1.QuestionService/Subscribe").md; len(md.Get(bridge.MDSubject)) > 0 || len(md.Get("x-request-id")) > 0 {
		t.Fatalf("the shared upstream carries the user's metadata: %v", md)
	}
	for _, method := range []string{"/polls.v1.QuestionService/List"} {
		md := sp.last(t, method).md
		for key, vals := range want {
			if got := md.Get(key); !slices.Equal(got, vals) {
				t.Fatalf("%s: metadata %s = %q, want %q", method, key, got, vals)
			}
		}
		for _, key := range []string{"x-evil", "authorization", "cookie", "x-bridge-claim-roles-bin"} {
			if got := md.Get(key); len(got) > 0 {
				t.Fatalf("%s: client-chosen metadata %s = %q reached the backend", method, key, got)
			}
		}
		if got := md.Get("grpc-timeout"); len(got) > 0 {
			t.Fatalf("%s: grpc-timeout %q injected", method, got)
		}
	}

	// An anonymous client cannot claim a subject with a header.
	a := e.dialAs("", inject)
	wantStatus(t, a.do("questions", map[string]any{"action": "list"}), 200)
	md := sp.last(t, "/polls.v1.QuestionService/List").md
	for key := range md {
		if strings.HasPrefix(key, "x-bridge-") || key == "x-evil" || key == "authorization" {
			t.Fatalf("anonymous call carries %s = %q", key, md.Get(key))
		}
	}
	if got := md.Get("x-request-id"); !slices.Equal(got, []string{"req-1"}) {
		t.Fatalf("anonymous x-request-id %q", got)
	}
}

func TestForwardToken(t *testing.T) {
	k, _ := signingKeys(t)
	e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithForwardToken(true), bridge.WithTokenCookie(tokenCookie))
	tok := k.hs256(t, claims("ann", nil))
	ws, resp := handshake(t, e.url, "cookie", tok, nil)
	if ws == nil {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	wantStatus(t, wrap(t, ws).do("questions", map[string]any{"action": "list"}), 200)
	if got := sp.last(t, "/polls.v1.QuestionService/List").md.Get("authorization"); !slices.Equal(got, []string{"Bearer " + tok}) {
		t.Fatalf("authorization %q", got)
	}
}

// Sharing upstreams across identities, and the per-identity opt-in: upstream_share_test.go.

func TestTokenExpiryCloses4001(t *testing.T) {
	k, _ := signingKeys(t)
	// exp is whole seconds: each case computes its times from the exp it signed, so the
	// client always has at least 3 s to connect and make its request.
	t.Run("at expiry", func(t *testing.T) {
		t.Parallel()
		e, _ := newSpyEnv(t, withJWT(t, k.jwtConfig()))
		exp := time.Now().Add(4 * time.Second).Truncate(time.Second) // 3 to 4 s ahead
		c := e.dialAs(k.hs256(t, claims("ann", jwt.MapClaims{"exp": exp.Unix()})), nil)
		wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
		if code := c.closeCode(); code != bridge.CloseTokenExpired {
			t.Fatalf("close code %d, want 4001", code)
		}
		if now := time.Now(); now.Before(exp) {
			t.Fatalf("closed %s before exp", exp.Sub(now))
		}
	})
	t.Run("margin", func(t *testing.T) {
		t.Parallel()
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		tok := k.hs256(t, claims("ann", jwt.MapClaims{"exp": exp.Unix()}))
		closeAt := time.Now().Add(3 * time.Second)
		margin := exp.Sub(closeAt) // the connection must close at closeAt, an hour before exp
		e, _ := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithTokenExpiryMargin(margin))
		c := e.dialAs(tok, nil)
		wantStatus(t, c.do("questions", map[string]any{"action": "subscribe", "data": map[string]any{"action": "create"}}), 200)
		if code := c.closeCode(); code != bridge.CloseTokenExpired {
			t.Fatalf("close code %d, want 4001", code)
		}
		if now := time.Now(); now.Before(closeAt) {
			t.Fatalf("closed %s before exp - margin", closeAt.Sub(now))
		}
		waitFor(t, "the subscription to end with the connection", func() bool { return e.bridge.Stats().UpstreamStreams == 0 })
		// A token expiring within the margin is refused outright.
		ws, resp := handshake(t, e.url, "header", k.hs256(t, claims("ann", jwt.MapClaims{"exp": time.Now().Add(30 * time.Minute).Unix()})), nil)
		wantRefused(t, ws, resp, http.StatusUnauthorized, "token within the margin")
	})
}
