package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/wsbridge/wsbridge/bridge"
	"github.com/wsbridge/wsbridge/bridge/jwtauth"
)

// securityFlags are the flags of authentication, permissions, hardening and TLS
// (docs/security.md).
type securityFlags struct {
	configFile       string
	jwtSecret        string
	jwtKeys          string
	jwtIssuer        string
	jwtAudience      string
	jwtLeeway        time.Duration
	tokenCookie      string
	expiryMargin     time.Duration
	forwardClaims    listFlag
	forwardHeaders   listFlag
	forwardToken     bool
	allowedOrigins   listFlag
	rateLimit        float64
	rateBurst        int
	maxConns         int
	handshakeTimeout time.Duration
	pingInterval     time.Duration
	idleTimeout      time.Duration
	tlsCert, tlsKey  string
	backendCA        string
	backendCert      string
	backendKey       string
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.configFile, "config", "", "JSON configuration file: permissions per stream and action (docs/security.md)")
	fs.StringVar(&s.jwtSecret, "jwt-secret", "", "verify HS256 tokens with this secret, at least 32 bytes; prefer the environment variable, argv is visible to other users")
	fs.StringVar(&s.jwtKeys, "jwt-keys", "", "verify RSA and ECDSA tokens with the public keys of this PEM or JWKS file, or of this http(s) JWKS URL (fetched again hourly, and on an unknown kid)")
	fs.StringVar(&s.jwtIssuer, "jwt-issuer", "", "required token issuer (iss)")
	fs.StringVar(&s.jwtAudience, "jwt-audience", "", "required token audience (aud)")
	fs.DurationVar(&s.jwtLeeway, "jwt-leeway", 0, "clock skew tolerated on exp, nbf and iat")
	fs.StringVar(&s.tokenCookie, "token-cookie", "", "also read the token from this cookie")
	fs.DurationVar(&s.expiryMargin, "token-expiry-margin", 0, "close connections (4001) this long before their token expires")
	fs.Var(&s.forwardClaims, "forward-claims", "token claims to forward to the backends as x-bridge-claim-<name>, comma-separated")
	fs.Var(&s.forwardHeaders, "forward-headers", "handshake headers to forward to the backends as metadata, comma-separated")
	fs.BoolVar(&s.forwardToken, "forward-token", false, "forward the raw token to the backends as authorization metadata")
	fs.Var(&s.allowedOrigins, "allowed-origins", "browser origins accepted besides the bridge's own: https://host, host[:port], *.domain, null or *; comma-separated")
	fs.Float64Var(&s.rateLimit, "rate-limit", 100, "messages per second per connection, 0 for no limit; past it 429")
	fs.IntVar(&s.rateBurst, "rate-burst", 500, "burst of -rate-limit")
	fs.IntVar(&s.maxConns, "max-connections", 10000, "WebSocket connections of the process, 0 for no limit; past it the handshake gets 503")
	fs.DurationVar(&s.handshakeTimeout, "handshake-timeout", 10*time.Second, "time allowed to send the handshake's request headers and to write its response")
	fs.DurationVar(&s.pingInterval, "ping-interval", 30*time.Second, "ping every connection this often, 0 for never")
	fs.DurationVar(&s.idleTimeout, "idle-timeout", 75*time.Second, "close a connection silent (no frame, no pong) this long, 0 for never")
	fs.StringVar(&s.tlsCert, "tls-cert", "", "serve TLS (wss://) with this certificate chain (PEM); needs -tls-key")
	fs.StringVar(&s.tlsKey, "tls-key", "", "private key (PEM) of -tls-cert")
	fs.StringVar(&s.backendCA, "backend-ca", "", "dial the backends over TLS, trusting these CA certificates (PEM)")
	fs.StringVar(&s.backendCert, "backend-cert", "", "client certificate (PEM) for mutual TLS with the backends; needs -backend-key and -backend-ca")
	fs.StringVar(&s.backendKey, "backend-key", "", "private key (PEM) of -backend-cert")
}

// validate checks the command's own combinations of flags; the ranges of the bridge's
// options are bridge.New's to check, those of the JWT flags jwtauth.New's.
func (s *securityFlags) validate() error {
	switch {
	case (s.tlsCert == "") != (s.tlsKey == ""):
		return errors.New("-tls-cert and -tls-key go together")
	case (s.backendCert == "") != (s.backendKey == ""):
		return errors.New("-backend-cert and -backend-key go together")
	case s.backendCert != "" && s.backendCA == "":
		return errors.New("-backend-cert needs -backend-ca")
	}
	return nil
}

