package bridge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures the built-in JWT authenticator (WithJWT, NewJWTAuthenticator).
type JWTConfig struct {
	// Secret verifies HS256 tokens; at least 32 bytes. Empty: no HMAC algorithm is accepted.
	Secret []byte
	// Keys verify RS256 (*rsa.PublicKey) and ES256 (*ecdsa.PublicKey on P-256) tokens.
	// ParsePublicKeys reads them from a PEM or JWKS file. A token with a "kid" header is
	// verified with the key of that ID, else with the keys without ID.
	Keys []PublicKey
	// Keyfunc, when set, chooses the verification key of each token instead of Secret and
	// Keys, for example from a JWKS refreshed in the background. Algorithms must then be set.
	Keyfunc jwt.Keyfunc
	// Algorithms are the accepted "alg" values. Default: HS256 when Secret is set, RS256 when
	// Keys hold an RSA key, ES256 when they hold an EC key. "none" is never accepted, and a
	// token's algorithm must match the type of the key that verifies it.
	Algorithms []string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be in the token's "aud".
	Audience string
	// Leeway tolerates clock skew when checking "exp", "nbf" and "iat"; a connection is
	// closed with 4001 when exp plus Leeway passes. Default 0.
	Leeway time.Duration
	// AllowNoExpiry accepts tokens without "exp". Default: such tokens are refused.
	AllowNoExpiry bool
}

// PublicKey is a verification key and its key ID ("kid"); ID is empty for keys from PEM.
type PublicKey struct {
	ID  string
	Key crypto.PublicKey
}

type jwtAuthenticator struct {
	parser *jwt.Parser
	cfg    JWTConfig
}

// NewJWTAuthenticator returns an Authenticator that verifies JWTs with cfg. A token's
// "sub" becomes the Identity's Subject, its claims the Identity's Claims.
func NewJWTAuthenticator(cfg JWTConfig) (Authenticator, error) {
	if len(cfg.Secret) > 0 && len(cfg.Secret) < 32 {
		// RFC 7518 3.2: an HS256 key must have at least 256 bits; shorter ones can be guessed.
		return nil, fmt.Errorf("jwt: the secret must be at least 32 bytes, got %d", len(cfg.Secret))
	}
	algs := slices.Clone(cfg.Algorithms)
	if len(algs) == 0 {
		if cfg.Keyfunc != nil {
			return nil, errors.New("jwt: Algorithms must be set with a Keyfunc")
		}
		if len(cfg.Secret) > 0 {
			algs = append(algs, "HS256")
		}
		for _, k := range cfg.Keys {
			alg := ""
			switch k.Key.(type) {
			case *rsa.PublicKey:
				alg = "RS256"
			case *ecdsa.PublicKey:
				alg = "ES256"
			}
			if alg != "" && !slices.Contains(algs, alg) {
				algs = append(algs, alg)
			}
		}
	}
	if len(algs) == 0 {
		return nil, errors.New("jwt: no secret and no public key")
	}
	for _, a := range algs {
		switch jwt.GetSigningMethod(a).(type) {
		case *jwt.SigningMethodHMAC:
			if len(cfg.Secret) == 0 && cfg.Keyfunc == nil {
				return nil, fmt.Errorf("jwt: algorithm %s needs a secret", a)
			}
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA:
		default:
			return nil, fmt.Errorf("jwt: algorithm %q is not accepted", a)
		}
	}
	for _, k := range cfg.Keys {
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
		default:
			return nil, fmt.Errorf("jwt: key %q: unsupported key type %T", k.ID, k.Key)
		}
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
	return &jwtAuthenticator{parser: jwt.NewParser(popts...), cfg: cfg}, nil
}

