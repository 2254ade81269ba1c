// Package jwtauth is the bridge's JWT authenticator: a bridge.Authenticator that verifies
// the token a client sends at the handshake as a JWT signed with an HMAC secret, public keys
// (PEM or a JWKS file), or the keys of a JWKS URL, refreshed in the background.
//
//	auth, err := jwtauth.New(ctx, jwtauth.Config{JWKSURL: "https://idp.example.com/jwks.json", Issuer: "https://idp.example.com/"})
//	if err != nil { ... }
//	srv, err := bridge.New(bridge.WithBackend(...), bridge.WithAuthenticator(auth))
//
// A token's "sub" becomes the Identity's Subject, its claims the Identity's Claims, and its
// "exp" plus Config.Leeway the Identity's Expires, when the bridge closes the connection
// with 4001.
package jwtauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/wsbridge/wsbridge/bridge"
)

// Config configures an Authenticator. At least one of Secret, Keys and JWKSURL is required.
type Config struct {
	// Secret verifies HS256 tokens; at least 32 bytes. Empty: no HMAC algorithm is accepted.
	Secret []byte
	// Keys verify RSA and ECDSA tokens; ParseKeys reads them from a PEM or JWKS file. A
	// token with a "kid" header is verified with the key of that ID, else with the keys
	// without ID (from PEM); a token without "kid" with any key of its algorithm.
	Keys []Key
	// JWKSURL, when set, is a JWKS document fetched by New (which fails if it cannot be
	// read) and again every JWKSRefresh, and at once (at most once a minute) when a token
	// names a key ID it does not hold, so a rotated key is picked up without a restart.
	JWKSURL string
	// JWKSRefresh is how often JWKSURL is fetched again. Default 1h; must not be negative.
	JWKSRefresh time.Duration
	// Client fetches JWKSURL. Default http.DefaultClient.
	Client *http.Client
	// Algorithms are the accepted "alg" values. Default: HS256 with Secret; for each key, its
	// JWK "alg" if set, else RS256 for an RSA key and ES256, ES384 or ES512 for an ECDSA key
	// on P-256, P-384 or P-521; with JWKSURL also RS256, RS384, RS512, PS256, PS384, PS512,
	// ES256, ES384 and ES512. Whatever the list, "none" is never accepted and a token is
	// verified only with a key of its algorithm: an HMAC token with the secret, never a
	// public key's bytes; an ES384 token with a P-384 key.
	Algorithms []string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be in the token's "aud".
	Audience string
	// Leeway tolerates clock skew when checking "exp", "nbf" and "iat"; a connection is
	// closed with 4001 when exp plus Leeway passes. Default 0; must not be negative.
	Leeway time.Duration
	// AllowNoExpiry accepts tokens without "exp". Default: such tokens are refused.
	AllowNoExpiry bool
}

// Key is a verification key: an *rsa.PublicKey, or an *ecdsa.PublicKey on P-256, P-384 or
// P-521.
type Key struct {
	// ID is the key's "kid"; empty for keys from PEM.
	ID string
	// Algorithm is the JWK's "alg"; empty lets the key's type and curve decide.
	Algorithm string
	// Key is the public key.
	Key crypto.PublicKey
}

// ConfigError is New's error for an unusable Config, naming the field at fault (empty when
// no field is: no key at all).
type ConfigError struct {
	// Field is the Config field, e.g. "Secret" or "JWKSURL".
	Field string
	// Err says what is wrong.
	Err error
}

// Error is "jwtauth: Field: reason".
func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "jwtauth: " + e.Err.Error()
	}
	return "jwtauth: " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(field, format string, a ...any) *ConfigError {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, a...)}
}

// Authenticator verifies JWTs; it implements bridge.Authenticator.
type Authenticator struct {
	parser *jwt.Parser
	secret []byte
	keys   []Key
	remote jwkset.Storage     // JWKSURL's keys; nil without
	stop   context.CancelFunc // ends the refresh, as the end of New's ctx does
	leeway time.Duration
}

var _ bridge.Authenticator = (*Authenticator)(nil)

