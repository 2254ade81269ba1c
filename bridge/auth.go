package bridge

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// Metadata keys the bridge sends to the backends on every unary call and Subscribe stream
// of an authenticated connection. Clients cannot set them: handshake headers are forwarded
// only when allowlisted, and the allowlist refuses this prefix.
const (
	// MDSubject carries the token's "sub" claim.
	MDSubject = "x-bridge-subject"
	// MDClaimPrefix followed by the claim's name (lower case) carries a forwarded claim,
	// JSON-encoded: x-bridge-claim-email: "ann@example.com", x-bridge-claim-roles: ["admin"].
	MDClaimPrefix = "x-bridge-claim-"
	// mdReserved is the prefix no allowlisted header may use.
	mdReserved = "x-bridge-"
)

// Identity is who a connection authenticated as at the handshake. An anonymous connection
// has a nil *Identity; every method works on nil.
type Identity struct {
	// Subject is the token's "sub" claim. Never empty.
	Subject string
	// Claims are the token's verified claims, as decoded from JSON.
	Claims map[string]any
	// Expires is when the token stops being accepted; zero when it does not. The bridge
	// closes the connection with 4001 then (minus WithTokenExpiryMargin). For package
	// jwtauth's authenticator it is the token's exp plus its Config.Leeway.
	Expires time.Time

	token string // the raw token, forwarded only with WithForwardToken
}

// Authenticated reports whether the identity is not anonymous.
func (id *Identity) Authenticated() bool { return id != nil }

// HasScope reports whether the space-separated "scope" claim or the "scp" claim (an array
// of strings, or a space-separated string) contains scope.
func (id *Identity) HasScope(scope string) bool {
	if id == nil {
		return false
	}
	return claimHas(id.Claims["scope"], scope) || claimHas(id.Claims["scp"], scope)
}

// HasRole reports whether the "roles" claim (an array of strings, or a space-separated
// string) contains role.
func (id *Identity) HasRole(role string) bool {
	if id == nil {
		return false
	}
	return claimHas(id.Claims["roles"], role)
}

func claimHas(v any, want string) bool {
	switch v := v.(type) {
	case string:
		return slices.Contains(strings.Fields(v), want)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok && s == want {
				return true
			}
		}
	case []string:
		return slices.Contains(v, want)
	}
	return false
}

// Authenticator verifies the token a client sends at the handshake. It returns the
// identity the token proves (with a non-empty Subject), or an error: the handshake is then
// refused with HTTP 401. Package jwtauth verifies JWTs.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, token string) (*Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, token string) (*Identity, error) {
	return f(ctx, token)
}

// bearerProtocol is the Sec-WebSocket-Protocol prefix that carries a token, for browsers,
// which cannot set headers on a WebSocket.
const bearerProtocol = "bearer."

// handshake is what the bridge learned from an upgrade request.
type handshake struct {
	identity *Identity
	md       []string // forwarded metadata as key, value pairs, in key order (mdPairs)
	key      string   // identityKey: md in canonical form
	protocol string   // subprotocol to answer; "" for none
}

// errAuth is a refused credential; its text goes to the log, never the token.
type errAuth string

func (e errAuth) Error() string { return string(e) }

// credentials finds the token of an upgrade request: an Authorization: Bearer header, the
// token query parameter, the configured cookie, then a bearer.<token> subprotocol. Only the
// first source present counts. An Authorization header of another scheme (Basic from a
// proxy in front of the site) is not a credential of the bridge's and is skipped, as is an
// empty bearer. subprotocol. An empty token means none was sent.
func credentials(r *http.Request, cookie string) (string, error) {
	var bearer []string
	for _, h := range r.Header.Values("Authorization") {
		if scheme, tok, _ := strings.Cut(strings.TrimSpace(h), " "); strings.EqualFold(scheme, "Bearer") {
			bearer = append(bearer, strings.TrimSpace(tok))
		}
	}
	switch {
	case len(bearer) > 1:
		return "", errAuth("several Bearer Authorization headers")
	case len(bearer) == 1 && bearer[0] == "":
		return "", errAuth("empty Bearer token")
	case len(bearer) == 1:
		return bearer[0], nil
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, nil
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil && c.Value != "" {
			return c.Value, nil
		}
	}
	for _, p := range subprotocols(r) {
		if tok, ok := strings.CutPrefix(p, bearerProtocol); ok && tok != "" {
			return tok, nil
		}
	}
	return "", nil
}

