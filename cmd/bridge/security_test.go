package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/examples/backend/polls"
)

func TestSecurityFlagsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.json")
	os.WriteFile(badConfig, []byte(`{"permissions":{"default":"allow_everyone"}}`), 0o600)
	typo := filepath.Join(dir, "typo.json")
	os.WriteFile(typo, []byte(`{"permission":{}}`), 0o600)
	notKeys := filepath.Join(dir, "keys.pem")
	os.WriteFile(notKeys, []byte("hello"), 0o600)
	base := []string{"-backend", "127.0.0.1:1", "-listen", "127.0.0.1:0"}
	cases := []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{[]string{"-rate-limit", "-1"}, nil, "-rate-limit"},
		{[]string{"-rate-burst", "0"}, nil, "-rate-burst"},
		{[]string{"-max-connections", "-1"}, nil, "-max-connections"},
		{[]string{"-handshake-timeout", "0s"}, nil, "-handshake-timeout"},
		{[]string{"-ping-interval", "10s", "-idle-timeout", "5s"}, nil, "-idle-timeout"},
		{[]string{"-tls-cert", "c.pem"}, nil, "-tls-cert"},
		{[]string{"-backend-cert", "c.pem", "-backend-key", "k.pem"}, nil, "-backend-cert"},
		{nil, map[string]string{"BRIDGE_JWT_SECRET": "short"}, "-jwt-secret"},
		{[]string{"-jwt-secret", strings.Repeat("s", 32), "-jwt-leeway", "-1s"}, nil, "-jwt-leeway"},
		{[]string{"-jwt-keys", "http://127.0.0.1:1/jwks.json"}, nil, "-jwt-keys"},
		{[]string{"-token-expiry-margin", "-1s"}, nil, "-token-expiry-margin"},
		{[]string{"-ping-interval", "-1s"}, nil, "-ping-interval"},
		{[]string{"-idle-timeout", "-1s"}, nil, "-idle-timeout"},
		{[]string{"-ping-interval", "10s", "-idle-timeout", "0s"}, nil, "-idle-timeout"},
		{[]string{"-jwt-issuer", "x"}, nil, "-jwt-issuer"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, nil, "-config"},
		{[]string{"-config", badConfig}, nil, "-config"},
		{[]string{"-config", typo}, nil, "-config"},
		{[]string{"-jwt-keys", notKeys}, nil, "-jwt-keys"},
		{[]string{"-backend-ca", notKeys}, nil, "-backend-ca"},
		{[]string{"-tls-cert", notKeys, "-tls-key", notKeys}, nil, "-tls-cert"},
		{[]string{"-forward-headers", "Connection"}, nil, "-forward-headers"},
		{[]string{"-forward-headers", "x-bridge-subject"}, nil, "-forward-headers"},
		{[]string{"-forward-claims", "https://example.com/roles"}, nil, "-forward-claims"},
		{nil, map[string]string{"BRIDGE_ALLOWED_ORIGINS": "https://"}, "-allowed-origins"},
	}
	for _, tc := range cases {
		wantFlagError(t, append(append([]string(nil), base...), tc.args...), tc.env, tc.flag)
	}
}

func TestSecurityEnvironment(t *testing.T) {
	secret := strings.Repeat("s", 32)
	t.Setenv("BRIDGE_BACKENDS", "a:1")
	t.Setenv("BRIDGE_JWT_SECRET", secret)
	t.Setenv("BRIDGE_CONFIG", "../../examples/demo-auth.json")
	t.Setenv("BRIDGE_ALLOWED_ORIGINS", "https://a.test,*.b.test")
	t.Setenv("BRIDGE_RATE_LIMIT", "2.5")
	t.Setenv("BRIDGE_FORWARD_TOKEN", "true")
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.sec
	if s.jwtSecret != secret || s.configFile == "" || len(s.allowedOrigins) != 2 || s.rateLimit != 2.5 || !s.forwardToken {
		t.Fatalf("environment not applied: %+v", s)
	}
	if _, err := c.options(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("options: %v", err)
	}
}

// TestJWKSURLFlag: -jwt-keys takes the URL of a JWKS as well as a file.
func TestJWKSURLFlag(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := k.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","kid":"k","crv":"P-384","x":%q,"y":%q}]}`, b64(pt[1:49]), b64(pt[49:]))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, jwks) }))
	defer srv.Close()
	c, err := parseFlags([]string{"-backend", "a:1", "-jwt-keys", srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth, err := c.sec.jwtAuthenticator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES384, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := auth.Authenticate(ctx, tok); err != nil || id.Subject != "ann" {
		t.Fatalf("token of the JWKS URL's key: %+v %v", id, err)
	}
}

// TestHandshakeTimeout: a client that never finishes its request headers is cut off.
func TestHandshakeTimeout(t *testing.T) {
	c, err := parseFlags([]string{"-backend", "a:1", "-handshake-timeout", "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := c.sec.httpServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serveHTTP(srv, ln) }()
	defer func() { srv.Close(); <-done }()

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n") // never ends
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(slow); err != nil {
		t.Fatalf("a slow handshake was not cut off: %v", err)
	}

	fast, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	io.WriteString(fast, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(fast), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a prompt request: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestTLSFlags serves wss with -tls-cert/-tls-key in front of a backend reached with mutual
// TLS through -backend-ca/-backend-cert/-backend-key.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	pki := writePKI(t, dir)

	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pki.server}, NextProtos: []string{"h2"},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := polls.Start(context.Background(), polls.Config{
		GRPCListener: lis, DBPath: filepath.Join(dir, "polls.db"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Stop()

	f := func(name string) string { return filepath.Join(dir, name) }
	c, err := parseFlags([]string{
		"-backend", lis.Addr().String(), "-listen", "127.0.0.1:0",
		"-tls-cert", f("server.pem"), "-tls-key", f("server-key.pem"),
		"-backend-ca", f("ca.pem"), "-backend-cert", f("client.pem"), "-backend-key", f("client-key.pem"),
	})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.options(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(append(opts, bridge.WithDiscoveryRetry(100*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	httpSrv, err := c.sec.httpServer(br)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- serveHTTP(httpSrv, ln) }()
	defer func() {
		httpSrv.Close()
		<-served
		br.Shutdown(context.Background())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := br.WaitReady(ctx); err != nil {
		t.Fatalf("bridge did not reach the backend over mutual TLS: %v", err)
	}
	if wsScheme(httpSrv) != "wss" {
		t.Fatal("not serving TLS")
	}
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pki.pool}, HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("wss://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte(`{"stream":"questions","payload":{"action":"list","request_id":1}}`))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(msg), `"response_status":200`) {
		t.Fatalf("list over wss: %s %v", msg, err)
	}
}

type pki struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

// writePKI makes a CA, a server certificate for 127.0.0.1 and a client certificate, and
// writes them as PEM files in dir.
func writePKI(t *testing.T, dir string) *pki {
	t.Helper()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "PRIVATE KEY", kder)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	p.server = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.client = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}