// options are the bridge options of the flags. ctx bounds the refresh of a JWKS URL.
func (s *securityFlags) options(ctx context.Context) ([]bridge.Option, error) {
	opts := []bridge.Option{
		bridge.WithRateLimit(s.rateLimit, s.rateBurst),
		bridge.WithMaxConnections(s.maxConns),
		bridge.WithHandshakeTimeout(s.handshakeTimeout),
		bridge.WithKeepAlive(s.pingInterval, s.idleTimeout),
		bridge.WithTokenExpiryMargin(s.expiryMargin),
		bridge.WithForwardToken(s.forwardToken),
	}
	if s.configFile != "" {
		raw, err := os.ReadFile(s.configFile)
		if err != nil {
			return nil, fmt.Errorf("-config: %v", err)
		}
		cfg, err := bridge.ParseConfig(raw)
		if err != nil {
			return nil, fmt.Errorf("-config: %s: %v", s.configFile, err)
		}
		opts = append(opts, cfg.Option())
	}
	if s.jwtSecret != "" || s.jwtKeys != "" {
		auth, err := s.jwtAuthenticator(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, bridge.WithAuthenticator(auth))
	} else if s.jwtIssuer != "" || s.jwtAudience != "" {
		return nil, errors.New("-jwt-issuer and -jwt-audience need -jwt-secret or -jwt-keys")
	}
	if s.tokenCookie != "" {
		opts = append(opts, bridge.WithTokenCookie(s.tokenCookie))
	}
	if len(s.forwardClaims) > 0 {
		opts = append(opts, bridge.WithForwardClaims(s.forwardClaims...))
	}
	if len(s.forwardHeaders) > 0 {
		opts = append(opts, bridge.WithForwardHeaders(s.forwardHeaders...))
	}
	if len(s.allowedOrigins) > 0 {
		opts = append(opts, bridge.WithAllowedOrigins(s.allowedOrigins...))
	}
	return opts, nil
}

// jwtFlags maps the fields of jwtauth.Config to the flags that set them.
var jwtFlags = map[string]string{
	"Secret": "-jwt-secret", "Keys": "-jwt-keys", "JWKSURL": "-jwt-keys", "Leeway": "-jwt-leeway",
	"Issuer": "-jwt-issuer", "Audience": "-jwt-audience",
}

// jwtAuthenticator is the authenticator of the -jwt-* flags; -jwt-keys is a PEM or JWKS
// file, or an http(s) URL of a JWKS.
func (s *securityFlags) jwtAuthenticator(ctx context.Context) (*jwtauth.Authenticator, error) {
	cfg := jwtauth.Config{
		Secret:   []byte(s.jwtSecret),
		Issuer:   s.jwtIssuer,
		Audience: s.jwtAudience,
		Leeway:   s.jwtLeeway,
	}
	switch {
	case strings.HasPrefix(s.jwtKeys, "https://"), strings.HasPrefix(s.jwtKeys, "http://"):
		cfg.JWKSURL = s.jwtKeys
	case s.jwtKeys != "":
		raw, err := os.ReadFile(s.jwtKeys)
		if err != nil {
			return nil, fmt.Errorf("-jwt-keys: %v", err)
		}
		if cfg.Keys, err = jwtauth.ParseKeys(raw); err != nil {
			return nil, fmt.Errorf("-jwt-keys: %s: %v", s.jwtKeys, err)
		}
	}
	auth, err := jwtauth.New(ctx, cfg)
	if err != nil {
		var ce *jwtauth.ConfigError
		if errors.As(err, &ce) && jwtFlags[ce.Field] != "" {
			return nil, fmt.Errorf("%s: %v", jwtFlags[ce.Field], ce.Err)
		}
		return nil, fmt.Errorf("-jwt-secret/-jwt-keys: %v", err)
	}
	return auth, nil
}

// backendDialOptions are the dial options of every backend: TLS (and client certificates)
// when -backend-ca is set, else none (plaintext).
func (s *securityFlags) backendDialOptions() ([]grpc.DialOption, error) {
	if s.backendCA == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(s.backendCA)
	if err != nil {
		return nil, fmt.Errorf("-backend-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-backend-ca: %s holds no PEM certificate", s.backendCA)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if s.backendCert != "" {
		cert, err := tls.LoadX509KeyPair(s.backendCert, s.backendKey)
		if err != nil {
			return nil, fmt.Errorf("-backend-cert: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, nil
}

// httpServer is the HTTP server of the bridge: with TLS when -tls-cert is set, and a
// bound on reading the request headers (slow handshakes).
func (s *securityFlags) httpServer(h http.Handler) (*http.Server, error) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: s.handshakeTimeout}
	if s.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(s.tlsCert, s.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert: %v", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return srv, nil
}

// serve serves srv on ln, with TLS when configured.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// wsScheme is the scheme of the bridge's WebSocket URL.
func wsScheme(srv *http.Server) string {
	if srv.TLSConfig != nil {
		return "wss"
	}
	return "ws"
}