// asymmetric are the algorithms a JWKS URL's keys may use by default.
var asymmetric = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}

// New returns an Authenticator for cfg, or a *ConfigError. ctx bounds the first fetch of
// JWKSURL and, once New has returned, the background refresh: cancel it when the bridge
// stops.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	switch {
	case len(cfg.Secret) > 0 && len(cfg.Secret) < 32:
		// RFC 7518 3.2: an HS256 key must have at least 256 bits; shorter ones can be guessed.
		return nil, configErr("Secret", "must be at least 32 bytes, got %d", len(cfg.Secret))
	case cfg.Leeway < 0:
		return nil, configErr("Leeway", "must not be negative, got %s", cfg.Leeway)
	case cfg.JWKSRefresh < 0:
		return nil, configErr("JWKSRefresh", "must not be negative, got %s", cfg.JWKSRefresh)
	case len(cfg.Secret) == 0 && len(cfg.Keys) == 0 && cfg.JWKSURL == "":
		return nil, configErr("", "no secret, no public key and no JWKS URL")
	}
	for _, k := range cfg.Keys {
		if err := checkKey(k); err != nil {
			return nil, &ConfigError{Field: "Keys", Err: err}
		}
	}
	algs := slices.Clone(cfg.Algorithms)
	if len(algs) == 0 {
		if len(cfg.Secret) > 0 {
			algs = append(algs, "HS256")
		}
		for _, k := range cfg.Keys {
			if alg := keyAlg(k); !slices.Contains(algs, alg) {
				algs = append(algs, alg)
			}
		}
		if cfg.JWKSURL != "" {
			for _, alg := range asymmetric {
				if !slices.Contains(algs, alg) {
					algs = append(algs, alg)
				}
			}
		}
	}
	for _, a := range algs {
		switch jwt.GetSigningMethod(a).(type) {
		case *jwt.SigningMethodHMAC:
			if len(cfg.Secret) == 0 {
				return nil, configErr("Algorithms", "%s needs a secret", a)
			}
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA:
		default:
			return nil, configErr("Algorithms", "%q is not accepted", a)
		}
	}
	a := &Authenticator{secret: cfg.Secret, keys: cfg.Keys, leeway: cfg.Leeway}
	if cfg.JWKSURL != "" {
		// jwkset starts the refresh before the first fetch: a failed New must end it.
		rctx, stop := context.WithCancel(ctx)
		remote, err := fetchJWKS(rctx, cfg)
		if err != nil {
			stop()
			return nil, &ConfigError{Field: "JWKSURL", Err: err}
		}
		a.remote, a.stop = remote, stop
	}
	popts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithIssuedAt()}
	if cfg.Leeway > 0 {
		popts = append(popts, jwt.WithLeeway(cfg.Leeway))
	}
	if cfg.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		popts = append(popts, jwt.WithAudience(cfg.Audience))
	}
	if !cfg.AllowNoExpiry {
		popts = append(popts, jwt.WithExpirationRequired())
	}
	a.parser = jwt.NewParser(popts...)
	return a, nil
}

// fetchJWKS reads cfg.JWKSURL once and starts its refresh, ended by ctx.
func fetchJWKS(ctx context.Context, cfg Config) (jwkset.Storage, error) {
	refresh := cfg.JWKSRefresh
	if refresh == 0 {
		refresh = time.Hour
	}
	store, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:          cfg.Client,
		Ctx:             ctx,
		HTTPTimeout:     30 * time.Second,
		RefreshInterval: refresh,
		// A refresh that fails keeps the keys it had; the next one tries again.
		RefreshErrorHandler: func(context.Context, error) {},
	})
	if err != nil {
		return nil, err
	}
	return jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{cfg.JWKSURL: store},
		// An unknown kid fetches again at most once a minute; past that it fails at once
		// rather than holding the handshake (the wait bound also bounds that fetch).
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
		RateLimitWaitMax:  30 * time.Second,
	})
}

