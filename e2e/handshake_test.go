package e2e_test

// Where a token comes from, JWT leeway, and the log of refused handshakes (issue 9 items 3,
// 4 and 10; issue 14's docs/security.md promises).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsbridge/wsbridge/bridge"
)

// subjectSeen dials with h (and the subprotocols of way/tok), lists, and returns the subject
// the backend saw ("" for anonymous).
func subjectSeen(t *testing.T, e *env, sp *spy, way, tok string, h http.Header) string {
	t.Helper()
	ws, resp := handshake(t, e.url, way, tok, h)
	if ws == nil {
		t.Fatalf("%s %v: handshake refused: HTTP %d", way, h, resp.StatusCode)
	}
	c := wrap(t, ws)
	defer c.close()
	wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
	got := sp.last(t, "/polls.v1.QuestionService/List").md.Get(bridge.MDSubject)
	if len(got) == 0 {
		return ""
	}
	return got[0]
}

func TestCredentialSources(t *testing.T) {
	k, _ := signingKeys(t)
	ann := k.hs256(t, claims("ann", nil))
	bob := k.hs256(t, claims("bob", nil))
	basic := http.Header{"Authorization": {"Basic YTpi"}}

	t.Run("authentication off", func(t *testing.T) {
		e, sp := newSpyEnv(t, bridge.WithTokenCookie(tokenCookie))
		// No credential is looked at: a Basic header, an empty bearer. subprotocol, a
		// token that would not verify, two Bearer headers: all anonymous.
		for name, h := range map[string]http.Header{
			"basic":        basic,
			"bad bearer":   {"Authorization": {"Bearer not-a-jwt"}},
			"two bearers":  {"Authorization": {"Bearer a", "Bearer b"}},
			"empty bearer": {"Authorization": {"Bearer "}},
		} {
			if sub := subjectSeen(t, e, sp, "", "", h); sub != "" {
				t.Fatalf("%s: subject %q, want anonymous", name, sub)
			}
		}
		if sub := subjectSeen(t, e, sp, "subprotocol", "", http.Header{"Sec-Websocket-Protocol": {"bearer., channels"}}); sub != "" {
			t.Fatalf("empty bearer. subprotocol: subject %q", sub)
		}
		if sub := subjectSeen(t, e, sp, "query", ann, nil); sub != "" {
			t.Fatalf("query token without an authenticator: subject %q", sub)
		}
	})

	t.Run("jwt", func(t *testing.T) {
		e, sp := newSpyEnv(t, withJWT(t, k.jwtConfig()), bridge.WithTokenCookie(tokenCookie))
		// Another scheme is skipped and the other sources are read.
		for _, way := range []string{"query", "cookie", "subprotocol"} {
			if sub := subjectSeen(t, e, sp, way, ann, basic); sub != "ann" {
				t.Fatalf("Basic header + %s token: subject %q, want ann", way, sub)
			}
		}
		if sub := subjectSeen(t, e, sp, "", "", basic); sub != "" {
			t.Fatalf("Basic header alone: subject %q, want anonymous", sub)
		}
		// An empty bearer. subprotocol is not a credential either.
		if sub := subjectSeen(t, e, sp, "query", ann, http.Header{"Sec-Websocket-Protocol": {"bearer., channels"}}); sub != "ann" {
			t.Fatalf("empty bearer. + query token: subject %q, want ann", sub)
		}
		// The first source present wins: header, query, cookie, subprotocol.
		cookie := func(tok string) http.Header { return http.Header{"Cookie": {tokenCookie + "=" + tok}} }
		for _, tc := range []struct {
			name, way, tok string
			h              http.Header
			want           string
		}{
			{"header over query", "query", bob, http.Header{"Authorization": {"Bearer " + ann}}, "ann"},
			{"header over cookie", "header", ann, cookie(bob), "ann"},
			{"query over cookie", "query", ann, cookie(bob), "ann"},
			{"query over subprotocol", "query", ann, http.Header{"Sec-Websocket-Protocol": {"bearer." + bob + ", channels"}}, "ann"},
			{"cookie over subprotocol", "subprotocol", bob, cookie(ann), "ann"},
		} {
			if sub := subjectSeen(t, e, sp, tc.way, tc.tok, tc.h); sub != tc.want {
				t.Fatalf("%s: subject %q, want %s", tc.name, sub, tc.want)
			}
		}
		// The first source decides alone: a bad header token is not rescued by a good query one.
		ws, resp := handshake(t, e.url, "query", ann, http.Header{"Authorization": {"Bearer not-a-jwt"}})
		wantRefused(t, ws, resp, http.StatusUnauthorized, "bad header, good query")
		// Two Bearer headers are refused, with WWW-Authenticate like every 401.
		ws, resp = handshake(t, e.url, "", "", http.Header{"Authorization": {"Bearer " + ann, "Bearer " + ann}})
		wantRefused(t, ws, resp, http.StatusUnauthorized, "two Bearer headers")
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
		ws, resp = handshake(t, e.url, "header", "not-a-jwt", nil)
		wantRefused(t, ws, resp, http.StatusUnauthorized, "bad token")
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
	})
}

