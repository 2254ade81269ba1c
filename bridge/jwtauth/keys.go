package jwtauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/MicahParks/jwkset"
)

// ParseKeys reads verification keys from a JWKS document ({"keys": [...]}: RSA and EC
// keys; keys whose "use" is not "sig" are skipped) or from PEM blocks (PUBLIC KEY, RSA
// PUBLIC KEY or CERTIFICATE). Private keys are refused.
func ParseKeys(data []byte) ([]Key, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseJWKS(trimmed)
	}
	var out []Key
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
		k := Key{Key: key}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("PEM block %q: %v", block.Type, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM public key and no JWKS found")
	}
	return out, nil
}

// parseJWKS reads a JWKS document with jwkset.
func parseJWKS(data []byte) ([]Key, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	var out []Key
	for i, m := range set.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		if m.D != "" || m.K != "" {
			return nil, fmt.Errorf("JWKS key %d (%q) is a private or secret key", i, m.KID)
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (%q): %v", i, m.KID, err)
		}
		k := Key{ID: m.KID, Algorithm: m.ALG.String(), Key: jwk.Key()}
		if pk, ok := k.Key.(*rsa.PublicKey); ok && pk.E < 3 {
			return nil, fmt.Errorf("JWKS key %d (%q): invalid RSA exponent", i, m.KID)
		}
		if _, ok := k.Key.(*ecdsa.PublicKey); !ok {
			if _, ok := k.Key.(*rsa.PublicKey); !ok {
				return nil, fmt.Errorf("JWKS key %d (%q): unsupported key type %q", i, m.KID, m.KTY)
			}
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("JWKS key %d: %v", i, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS has no signing key")
	}
	return out, nil
}