// subprotocols lists the Sec-WebSocket-Protocol entries of all the header's lines.
func subprotocols(r *http.Request) []string {
	var out []string
	for _, line := range r.Header.Values("Sec-Websocket-Protocol") {
		for _, p := range strings.Split(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// answerProtocol is the subprotocol to answer: when the client offered a bearer.<token>
// entry, the first other entry it offered (a browser fails a handshake whose answer is
// missing), so the token is never echoed. Otherwise none, as without authentication.
func answerProtocol(r *http.Request) string {
	bearer := false
	first := ""
	for _, p := range subprotocols(r) {
		if strings.HasPrefix(p, bearerProtocol) {
			bearer = true
		} else if first == "" {
			first = p
		}
	}
	if !bearer {
		return ""
	}
	return first
}

// handshake authenticates an upgrade request and builds what the connection forwards.
func (s *Server) handshake(r *http.Request) (*handshake, error) {
	sec := &s.opts.security
	hs := &handshake{protocol: answerProtocol(r)}
	if sec.auth != nil {
		// Without an authenticator no credential is ever looked at: every connection is
		// anonymous, whatever it sends.
		tok, err := credentials(r, sec.cookie)
		if err != nil {
			return nil, err
		}
		if tok != "" {
			if err := s.authenticate(r, hs, tok); err != nil {
				return nil, err
			}
		}
	}
	hs.md = mdPairs(s.forwardMD(r, hs.identity))
	hs.key = mdKey(hs.md)
	return hs, nil
}

// authenticate verifies tok and sets hs.identity.
func (s *Server) authenticate(r *http.Request, hs *handshake, tok string) error {
	sec := &s.opts.security
	id, err := sec.auth.Authenticate(r.Context(), tok)
	if err != nil {
		return err
	}
	if id == nil || id.Subject == "" {
		return errAuth("the token has no subject")
	}
	if !printableASCII(id.Subject) {
		return errAuth("the token's subject is not printable ASCII")
	}
	if !id.Expires.IsZero() && !time.Now().Before(id.Expires.Add(-sec.expiryMargin)) {
		return errAuth("the token expires within the expiry margin")
	}
	own := *id // the authenticator may share its identities; this one is the connection's
	if sec.forwardToken {
		own.token = tok // for forwardMD; otherwise not kept, nor the header it is part of
	}
	hs.identity = &own
	return nil
}

// forwardMD is the metadata a connection sends to the backends: nothing a client chose
// except the allowlisted headers.
func (s *Server) forwardMD(r *http.Request, id *Identity) metadata.MD {
	sec := &s.opts.security
	md := metadata.MD{}
	if id != nil {
		md.Set(MDSubject, id.Subject)
		for _, name := range sec.claims {
			v, ok := id.Claims[name]
			if !ok {
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				continue
			}
			md.Set(MDClaimPrefix+strings.ToLower(name), asciiJSON(b))
		}
		if sec.forwardToken {
			md.Set("authorization", "Bearer "+id.token)
		}
	}
	for _, h := range sec.headers {
		for _, v := range r.Header.Values(h) {
			if printableASCII(v) {
				md.Append(h, v)
			}
		}
	}
	if len(md) == 0 {
		return nil
	}
	return md
}

// mdPairs is md as key, value pairs, in key order.
func mdPairs(md metadata.MD) []string {
	if len(md) == 0 {
		return nil
	}
	var n int
	for _, vs := range md {
		n += 2 * len(vs)
	}
	pairs := make([]string, 0, n)
	for _, k := range slices.Sorted(maps.Keys(md)) {
		for _, v := range md[k] {
			pairs = append(pairs, k, v)
		}
	}
	return pairs
}

// mdKey is md (pairs in key order, from mdPairs) in a canonical form: connections with the
// same key send the same metadata, so they may share an upstream subscription.
func mdKey(md []string) string {
	var b strings.Builder
	for i := 0; i < len(md); i += 2 {
		if i == 0 || md[i] != md[i-2] {
			if i > 0 {
				b.WriteByte(1)
			}
			b.WriteString(md[i])
		}
		b.WriteByte(0) // values are printable ASCII: 0 and 1 cannot occur in them
		b.WriteString(md[i+1])
	}
	if len(md) > 0 {
		b.WriteByte(1)
	}
	return b.String()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// asciiJSON escapes the non-ASCII characters of valid JSON as \uXXXX, so that it is a valid
// gRPC metadata value.
func asciiJSON(b []byte) string {
	if printableASCII(string(b)) {
		return string(b)
	}
	var out strings.Builder
	const hex = "0123456789abcdef"
	write := func(u rune) {
		out.WriteString(`\u`)
		out.WriteByte(hex[u>>12&0xf])
		out.WriteByte(hex[u>>8&0xf])
		out.WriteByte(hex[u>>4&0xf])
		out.WriteByte(hex[u&0xf])
	}
	for _, r := range string(b) {
		switch {
		case r >= 0x20 && r <= 0x7e:
			out.WriteRune(r)
		case r > 0xffff:
			// Outside strings JSON is ASCII, so every rune here is inside a string.
			r -= 0x10000
			write(0xd800 + (r>>10)&0x3ff)
			write(0xdc00 + r&0x3ff)
		default:
			write(r)
		}
	}
	return out.String()
}

// refuseHandshake answers a refused handshake without upgrading.
func refuseHandshake(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	http.Error(w, msg, status)
}

// setIdentity applies the handshake to a new connection and queues it to be closed when its
// token expires (expiry.go).
func (c *conn) setIdentity(hs *handshake) {
	c.identity = hs.identity
	c.mdPairs = hs.md
	c.identityKey = hs.key
	if id := hs.identity; id != nil && !id.Expires.IsZero() {
		c.expiresAt = id.Expires.Add(-c.srv.opts.security.expiryMargin).UnixNano()
		c.srv.expiries.add(c)
	}
}

// stopExpiry takes the connection out of the expiry queue, waiting for its 4001 if that
// is under way.
func (c *conn) stopExpiry() {
	if c.expiresAt != 0 {
		c.srv.expiries.remove(c)
	}
}