func TestJWTLeeway(t *testing.T) {
	k, _ := signingKeys(t)
	cfg := k.jwtConfig()
	cfg.Leeway = time.Minute
	e, _ := newSpyEnv(t, withJWT(t, cfg))
	// Expired 10 s ago, inside the leeway: accepted.
	c := e.dialAs(k.hs256(t, claims("ann", jwt.MapClaims{"exp": time.Now().Add(-10 * time.Second).Unix()})), nil)
	wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
	// Past exp + leeway: refused.
	ws, resp := handshake(t, e.url, "header", k.hs256(t, claims("ann", jwt.MapClaims{"exp": time.Now().Add(-2 * time.Minute).Unix()})), nil)
	wantRefused(t, ws, resp, http.StatusUnauthorized, "expired beyond the leeway")

	// The 4001 timer fires at exp + leeway, not at exp: exp is 58 s ago, so exp + leeway
	// is about 2 s ahead (exp is whole seconds: between 1 and 2 s).
	exp := time.Now().Add(-58 * time.Second).Truncate(time.Second)
	d := e.dialAs(k.hs256(t, claims("ann", jwt.MapClaims{"exp": exp.Unix()})), nil)
	wantStatus(t, d.do("questions", map[string]any{"action": "list"}), 200) // after exp, inside the leeway
	if code := d.closeCode(); code != bridge.CloseTokenExpired {
		t.Fatalf("close code %d, want 4001", code)
	}
	if now := time.Now(); now.Before(exp.Add(cfg.Leeway)) {
		t.Fatalf("closed %s before exp + leeway", exp.Add(cfg.Leeway).Sub(now))
	}
}

// logBuffer is a slog handler's output, safe for the bridge's goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) lines(match string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, match) {
			out = append(out, l)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countingAuth is an authenticator that counts its calls and accepts the token "good".
type countingAuth struct{ calls atomic.Int64 }

func (a *countingAuth) Authenticate(_ context.Context, tok string) (*bridge.Identity, error) {
	a.calls.Add(1)
	if tok != "good" {
		return nil, errors.New("unknown token " + tok) // quotes the token: the log must not
	}
	return &bridge.Identity{Subject: "ann"}, nil
}

