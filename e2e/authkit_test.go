package e2e_test

// Helpers of the authentication and hardening tests: a backend that records what reaches
// it, token minting, and handshakes that may be refused.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/bridge/jwtauth"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

// spy records the calls that reach the backend and can fail them.
type spy struct {
	mu    sync.Mutex
	calls []spyCall
	// reject, if set, may fail a call before its handler runs.
	reject func(method string, md metadata.MD) error
}

type spyCall struct {
	method string
	md     metadata.MD
}

func (s *spy) record(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	s.calls = append(s.calls, spyCall{method: method, md: md.Copy()})
	reject := s.reject
	s.mu.Unlock()
	if reject != nil {
		return reject(method, md)
	}
	return nil
}

func (s *spy) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.record(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *spy) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.record(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}

// resourceCalls returns the calls of the polls services (not reflection or health).
func (s *spy) resourceCalls() []spyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []spyCall
	for _, c := range s.calls {
		if strings.HasPrefix(c.method, "/polls.v1.") {
			out = append(out, c)
		}
	}
	return out
}

// all returns every call so far.
func (s *spy) all() []spyCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spyCall(nil), s.calls...)
}

// last returns the last call of method, failing the test if there is none.
func (s *spy) last(t *testing.T, method string) spyCall {
	t.Helper()
	calls := s.all()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].method == method {
			return calls[i]
		}
	}
	t.Fatalf("the backend never saw %s", method)
	return spyCall{}
}

// startSpyBackend starts the example backend with the spy's interceptors; lis, if not nil,
// is its listener (a TLS one, for instance).
func startSpyBackend(t *testing.T, lis net.Listener) (*backend, *spy) {
	t.Helper()
	sp := &spy{}
	b := &backend{t: t, db: filepath.Join(t.TempDir(), "polls.db")}
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := polls.Start(context.Background(), polls.Config{
		GRPCListener: lis, DBPath: b.db, Logger: quiet,
		UnaryInterceptor: sp.unary, StreamInterceptor: sp.stream,
	})
	if err != nil {
		t.Fatalf("start backend: %v", err)
	}
	b.srv, b.addr = srv, lis.Addr().String()
	t.Cleanup(b.stop)
	return b, sp
}

// newSpyEnv is a bridge in front of a spied backend.
func newSpyEnv(t *testing.T, opts ...bridge.Option) (*env, *spy) {
	t.Helper()
	b, sp := startSpyBackend(t, nil)
	return newEnvFor(t, b, opts...), sp
}

// keys signs test tokens.
type keys struct {
	secret []byte
	rsa    *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
}

var (
	testKeysOnce sync.Once
	testKeys     *keys
	otherKeys    *keys // the wrong keys
)

func signingKeys(t *testing.T) (*keys, *keys) {
	t.Helper()
	testKeysOnce.Do(func() {
		gen := func(secret string) *keys {
			r, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				panic(err)
			}
			return &keys{secret: []byte(secret), rsa: r, ec: e}
		}
		testKeys, otherKeys = gen("test-secret-of-at-least-32-bytes!!"), gen("another-secret-of-32-bytes-or-more")
	})
	return testKeys, otherKeys
}

// jwtConfig is a JWT configuration accepting tokens of k.
func (k *keys) jwtConfig() jwtauth.Config {
	return jwtauth.Config{
		Secret: k.secret,
		Keys:   []jwtauth.Key{{ID: "rsa1", Key: &k.rsa.PublicKey}, {ID: "ec1", Key: &k.ec.PublicKey}},
	}
}

// withJWT authenticates with package jwtauth configured by cfg.
func withJWT(t *testing.T, cfg jwtauth.Config) bridge.Option {
	t.Helper()
	a, err := jwtauth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return bridge.WithAuthenticator(a)
}

// claims are the default claims of a test token, with extra merged in.
func claims(sub string, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// hs256 signs claims with k's secret.
func (k *keys) hs256(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k *keys) rs256(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "rsa1"
	s, err := tok.SignedString(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (k *keys) es256(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "ec1"
	s, err := tok.SignedString(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenWays are the ways a client can send a token at the handshake.
var tokenWays = []string{"header", "query", "cookie", "subprotocol"}

const tokenCookie = "bridge_token"

// handshake makes a WebSocket handshake sending tok the given way (any way when tok is
// empty: none), with extra headers. It returns the connection (nil if refused) and the
// HTTP response.
func handshake(t *testing.T, wsURL, way, tok string, extra http.Header) (*websocket.Conn, *http.Response) {
	t.Helper()
	h := http.Header{}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"channels"}}
	for k, v := range extra {
		if http.CanonicalHeaderKey(k) == "Sec-Websocket-Protocol" {
			// The dialer writes this header itself, from Subprotocols.
			d.Subprotocols = nil
			for _, line := range v {
				for _, p := range strings.Split(line, ",") {
					d.Subprotocols = append(d.Subprotocols, strings.TrimSpace(p))
				}
			}
			continue
		}
		h[k] = v
	}
	if tok != "" {
		switch way {
		case "header":
			h.Set("Authorization", "Bearer "+tok)
		case "query":
			wsURL += "?token=" + url.QueryEscape(tok)
		case "cookie":
			h.Add("Cookie", tokenCookie+"="+tok)
		case "subprotocol":
			if extra.Get("Sec-Websocket-Protocol") != "" {
				d.Subprotocols = append([]string{"bearer." + tok}, d.Subprotocols...)
			} else {
				d.Subprotocols = []string{"bearer." + tok, "channels"}
			}
		default:
			t.Fatalf("unknown way %q", way)
		}
	}
	ws, resp, err := d.Dial(wsURL, h)
	if err != nil && resp == nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return ws, resp
}

// wrap makes a test client of an established connection.
func wrap(t *testing.T, ws *websocket.Conn) *client {
	c := &client{t: t, ws: ws, frames: make(chan frame, 4096), done: make(chan struct{})}
	go c.read()
	t.Cleanup(c.close)
	return c
}

// dialAs dials with tok in the Authorization header ("" for anonymous) and extra headers.
func (e *env) dialAs(tok string, extra http.Header) *client {
	e.t.Helper()
	ws, resp := handshake(e.t, e.url, "header", tok, extra)
	if ws == nil {
		e.t.Fatalf("handshake refused: HTTP %d", resp.StatusCode)
	}
	return wrap(e.t, ws)
}

// wantRefused fails unless the handshake was refused with status and not upgraded.
func wantRefused(t *testing.T, ws *websocket.Conn, resp *http.Response, status int, what string) {
	t.Helper()
	if ws != nil {
		ws.Close()
		t.Fatalf("%s: the handshake succeeded, want HTTP %d", what, status)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s: HTTP %d, want %d", what, resp.StatusCode, status)
	}
	if resp.Header.Get("Upgrade") != "" || resp.Header.Get("Sec-Websocket-Accept") != "" {
		t.Fatalf("%s: refused response carries upgrade headers %v", what, resp.Header)
	}
}