func (a *jwtAuthenticator) Authenticate(_ context.Context, token string) (*Identity, error) {
	claims := jwt.MapClaims{}
	keyfunc := a.keyfunc
	if a.cfg.Keyfunc != nil {
		keyfunc = a.cfg.Keyfunc
	}
	if _, err := a.parser.ParseWithClaims(token, claims, keyfunc); err != nil {
		return nil, err
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return nil, err
	}
	id := &Identity{Subject: sub, Claims: claims}
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		// The parser accepted exp with the leeway; the handshake's check and the 4001
		// timer must use the same instant, or a token inside the leeway is refused.
		id.Expires = exp.Time.Add(a.cfg.Leeway)
	}
	return id, nil
}

// keyfunc picks keys whose type matches the token's algorithm: the secret for HMAC, never
// a public key's bytes, which closes the RS256→HS256 confusion.
func (a *jwtAuthenticator) keyfunc(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if len(a.cfg.Secret) == 0 {
			return nil, errors.New("no secret for HMAC tokens")
		}
		return a.cfg.Secret, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA:
	default:
		return nil, fmt.Errorf("unexpected algorithm %v", t.Header["alg"])
	}
	_, ec := t.Method.(*jwt.SigningMethodECDSA)
	kid, _ := t.Header["kid"].(string)
	var all, named, unnamed []jwt.VerificationKey
	for _, k := range a.cfg.Keys {
		var vk jwt.VerificationKey
		switch pk := k.Key.(type) {
		case *ecdsa.PublicKey:
			if !ec {
				continue
			}
			vk = pk
		case *rsa.PublicKey:
			if ec {
				continue
			}
			vk = pk
		default:
			continue
		}
		all = append(all, vk)
		switch k.ID {
		case "":
			unnamed = append(unnamed, vk)
		case kid:
			named = append(named, vk)
		}
	}
	keys := all
	if kid != "" {
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
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// ParsePublicKeys reads verification keys from a JWKS document ({"keys": [...]}, RSA and
// EC keys; keys whose "use" is not "sig" are skipped) or from PEM blocks (PUBLIC KEY,
// RSA PUBLIC KEY or CERTIFICATE). Private keys are refused.
func ParsePublicKeys(data []byte) ([]PublicKey, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseJWKS(trimmed)
	}
	var out []PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %v", block.Type, err)
		}
		switch key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
		default:
			return nil, fmt.Errorf("PEM block %q: unsupported key type %T", block.Type, key)
		}
		out = append(out, PublicKey{Key: key})
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key and no JWKS found")
	}
	return out, nil
}

func parseJWKS(data []byte) ([]PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	b64 := base64.RawURLEncoding
	var out []PublicKey
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.D != "" {
			return nil, fmt.Errorf("JWKS key %d (%q) is a private key", i, k.Kid)
		}
		switch k.Kty {
		case "RSA":
			n, err1 := b64.DecodeString(k.N)
			e, err2 := b64.DecodeString(k.E)
			if errors.Join(err1, err2) != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("JWKS key %d (%q): invalid RSA key", i, k.Kid)
			}
			exp := int(new(big.Int).SetBytes(e).Int64())
			if exp < 3 {
				return nil, fmt.Errorf("JWKS key %d (%q): invalid RSA exponent", i, k.Kid)
			}
			out = append(out, PublicKey{ID: k.Kid, Key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}})
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			case "P-521":
				curve = elliptic.P521()
			default:
				return nil, fmt.Errorf("JWKS key %d (%q): unsupported curve %q", i, k.Kid, k.Crv)
			}
			x, err1 := b64.DecodeString(k.X)
			y, err2 := b64.DecodeString(k.Y)
			size := (curve.Params().BitSize + 7) / 8
			if errors.Join(err1, err2) != nil || len(x) != size || len(y) != size {
				return nil, fmt.Errorf("JWKS key %d (%q): invalid EC key", i, k.Kid)
			}
			pk, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("JWKS key %d (%q): %v", i, k.Kid, err)
			}
			out = append(out, PublicKey{ID: k.Kid, Key: pk})
		default:
			return nil, fmt.Errorf("JWKS key %d (%q): unsupported key type %q", i, k.Kid, k.Kty)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS has no signing key")
	}
	return out, nil
}