func TestRefusalsLogged(t *testing.T) {
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	auth := &countingAuth{}
	e := newEnv(t, bridge.WithLogger(logger), bridge.WithAuthenticator(auth), bridge.WithMaxConnections(1))
	secret := "sekrit-token-value-42"

	// 401: the reason, the remote address, never the token.
	ws, resp := handshake(t, e.url, "header", secret, nil)
	wantRefused(t, ws, resp, http.StatusUnauthorized, "bad token")
	// 403: the origin.
	ws, resp = handshake(t, e.url, "header", secret, http.Header{"Origin": {"http://localhost:3000"}})
	wantRefused(t, ws, resp, http.StatusForbidden, "cross-origin")
	// 503: the connection limit.
	held := e.dialAs("good", nil)
	ws, resp = handshake(t, e.url, "header", secret, nil)
	wantRefused(t, ws, resp, http.StatusServiceUnavailable, "over the limit")
	held.close()

	want := map[string]*regexp.Regexp{
		"credentials": regexp.MustCompile(`level=INFO msg="handshake refused" refusal=credentials status=401 reason="unknown token <token>" remote=127\.0\.0\.1:\d+ origin=""`),
		"origin":      regexp.MustCompile(`level=INFO msg="handshake refused" refusal=origin status=403 reason="origin not allowed" remote=127\.0\.0\.1:\d+ origin=http://localhost:3000`),
		"connections": regexp.MustCompile(`level=INFO msg="handshake refused" refusal=connections status=503 reason="too many connections" remote=127\.0\.0\.1:\d+`),
	}
	for kind, re := range want {
		lines := logs.lines("refusal=" + kind)
		if len(lines) != 1 || !re.MatchString(lines[0]) {
			t.Fatalf("%s: want one line matching %s, got %q", kind, re, lines)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the token was logged:\n%s", logs)
	}
	// The origin and the limit were checked before any credential: one call, the 401's,
	// plus the held connection's.
	if n := auth.calls.Load(); n != 2 {
		t.Fatalf("the authenticator ran %d times, want 2", n)
	}

	// A flood costs a few lines: a burst, then about one a second, with the count of what
	// was left out.
	start := time.Now()
	const flood = 200
	for range flood {
		ws, resp := handshake(t, e.url, "header", secret, http.Header{"Origin": {"http://evil.test"}})
		wantRefused(t, ws, resp, http.StatusForbidden, "flood")
	}
	elapsed := time.Since(start)
	lines := logs.lines("refusal=origin")
	if max := 10 + int(elapsed/time.Second) + 1; len(lines) > max {
		t.Fatalf("%d lines for %d refusals in %s, want at most %d", len(lines), flood+1, elapsed, max)
	}
	// The next line after the bucket refills says how many were suppressed.
	var last string
	waitFor(t, "a line with the suppressed count", func() bool {
		ws, resp := handshake(t, e.url, "header", secret, http.Header{"Origin": {"http://evil.test"}})
		wantRefused(t, ws, resp, http.StatusForbidden, "after the flood")
		ls := logs.lines("refusal=origin")
		last = ls[len(ls)-1]
		return strings.Contains(last, "suppressed=")
	})
	if !regexp.MustCompile(`suppressed=\d+$`).MatchString(last) {
		t.Fatalf("line %q", last)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the token was logged")
	}
}

// TestTokenExpiryQueue: one timer serves every signed-in connection (bridge/expiry.go).
// Connections expiring in a different order from the one they came in each get their 4001,
// never before their token's exp; one that left early, from the middle of the queue, and
// one whose token lasts keep theirs working.
func TestTokenExpiryQueue(t *testing.T) {
	k, _ := signingKeys(t)
	cfg := k.jwtConfig()
	cfg.Leeway = time.Minute
	e, _ := newSpyEnv(t, withJWT(t, cfg))
	// Expiries are whole seconds: exp + leeway is 3 to 7 s ahead, time enough for the
	// handshakes on a loaded machine, and the order of arrival is not the order of expiry.
	base := time.Now().Add(-time.Minute + 3*time.Second).Truncate(time.Second)
	exps := []time.Time{base.Add(3 * time.Second), base.Add(time.Second), base.Add(4 * time.Second), base.Add(2 * time.Second)}
	var clients []*client
	for i, exp := range exps {
		c := e.dialAs(k.hs256(t, claims(fmt.Sprintf("user-%d", i), jwt.MapClaims{"exp": exp.Unix()})), nil)
		wantStatus(t, c.do("questions", map[string]any{"action": "list"}), 200)
		clients = append(clients, c)
	}
	lasting := e.dialAs(k.hs256(t, claims("lasting", jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})), nil)
	clients[2].close() // leaves the middle of the queue
	for _, i := range []int{1, 3, 0} {
		if code := clients[i].closeCode(); code != bridge.CloseTokenExpired {
			t.Fatalf("connection %d: close code %d, want 4001", i, code)
		}
		if now := time.Now(); now.Before(exps[i].Add(cfg.Leeway)) {
			t.Fatalf("connection %d closed %s before exp + leeway", i, exps[i].Add(cfg.Leeway).Sub(now))
		}
	}
	wantStatus(t, lasting.do("questions", map[string]any{"action": "list"}), 200)
}