// Authenticate verifies token and returns its identity.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*bridge.Identity, error) {
	claims := jwt.MapClaims{}
	keyfunc := func(t *jwt.Token) (any, error) { return a.keyfunc(ctx, t) }
	if _, err := a.parser.ParseWithClaims(token, claims, keyfunc); err != nil {
		return nil, err
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return nil, err
	}
	id := &bridge.Identity{Subject: sub, Claims: claims}
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		// The parser accepted exp with the leeway; the handshake's check and the 4001
		// timer must use the same instant, or a token inside the leeway is refused.
		id.Expires = exp.Time.Add(a.leeway)
	}
	return id, nil
}

// keyfunc picks the keys of the token's algorithm: the secret for HMAC, never a public
// key's bytes (the RS256→HS256 confusion), and for RSA or ECDSA the keys whose type, curve
// and JWK "alg" fit it.
func (a *Authenticator) keyfunc(ctx context.Context, t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(a.secret) == 0 {
			return nil, errors.New("no secret for HMAC tokens")
		}
		return a.secret, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA:
	default:
		return nil, fmt.Errorf("unexpected algorithm %q", alg)
	}
	kid, hasKID := t.Header["kid"].(string)
	var named, unnamed, all []any
	add := func(k Key) {
		if !fits(k, alg) {
			return
		}
		all = append(all, k.Key)
		switch k.ID {
		case "":
			unnamed = append(unnamed, k.Key)
		case kid:
			named = append(named, k.Key)
		}
	}
	for _, k := range a.keys {
		add(k)
	}
	if a.remote != nil && (!hasKID || len(named) == 0) {
		if hasKID {
			// Reading an unknown kid fetches the JWKS again (rate-limited).
			if jwk, err := a.remote.KeyRead(ctx, kid); err == nil {
				if k, ok := remoteKey(jwk); ok {
					add(k)
				}
			}
		} else if jwks, err := a.remote.KeyReadAll(ctx); err == nil {
			for _, jwk := range jwks {
				if k, ok := remoteKey(jwk); ok {
					add(k)
				}
			}
		}
	}
	keys := all
	if hasKID {
		// The key of that ID, else the keys that have none (from PEM).
		if keys = named; len(keys) == 0 {
			keys = unnamed
		}
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no key for the token")
	case 1:
		return keys[0], nil
	}
	vks := make([]jwt.VerificationKey, len(keys))
	for i, k := range keys {
		vks[i] = k
	}
	return jwt.VerificationKeySet{Keys: vks}, nil
}

// remoteKey is the verification key of a JWK of the JWKS URL; ok is false for a key that
// is not for signatures or of an unsupported type.
func remoteKey(jwk jwkset.JWK) (Key, bool) {
	m := jwk.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return Key{}, false
	}
	key := jwk.Key()
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public() // a JWKS should hold public keys only; use no more than that
	}
	k := Key{ID: m.KID, Algorithm: m.ALG.String(), Key: key}
	return k, checkKey(k) == nil
}

// ecAlg is the ECDSA algorithm of a curve: the key decides, not a default.
func ecAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// keyAlg is the algorithm a key verifies by default.
func keyAlg(k Key) string {
	if k.Algorithm != "" {
		return k.Algorithm
	}
	if pk, ok := k.Key.(*ecdsa.PublicKey); ok {
		return ecAlg(pk.Curve)
	}
	return "RS256"
}

// fits reports whether k may verify a token of alg.
func fits(k Key, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return alg == ecAlg(pk.Curve)
	}
	return false
}

// checkKey refuses keys the authenticator cannot use.
func checkKey(k Key) error {
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if k.Algorithm != "" && !fits(k, k.Algorithm) {
			return fmt.Errorf("key %q: algorithm %q does not fit an RSA key", k.ID, k.Algorithm)
		}
	case *ecdsa.PublicKey:
		if ecAlg(pk.Curve) == "" {
			return fmt.Errorf("key %q: unsupported curve %s", k.ID, pk.Curve.Params().Name)
		}
		if k.Algorithm != "" && !fits(k, k.Algorithm) {
			return fmt.Errorf("key %q: algorithm %q does not fit a %s key", k.ID, k.Algorithm, pk.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("key %q: unsupported key type %T", k.ID, k.Key)
	}
	return nil
}
