package jwtauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/wsbridge/wsbridge/bridge/jwtauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWTAuthenticator(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	r1, _ := rsa.GenerateKey(rand.Reader, 2048)
	r2, _ := rsa.GenerateKey(rand.Reader, 2048)
	e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	auth, err := jwtauth.New(context.Background(), jwtauth.Config{
		Secret: secret,
		Keys:   []jwtauth.Key{{ID: "r1", Key: &r1.PublicKey}, {ID: "r2", Key: &r2.PublicKey}, {Key: &e1.PublicKey}},
		Issuer: "iss", Audience: "aud", Leeway: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	c := func(extra ...any) jwt.MapClaims {
		m := jwt.MapClaims{"sub": "ann", "iss": "iss", "aud": []string{"x", "aud"}, "exp": exp.Unix(), "scope": "a b"}
		for i := 0; i < len(extra); i += 2 {
			if extra[i+1] == nil {
				delete(m, extra[i].(string))
			} else {
				m[extra[i].(string)] = extra[i+1]
			}
		}
		return m
	}
	ok := map[string]string{
		"HS256":             sign(t, jwt.SigningMethodHS256, secret, "", c()),
		"RS256 kid r1":      sign(t, jwt.SigningMethodRS256, r1, "r1", c()),
		"RS256 kid r2":      sign(t, jwt.SigningMethodRS256, r2, "r2", c()),
		"RS256 no kid":      sign(t, jwt.SigningMethodRS256, r2, "", c()),
		"ES256 unknown kid": sign(t, jwt.SigningMethodES256, e1, "whatever", c()),
		"exp within leeway": sign(t, jwt.SigningMethodHS256, secret, "", c("exp", time.Now().Unix())),
	}
	for name, tok := range ok {
		id, err := auth.Authenticate(context.Background(), tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id.Subject != "ann" || !id.HasScope("b") || id.HasScope("c") || id.Claims["iss"] != "iss" {
			t.Fatalf("%s: identity %+v", name, id)
		}
	}
	id, _ := auth.Authenticate(context.Background(), ok["HS256"])
	// Expires is when the bridge stops accepting the token: exp plus the leeway.
	if want := exp.Add(time.Second); !id.Expires.Equal(want) {
		t.Fatalf("expires %v, want %v (exp + leeway)", id.Expires, want)
	}

	pub, _ := x509.MarshalPKIXPublicKey(&r1.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	bad := map[string]string{
		"alg none":            none,
		"alg none, signature": strings.TrimSuffix(none, ".") + ".x",
		"HS256 with RSA key":  sign(t, jwt.SigningMethodHS256, pubPEM, "r1", c()),
		"HS256 with RSA DER":  sign(t, jwt.SigningMethodHS256, pub, "", c()),
		"HS512":               sign(t, jwt.SigningMethodHS512, secret, "", c()),
		"RS512":               sign(t, jwt.SigningMethodRS512, r1, "r1", c()),
		"RS256 wrong kid":     sign(t, jwt.SigningMethodRS256, r1, "r2", c()),
		"expired":             sign(t, jwt.SigningMethodHS256, secret, "", c("exp", time.Now().Add(-time.Minute).Unix())),
		"no exp":              sign(t, jwt.SigningMethodHS256, secret, "", c("exp", nil)),
		"nbf future":          sign(t, jwt.SigningMethodHS256, secret, "", c("nbf", time.Now().Add(time.Minute).Unix())),
		"iat future":          sign(t, jwt.SigningMethodHS256, secret, "", c("iat", time.Now().Add(time.Minute).Unix())),
		"wrong iss":           sign(t, jwt.SigningMethodHS256, secret, "", c("iss", "other")),
		"no iss":              sign(t, jwt.SigningMethodHS256, secret, "", c("iss", nil)),
		"wrong aud":           sign(t, jwt.SigningMethodHS256, secret, "", c("aud", "other")),
		"sub not a string":    sign(t, jwt.SigningMethodHS256, secret, "", c("sub", 5)),
		"exp not a number":    sign(t, jwt.SigningMethodHS256, secret, "", c("exp", "tomorrow")),
		"garbage":             "a.b.c",
		"empty":               "",
		"tampered signature":  sign(t, jwt.SigningMethodRS256, r1, "", c()) + "tampered",
	}
	for name, tok := range bad {
		if id, err := auth.Authenticate(context.Background(), tok); err == nil {
			t.Fatalf("%s: accepted as %+v", name, id)
		}
	}
	// A crafted header claiming ES256 over an RSA signature is refused.
	parts := strings.Split(sign(t, jwt.SigningMethodRS256, r1, "r1", c()), ".")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"JWT","kid":"r1"}`))
	if _, err := auth.Authenticate(context.Background(), hdr+"."+parts[1]+"."+parts[2]); err == nil {
		t.Fatal("algorithm swapped in the header accepted")
	}

	lax, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: secret, AllowNoExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err = lax.Authenticate(context.Background(), sign(t, jwt.SigningMethodHS256, secret, "", jwt.MapClaims{"sub": "x"}))
	if err != nil || !id.Expires.IsZero() {
		t.Fatalf("AllowNoExpiry: %v %+v", err, id)
	}
}

func TestParseKeys(t *testing.T) {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkix1, _ := x509.MarshalPKIXPublicKey(&r.PublicKey)
	pkix2, _ := x509.MarshalPKIXPublicKey(&e.PublicKey)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &e.PublicKey, e)
	if err != nil {
		t.Fatal(err)
	}
	var pemFile []byte
	for _, b := range []*pem.Block{
		{Type: "PUBLIC KEY", Bytes: pkix1},
		{Type: "PUBLIC KEY", Bytes: pkix2},
		{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&r.PublicKey)},
		{Type: "CERTIFICATE", Bytes: certDER},
	} {
		pemFile = append(pemFile, pem.EncodeToMemory(b)...)
	}
	keys, err := jwtauth.ParseKeys(pemFile)
	if err != nil || len(keys) != 4 {
		t.Fatalf("PEM: %d keys, %v", len(keys), err)
	}

	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	pt, _ := e.PublicKey.Bytes() // 0x04 || X || Y
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r", "use": "sig", "n": b64(r.N.Bytes()), "e": b64(big.NewInt(int64(r.E)).Bytes())},
		{"kty": "EC", "kid": "e", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])},
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(r.N.Bytes()), "e": "AQAB"},
	}})
	keys, err = jwtauth.ParseKeys(jwks)
	if err != nil || len(keys) != 2 || keys[0].ID != "r" || keys[1].ID != "e" {
		t.Fatalf("JWKS: %+v, %v", keys, err)
	}
	auth, err := jwtauth.New(context.Background(), jwtauth.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}
	for _, tok := range []string{sign(t, jwt.SigningMethodRS256, r, "r", claims), sign(t, jwt.SigningMethodES256, e, "e", claims)} {
		if _, err := auth.Authenticate(context.Background(), tok); err != nil {
			t.Fatalf("token verified with JWKS keys: %v", err)
		}
	}
	// The key types do not cross: an RSA-signed token named after the EC key fails.
	if _, err := auth.Authenticate(context.Background(), sign(t, jwt.SigningMethodRS256, r, "e", claims)); err == nil {
		t.Fatal("kid of an EC key accepted an RSA signature")
	}

	priv, _ := x509.MarshalPKCS8PrivateKey(r)
	badPoint := append([]byte(nil), pt...)
	badPoint[40] ^= 0xff
	for name, data := range map[string][]byte{
		"private PEM":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		"garbage":      []byte("hello"),
		"empty JWKS":   []byte(`{"keys": []}`),
		"private JWK":  []byte(`{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}]}`),
		"bad curve":    []byte(`{"keys": [{"kty": "EC", "crv": "P-192", "x": "AA", "y": "AA"}]}`),
		"off curve":    []byte(fmt.Sprintf(`{"keys": [{"kty": "EC", "crv": "P-256", "x": %q, "y": %q}]}`, b64(badPoint[1:33]), b64(badPoint[33:]))),
		"oct key":      []byte(`{"keys": [{"kty": "oct", "k": "AAAA"}]}`),
		"bad exponent": []byte(`{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQ"}]}`),
	} {
		if keys, err := jwtauth.ParseKeys(data); err == nil {
			t.Fatalf("%s: accepted %+v", name, keys)
		}
	}
}

// TestConfigRefused: New refuses an unusable Config with a *ConfigError naming the field.
func TestConfigRefused(t *testing.T) {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	secret := make([]byte, 32)
	for _, tc := range []struct {
		name  string
		cfg   jwtauth.Config
		field string
		want  string
	}{
		{"short secret", jwtauth.Config{Secret: []byte("short")}, "Secret", `must be at least 32 bytes, got 5`},
		{"no key", jwtauth.Config{}, "", `no secret, no public key and no JWKS URL`},
		{"negative leeway", jwtauth.Config{Secret: secret, Leeway: -time.Second}, "Leeway", `must not be negative, got -1s`},
		{"negative refresh", jwtauth.Config{JWKSURL: closed.URL, JWKSRefresh: -time.Second}, "JWKSRefresh", `must not be negative, got -1s`},
		{"alg none", jwtauth.Config{Secret: secret, Algorithms: []string{"none"}}, "Algorithms", `"none" is not accepted`},
		{"unknown alg", jwtauth.Config{Secret: secret, Algorithms: []string{"XS256"}}, "Algorithms", `"XS256" is not accepted`},
		{"HMAC without secret", jwtauth.Config{Keys: []jwtauth.Key{{Key: &r.PublicKey}}, Algorithms: []string{"HS256"}}, "Algorithms", `HS256 needs a secret`},
		{"unsupported key", jwtauth.Config{Keys: []jwtauth.Key{{Key: "x"}}}, "Keys", `key "": unsupported key type string`},
		{"unsupported curve", jwtauth.Config{Keys: []jwtauth.Key{{ID: "k", Key: &p224.PublicKey}}}, "Keys", `key "k": unsupported curve P-224`},
		{"alg of another curve", jwtauth.Config{Keys: []jwtauth.Key{{ID: "k", Algorithm: "ES256", Key: &p384.PublicKey}}}, "Keys", `key "k": algorithm "ES256" does not fit a P-384 key`},
		{"alg of another type", jwtauth.Config{Keys: []jwtauth.Key{{ID: "k", Algorithm: "ES256", Key: &r.PublicKey}}}, "Keys", `key "k": algorithm "ES256" does not fit an RSA key`},
	} {
		a, err := jwtauth.New(context.Background(), tc.cfg)
		var ce *jwtauth.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: %v %v, want a *ConfigError", tc.name, a, err)
		}
		if ce.Field != tc.field || ce.Err.Error() != tc.want {
			t.Fatalf("%s: %s %q, want %s %q", tc.name, ce.Field, ce.Err, tc.field, tc.want)
		}
	}
	// A JWKS URL that cannot be read is refused at once, not at the first handshake.
	_, err := jwtauth.New(context.Background(), jwtauth.Config{JWKSURL: closed.URL})
	var ce *jwtauth.ConfigError
	if !errors.As(err, &ce) || ce.Field != "JWKSURL" {
		t.Fatalf("unreachable JWKS URL: %v", err)
	}
}

