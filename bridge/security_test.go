package bridge_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/wsbridge/wsbridge/bridge"
)

func TestParsePermission(t *testing.T) {
	anon := (*bridge.Identity)(nil)
	ann := &bridge.Identity{Subject: "ann", Claims: map[string]any{
		"scope": "polls.read polls.write", "roles": []any{"editor"},
	}}
	bob := &bridge.Identity{Subject: "bob", Claims: map[string]any{"scp": []any{"polls.read"}, "roles": "admin staff"}}
	cases := []struct {
		text           string
		anon, ann, bob bool
	}{
		{"allow_any", true, true, true},
		{"is_authenticated", false, true, true},
		{"deny_all", false, false, false},
		{"scope:polls.write", false, true, false},
		{"scope:polls.read", false, true, true},
		{"role:admin", false, false, true},
		{"role:editor", false, true, false},
		{"  is_authenticated   scope:polls.read ", false, true, true},
		{"scope:polls.read role:admin", false, false, true},
	}
	for _, tc := range cases {
		p, err := bridge.ParsePermission(tc.text)
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		for _, who := range []struct {
			id   *bridge.Identity
			want bool
		}{{anon, tc.anon}, {ann, tc.ann}, {bob, tc.bob}} {
			if got := p.Allow(who.id, "s", "a", ""); got != who.want {
				t.Fatalf("%q for %v: %v, want %v", tc.text, who.id, got, who.want)
			}
		}
	}
	for _, bad := range []string{"", " ", "allowany", "scope:", "role:", "scope", "IS_AUTHENTICATED", "allow_any,is_authenticated"} {
		if _, err := bridge.ParsePermission(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestParseConfig(t *testing.T) {
	good := []string{
		`{}`,
		`{"permissions": {}}`,
		`{"permissions": {"default": "is_authenticated", "streams": {"a": {"actions": {"list": "allow_any"}}}}}`,
	}
	for _, g := range good {
		if _, err := bridge.ParseConfig([]byte(g)); err != nil {
			t.Fatalf("%s: %v", g, err)
		}
	}
	bad := map[string]string{
		`{"permission": {}}`:                                                        "permission",
		`{"permissions": {"default": "everyone"}}`:                                  "permissions.default",
		`{"permissions": {"streams": {"a": {"default": "x"}}}}`:                     "permissions.streams.a.default",
		`{"permissions": {"streams": {"a": {"actions": {"list": ""}}}}}`:            "permissions.streams.a.actions.list",
		`{"permissions": {"streams": {"a": {"action": {}}}}}`:                       "action",
		`{"permissions": {"default": "allow_any"}} {}`:                              "after",
		`{"permissions": {"streams": {"a": {"actions": {"list": ["allow_any"]}}}}}`: "permissions",
		`not json`: "configuration",
	}
	for text, want := range bad {
		_, err := bridge.ParseConfig([]byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error %v, want one mentioning %q", text, err, want)
		}
	}
	// A refused permission names its key.
	_, err := bridge.ParseConfig([]byte(`{"permissions": {"streams": {"a": {"actions": {"list": "everyone"}}}}}`))
	var ce *bridge.ConfigError
	if !errors.As(err, &ce) || ce.Key != "permissions.streams.a.actions.list" {
		t.Fatalf("error %v, want a *ConfigError naming permissions.streams.a.actions.list", err)
	}
	// The parsed file says what it sets.
	cfg, err := bridge.ParseConfig([]byte(`{"permissions": {"default": "is_authenticated", "streams": {"a": {"actions": {"list": "allow_any"}}}}, "int64_as_number": true}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Default != bridge.IsAuthenticated || cfg.Policy.Streams["a"].Actions["list"] != bridge.AllowAny || cfg.Int64AsNumber == nil || !*cfg.Int64AsNumber {
		t.Fatalf("parsed %+v", cfg)
	}
	if cfg, err := bridge.ParseConfig([]byte(`{}`)); err != nil || cfg.Int64AsNumber != nil || cfg.Policy.Default != nil {
		t.Fatalf("empty file: %+v %v", cfg, err)
	}
}

// TestInvalidOptionsRefused: every option's range is checked by New, and the refusal is an
// *OptionError naming the option (and the parameter at fault) with the exact reason.
func TestInvalidOptionsRefused(t *testing.T) {
	be := bridge.WithBackend(bridge.Backend{Target: "127.0.0.1:1"})
	two := bridge.WithBackend(bridge.Backend{Target: "127.0.0.1:2"})
	for _, tc := range []struct {
		name        string
		opts        []bridge.Option
		option, arg string
		want        string
	}{
		{"no backend", nil, "WithBackend", "", `at least one backend is required`},
		{"empty target", []bridge.Option{bridge.WithBackend(bridge.Backend{})}, "WithBackend", "", `a backend's target must not be empty`},
		{"descriptors, services unknown", []bridge.Option{be, two, bridge.WithDescriptors(new(protoregistry.Files))}, "WithBackend", "", `backend 127.0.0.1:1: with a descriptor set and several backends, each backend must list its services`},
		{"nil logger", []bridge.Option{be, bridge.WithLogger(nil)}, "WithLogger", "", `the logger must not be nil`},
		{"empty stream", []bridge.Option{be, bridge.WithStream("polls.v1.QuestionService", "")}, "WithStream", "", `service and stream must not be empty, got "polls.v1.QuestionService" and ""`},
		{"page size 0", []bridge.Option{be, bridge.WithPageSize(0, 10)}, "WithPageSize", "def", `the default page size must be at least 1, got 0`},
		{"max below default", []bridge.Option{be, bridge.WithPageSize(50, 10)}, "WithPageSize", "max", `the maximum page size 10 is below the default page size 50`},
		{"call timeout 0", []bridge.Option{be, bridge.WithCallTimeout(0)}, "WithCallTimeout", "", `must be positive, got 0s`},
		{"in flight 0", []bridge.Option{be, bridge.WithMaxInFlight(0)}, "WithMaxInFlight", "", `must be at least 1, got 0`},
		{"small queue", []bridge.Option{be, bridge.WithOutboundQueue(1023)}, "WithOutboundQueue", "", `must be at least 1024 bytes, got 1023`},
		{"write timeout 0", []bridge.Option{be, bridge.WithWriteTimeout(0)}, "WithWriteTimeout", "", `must be positive, got 0s`},
		{"small frames", []bridge.Option{be, bridge.WithMaxFrameSize(255)}, "WithMaxFrameSize", "", `must be at least 256 bytes, got 255`},
		{"negative subscriptions", []bridge.Option{be, bridge.WithMaxSubscriptions(-1)}, "WithMaxSubscriptions", "", `must not be negative, got -1`},
		{"discovery retry 0", []bridge.Option{be, bridge.WithDiscoveryRetry(0)}, "WithDiscoveryRetry", "", `must be positive, got 0s`},
		{"negative refresh", []bridge.Option{be, bridge.WithRefresh(-time.Second)}, "WithRefresh", "", `must not be negative, got -1s`},
		{"hop-by-hop header", []bridge.Option{be, bridge.WithForwardHeaders("Connection")}, "WithForwardHeaders", "", `header "connection" cannot be forwarded`},
		{"upgrade header", []bridge.Option{be, bridge.WithForwardHeaders("upgrade")}, "WithForwardHeaders", "", `header "upgrade" cannot be forwarded`},
		{"websocket header", []bridge.Option{be, bridge.WithForwardHeaders("Sec-WebSocket-Key")}, "WithForwardHeaders", "", `header "sec-websocket-key" cannot be forwarded`},
		{"credential header", []bridge.Option{be, bridge.WithForwardHeaders("Authorization")}, "WithForwardHeaders", "", `header "authorization" cannot be forwarded`},
		{"cookie header", []bridge.Option{be, bridge.WithForwardHeaders("cookie")}, "WithForwardHeaders", "", `header "cookie" cannot be forwarded`},
		{"reserved header", []bridge.Option{be, bridge.WithForwardHeaders("X-Bridge-Subject")}, "WithForwardHeaders", "", `header "x-bridge-subject" cannot be forwarded`},
		{"grpc header", []bridge.Option{be, bridge.WithForwardHeaders("grpc-timeout")}, "WithForwardHeaders", "", `header "grpc-timeout" cannot be forwarded`},
		{"binary header", []bridge.Option{be, bridge.WithForwardHeaders("x-trace-bin")}, "WithForwardHeaders", "", `header "x-trace-bin" cannot be forwarded`},
		{"invalid header", []bridge.Option{be, bridge.WithForwardHeaders("x y")}, "WithForwardHeaders", "", `header "x y" is not a valid header name`},
		{"invalid claim", []bridge.Option{be, bridge.WithForwardClaims("https://example.com/roles")}, "WithForwardClaims", "", `claim "https://example.com/roles": only letters, digits, '-', '_' and '.' can be forwarded`},
		{"origin path", []bridge.Option{be, bridge.WithAllowedOrigins("https://a.test/path")}, "WithAllowedOrigins", "", `allowed origin "https://a.test/path": want https://host[:port], host[:port], *.domain, null or *`},
		{"origin no host", []bridge.Option{be, bridge.WithAllowedOrigins("https://")}, "WithAllowedOrigins", "", `allowed origin "https://": want https://host[:port], host[:port], *.domain, null or *`},
		{"bare wildcard", []bridge.Option{be, bridge.WithAllowedOrigins("*.")}, "WithAllowedOrigins", "", `allowed origin "*.": want https://host[:port], host[:port], *.domain, null or *`},
		{"negative rate", []bridge.Option{be, bridge.WithRateLimit(-1, 1)}, "WithRateLimit", "perSecond", `must not be negative, got -1`},
		{"no burst", []bridge.Option{be, bridge.WithRateLimit(1, 0)}, "WithRateLimit", "burst", `must be at least 1 when the rate is limited, got 0`},
		{"negative conns", []bridge.Option{be, bridge.WithMaxConnections(-1)}, "WithMaxConnections", "", `must not be negative, got -1`},
		{"idle below ping", []bridge.Option{be, bridge.WithKeepAlive(time.Second, time.Second)}, "WithKeepAlive", "idle", `the idle timeout 1s must be longer than the ping interval 1s`},
		{"pings, never idle", []bridge.Option{be, bridge.WithKeepAlive(time.Second, 0)}, "WithKeepAlive", "idle", `the idle timeout 0s must be longer than the ping interval 1s`},
		{"negative ping", []bridge.Option{be, bridge.WithKeepAlive(-time.Second, 0)}, "WithKeepAlive", "interval", `must not be negative, got -1s`},
		{"negative idle", []bridge.Option{be, bridge.WithKeepAlive(0, -time.Second)}, "WithKeepAlive", "idle", `must not be negative, got -1s`},
		{"nil permission", []bridge.Option{be, bridge.WithPermissions(bridge.AllowAny, nil)}, "WithPermissions", "", `a permission must not be nil`},
		{"negative margin", []bridge.Option{be, bridge.WithTokenExpiryMargin(-time.Second)}, "WithTokenExpiryMargin", "", `must not be negative, got -1s`},
		{"negative handshake", []bridge.Option{be, bridge.WithHandshakeTimeout(-time.Second)}, "WithHandshakeTimeout", "", `must be positive, got -1s`},
		// 0 would leave the handshake unbounded; the command always refused it.
		{"handshake timeout 0", []bridge.Option{be, bridge.WithHandshakeTimeout(0)}, "WithHandshakeTimeout", "", `must be positive, got 0s`},
	} {
		srv, err := bridge.New(tc.opts...)
		if err == nil {
			srv.Shutdown(context.Background())
			t.Fatalf("%s: accepted", tc.name)
		}
		var oe *bridge.OptionError
		if !errors.As(err, &oe) {
			t.Fatalf("%s: %T %v, want an *OptionError", tc.name, err, err)
		}
		if oe.Option != tc.option || oe.Arg != tc.arg || oe.Err.Error() != tc.want {
			t.Fatalf("%s: %s(%s) %q, want %s(%s) %q", tc.name, oe.Option, oe.Arg, oe.Err, tc.option, tc.arg, tc.want)
		}
		wantText := tc.option + ": " + tc.want
		if tc.arg != "" {
			wantText = tc.option + "(" + tc.arg + "): " + tc.want
		}
		if err.Error() != wantText {
			t.Fatalf("%s: error text %q, want %q", tc.name, err, wantText)
		}
	}
	// The edges of the ranges are accepted.
	srv, err := bridge.New(be, bridge.WithForwardHeaders("X-Request-Id", "accept-language"), bridge.WithForwardClaims("email", "tenant_id"),
		bridge.WithPageSize(1, 1), bridge.WithOutboundQueue(1024), bridge.WithMaxFrameSize(256), bridge.WithMaxSubscriptions(0),
		bridge.WithRateLimit(0, 0), bridge.WithMaxConnections(0), bridge.WithKeepAlive(0, 0), bridge.WithRefresh(0),
		bridge.WithHandshakeTimeout(time.Nanosecond), bridge.WithTokenExpiryMargin(0))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown(context.Background())
}

// TestOriginRefusedBeforeUpgrade uses the handler directly: a cross-origin handshake gets 403
// and no upgrade, before any credential is looked at.
func TestOriginRefusedBeforeUpgrade(t *testing.T) {
	srv, err := bridge.New(bridge.WithBackend(bridge.Backend{Target: "127.0.0.1:1"}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	req := httptest.NewRequest("GET", "http://bridge.test/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", "https://evil.test")
	req.Header.Set("Authorization", "Bearer garbage")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || rec.Header().Get("Upgrade") != "" {
		t.Fatalf("HTTP %d %v, want 403 without upgrade", rec.Code, rec.Header())
	}
	// Two Origin headers are refused too.
	req.Header["Origin"] = []string{"http://bridge.test", "https://evil.test"}
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("two origins: HTTP %d, want 403", rec.Code)
	}
}

func TestIdentityClaims(t *testing.T) {
	var anon *bridge.Identity
	if anon.Authenticated() || anon.HasScope("x") || anon.HasRole("x") {
		t.Fatal("anonymous has something")
	}
	id := &bridge.Identity{Subject: "s", Claims: map[string]any{"scp": "a b", "scope": 5, "roles": []any{"r", 1}}}
	if !id.Authenticated() || !id.HasScope("b") || id.HasScope("5") || !id.HasRole("r") || id.HasRole("1") {
		t.Fatalf("claims misread: %+v", id)
	}
}
