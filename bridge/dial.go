package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers the client-side health check that healthCheckConfig names
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// A backend target may name several replicas: "dns:///polls:9090" (every address the name
// resolves to) or "10.0.0.5:9090|10.0.0.6:9090" (not a comma: -backend a,b is two
// backends). The bridge dials every replica and spreads calls over them (round_robin); a
// replica whose grpc.health.v1 status is not SERVING gets no calls (a backend without the
// health service counts as serving); and the idempotent actions, retrieve and list, are
// retried on UNAVAILABLE, so a replica that dies under a call costs the client nothing.
// Create, update, patch, delete and custom actions are never retried: UNAVAILABLE does not
// say whether the replica committed the change. gRPC's retry policy is per method, and the
// methods are known only once the catalog is discovered, so the service config travels with
// the resolver's state and is replaced on every install.

const (
	// listScheme is the scheme of a list of replicas, "a:1|b:2".
	listScheme = "wsbridge-list"
	// retryAttempts bounds the attempts of an idempotent call: with the first, one per
	// replica that may die under it in a row.
	retryAttempts = 4
)

// dialBackend creates the backend's ClientConn (lazily: nothing connects yet).
func dialBackend(b Backend) (*grpc.ClientConn, *serviceConfig, error) {
	sc := &serviceConfig{conns: map[*scClientConn]struct{}{}}
	sc.json = sc.build(nil)
	target := b.Target
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(lastAttemptStatus),
	}
	var inner resolver.Builder
	if addrs, ok := replicaList(target); ok {
		inner = listBuilder{addrs: addrs}
		target = listScheme + ":///" + target
		// TLS checks the server name against the authority: the first replica's host.
		dial = append(dial, grpc.WithAuthority(addrs[0]))
	} else {
		inner = builderFor(target)
	}
	// A resolver the caller passes in b.DialOptions for the same scheme comes first and wins:
	// then the default service config below applies, without retries.
	dial = append(dial, b.DialOptions...)
	dial = append(dial, grpc.WithDefaultServiceConfig(sc.json))
	if inner != nil {
		dial = append(dial, grpc.WithResolvers(&scBuilder{inner: inner, sc: sc}))
	}
	cc, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, nil, err
	}
	return cc, sc, nil
}

// lastAttemptStatus returns the status of a retried call's last attempt as it is: gRPC wraps
// it in "max retries exhausted: failed after N attempts: rpc error: …", which would reach the
// client in errors instead of the backend's own message.
func lastAttemptStatus(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if err != nil && errors.As(err, &se) && error(se) != err {
		return se
	}
	return err
}

// replicaList splits "host:port|host:port" (no scheme) into its addresses.
func replicaList(target string) ([]string, bool) {
	if !strings.Contains(target, "|") || strings.Contains(target, "://") {
		return nil, false
	}
	var addrs []string
	for a := range strings.SplitSeq(target, "|") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs, len(addrs) > 0
}

// builderFor returns the resolver grpc.NewClient would pick for target: its scheme's, or
// dns when it has none (or none registered).
func builderFor(target string) resolver.Builder {
	if u, err := url.Parse(target); err == nil && u.Scheme != "" {
		if b := resolver.Get(u.Scheme); b != nil {
			return b
		}
	}
	return resolver.Get("dns")
}

// serviceConfig is the gRPC service config of one backend, pushed to its live resolvers.
type serviceConfig struct {
	mu    sync.Mutex
	json  string
	conns map[*scClientConn]struct{}
}

// retryPolicy is gRPC's; gRPC jitters each backoff by ×0.8–1.2.
var retryPolicy = map[string]any{
	"maxAttempts":          retryAttempts,
	"initialBackoff":       "0.05s",
	"maxBackoff":           "1s",
	"backoffMultiplier":    2,
	"retryableStatusCodes": []string{"UNAVAILABLE"},
}

// build returns the service config JSON with a retry policy for methods, full gRPC method
// paths ("/pkg.Service/Method").
func (sc *serviceConfig) build(methods []string) string {
	cfg := map[string]any{
		"loadBalancingConfig": []any{map[string]any{"round_robin": map[string]any{}}},
		"healthCheckConfig":   map[string]any{"serviceName": ""},
	}
	var names []any
	for _, m := range methods {
		svc, meth, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		if ok {
			names = append(names, map[string]string{"service": svc, "method": meth})
		}
	}
	if len(names) > 0 {
		cfg["methodConfig"] = []any{map[string]any{"name": names, "retryPolicy": retryPolicy}}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		panic(err) // static shapes: cannot happen
	}
	return string(out)
}