// TestECDSACurvesPickTheAlgorithm: a P-384 key verifies ES384 tokens and a P-521 key ES512
// tokens, from PEM and from a JWKS; each refuses the other curves' algorithms. Every EC key
// used to default to ES256, so ES384 and ES512 tokens were always refused.
func TestECDSACurvesPickTheAlgorithm(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	var pemFile []byte
	for _, k := range []*ecdsa.PrivateKey{p384, p521} {
		der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
		pemFile = append(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})...)
	}
	fromPEM, err := jwtauth.ParseKeys(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	fromJWKS, err := jwtauth.ParseKeys(jwksOf(t, map[string]*ecdsa.PrivateKey{"k384": p384, "k521": p521}))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}
	for name, keys := range map[string][]jwtauth.Key{"PEM": fromPEM, "JWKS": fromJWKS} {
		auth, err := jwtauth.New(context.Background(), jwtauth.Config{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		for _, ok := range []string{
			sign(t, jwt.SigningMethodES384, p384, "k384", claims),
			sign(t, jwt.SigningMethodES384, p384, "", claims),
			sign(t, jwt.SigningMethodES512, p521, "k521", claims),
			sign(t, jwt.SigningMethodES512, p521, "", claims),
		} {
			if _, err := auth.Authenticate(context.Background(), ok); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for what, bad := range map[string]string{
			"ES256 without a P-256 key": sign(t, jwt.SigningMethodES256, p256, "", claims),
			"ES512 named after P-384":   sign(t, jwt.SigningMethodES512, p521, "k384", claims) + "",
			"ES384 by an unknown key":   sign(t, jwt.SigningMethodES384, mustEC(t, elliptic.P384()), "", claims),
		} {
			if name == "PEM" && what == "ES512 named after P-384" {
				continue // PEM keys have no ID: the kid falls back to them all
			}
			if _, err := auth.Authenticate(context.Background(), bad); err == nil {
				t.Fatalf("%s: %s accepted", name, what)
			}
		}
	}
}

func mustEC(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwksOf is the JWKS document of the public halves of keys.
func jwksOf(t *testing.T, keys map[string]*ecdsa.PrivateKey) []byte {
	t.Helper()
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	var set []map[string]any
	for kid, k := range keys {
		pt, err := k.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		n := (len(pt) - 1) / 2
		set = append(set, map[string]any{"kty": "EC", "kid": kid, "use": "sig", "crv": k.Curve.Params().Name, "x": b64(pt[1 : 1+n]), "y": b64(pt[1+n:])})
	}
	out, err := json.Marshal(map[string]any{"keys": set})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jwksServer serves a JWKS document that the test can replace.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	doc  []byte
	hits int
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.Write(s.doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

func (s *jwksServer) set(doc []byte) {
	s.mu.Lock()
	s.doc = doc
	s.mu.Unlock()
}

// TestJWKSURLRotation: the keys of a JWKS URL verify tokens; a token naming a key ID the
// authenticator does not hold yet fetches the JWKS again, so a rotated key works at once.
func TestJWKSURLRotation(t *testing.T) {
	k1, k2 := mustEC(t, elliptic.P256()), mustEC(t, elliptic.P384())
	srv := newJWKSServer(t, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the background refresh; goleak checks it does
	auth, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}
	for _, tok := range []string{sign(t, jwt.SigningMethodES256, k1, "k1", claims), sign(t, jwt.SigningMethodES256, k1, "", claims)} {
		if _, err := auth.Authenticate(context.Background(), tok); err != nil {
			t.Fatalf("key of the JWKS URL: %v", err)
		}
	}
	// k2 appears in the JWKS after New: the first token naming it fetches the JWKS again.
	srv.set(jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2}))
	if _, err := auth.Authenticate(context.Background(), sign(t, jwt.SigningMethodES384, k2, "k2", claims)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// Another unknown kid within the minute fails at once, without fetching again.
	hits := srv.count()
	k3 := mustEC(t, elliptic.P256())
	if _, err := auth.Authenticate(context.Background(), sign(t, jwt.SigningMethodES256, k3, "k3", claims)); err == nil {
		t.Fatal("a key the JWKS does not hold verified a token")
	}
	if srv.count() != hits {
		t.Fatal("an unknown kid fetched the JWKS twice within a minute")
	}
}

// TestJWKSURLRefresh: the JWKS URL is fetched again every JWKSRefresh: a key removed from it
// (revoked) stops verifying tokens without a restart.
func TestJWKSURLRefresh(t *testing.T) {
	k1, k2 := mustEC(t, elliptic.P256()), mustEC(t, elliptic.P256())
	srv := newJWKSServer(t, jwksOf(t, map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	auth, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}
	revoked := sign(t, jwt.SigningMethodES256, k1, "", claims) // no kid: no fetch on a miss
	if _, err := auth.Authenticate(context.Background(), revoked); err != nil {
		t.Fatal(err)
	}
	srv.set(jwksOf(t, map[string]*ecdsa.PrivateKey{"k2": k2}))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := auth.Authenticate(context.Background(), revoked); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a key removed from the JWKS URL still verifies tokens: no refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