// setMethods replaces the retried methods and pushes the new config to every live resolver.
func (sc *serviceConfig) setMethods(methods []string) {
	slices.Sort(methods)
	methods = slices.Compact(methods)
	js := sc.build(methods)
	sc.mu.Lock()
	if js == sc.json {
		sc.mu.Unlock()
		return
	}
	sc.json = js
	conns := make([]*scClientConn, 0, len(sc.conns))
	for c := range sc.conns {
		conns = append(conns, c)
	}
	sc.mu.Unlock()
	for _, c := range conns {
		c.resend()
	}
}

func (sc *serviceConfig) current() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.json
}

// scBuilder wraps the target's resolver so that every state it reports carries the
// backend's current service config.
type scBuilder struct {
	inner resolver.Builder
	sc    *serviceConfig
}

func (b *scBuilder) Scheme() string { return b.inner.Scheme() }

// Build is called again each time the channel leaves idle mode.
func (b *scBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	w := &scClientConn{ClientConn: cc, sc: b.sc}
	b.sc.mu.Lock()
	b.sc.conns[w] = struct{}{}
	b.sc.mu.Unlock()
	r, err := b.inner.Build(t, w, o)
	if err != nil {
		w.forget()
		return nil, err
	}
	return &scResolver{Resolver: r, w: w}, nil
}

type scResolver struct {
	resolver.Resolver
	w *scClientConn
}

func (r *scResolver) Close() {
	r.w.forget()
	r.Resolver.Close()
}

// scClientConn sits between a resolver and the channel.
type scClientConn struct {
	resolver.ClientConn
	sc *serviceConfig

	// mu spans the channel's UpdateState, so that a state with an older config never
	// overtakes one with a newer.
	mu     sync.Mutex
	last   resolver.State
	have   bool // last holds a state
	closed bool
}

func (w *scClientConn) UpdateState(s resolver.State) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last, w.have = s, true
	if w.closed {
		return nil
	}
	s.ServiceConfig = w.ParseServiceConfig(w.sc.current())
	return w.ClientConn.UpdateState(s)
}

// resend reports the last state again, with the current config.
func (w *scClientConn) resend() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.have || w.closed {
		return // the next UpdateState carries it
	}
	s := w.last
	s.ServiceConfig = w.ParseServiceConfig(w.sc.current())
	_ = w.ClientConn.UpdateState(s)
}

func (w *scClientConn) forget() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.sc.mu.Lock()
	delete(w.sc.conns, w)
	w.sc.mu.Unlock()
}

// listBuilder resolves "wsbridge-list:///a:1,b:2" to its fixed addresses.
type listBuilder struct{ addrs []string }

func (listBuilder) Scheme() string { return listScheme }

func (b listBuilder) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	var s resolver.State
	for _, a := range b.addrs {
		s.Endpoints = append(s.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	// An error here means the balancer found no replica usable yet; it keeps trying.
	_ = cc.UpdateState(s)
	return listResolver{}, nil
}

type listResolver struct{}

func (listResolver) ResolveNow(resolver.ResolveNowOptions) {}
func (listResolver) Close()                                {}

// idempotentMethods lists the methods of cat's retrieve and list actions served over conn.
func idempotentMethods(cat *catalog, conn grpc.ClientConnInterface) []string {
	var out []string
	for _, r := range cat.streams {
		if r.conn != conn {
			continue
		}
		for _, a := range r.actions {
			if a.kind == kindRetrieve || a.kind == kindList {
				out = append(out, a.method)
			}
		}
	}
	return out
}

// applyRetryPolicies gives each backend the retry policy of the idempotent actions cat maps
// to it. Called before cat is installed, so no call of cat's runs without its policy.
func (s *Server) applyRetryPolicies(cat *catalog) {
	for _, b := range s.backends {
		if b.sc != nil {
			b.sc.setMethods(idempotentMethods(cat, b.conn))
		}
	}
}
