package bridge

import (
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Permission decides whether a connection may run an action. id is nil for an anonymous
// connection; stream and action are as the client sent them ("subscribe" and "unsubscribe"
// included; "retrieve" for each event a subscriber would receive); pk is the request's or
// event's key as text ("" when there is none).
//
// Allow is called for every request, and for permissions the bridge does not know to be
// independent of the pk, for every event delivered to every subscriber: it must be fast.
// The bridge holds no lock while it runs.
type Permission interface {
	Allow(id *Identity, stream, action, pk string) bool
}

// PermissionFunc adapts a function to Permission.
type PermissionFunc func(id *Identity, stream, action, pk string) bool

// Allow calls f.
func (f PermissionFunc) Allow(id *Identity, stream, action, pk string) bool {
	return f(id, stream, action, pk)
}

// builtin is a permission whose decision depends on the identity only, so the bridge may
// decide it once per subscription instead of once per event. Only this package's
// permissions implement it.
type builtin interface {
	Permission
	identityOnly()
	String() string
}

type allowAny struct{}

func (allowAny) Allow(*Identity, string, string, string) bool { return true }
func (allowAny) identityOnly()                                {}
func (allowAny) String() string                               { return "allow_any" }

type isAuthenticated struct{}

func (isAuthenticated) Allow(id *Identity, _, _, _ string) bool { return id != nil }
func (isAuthenticated) identityOnly()                           {}
func (isAuthenticated) String() string                          { return "is_authenticated" }

type denyAll struct{}

func (denyAll) Allow(*Identity, string, string, string) bool { return false }
func (denyAll) identityOnly()                                {}
func (denyAll) String() string                               { return "deny_all" }

type hasScope string

func (s hasScope) Allow(id *Identity, _, _, _ string) bool { return id.HasScope(string(s)) }
func (hasScope) identityOnly()                             {}
func (s hasScope) String() string                          { return "scope:" + string(s) }

type hasRole string

func (r hasRole) Allow(id *Identity, _, _, _ string) bool { return id.HasRole(string(r)) }
func (hasRole) identityOnly()                             {}
func (r hasRole) String() string                          { return "role:" + string(r) }

type allOf []Permission

func (a allOf) Allow(id *Identity, stream, action, pk string) bool {
	for _, p := range a {
		if !p.Allow(id, stream, action, pk) {
			return false
		}
	}
	return true
}

var (
	// AllowAny allows everyone, anonymous connections included. It is the default.
	AllowAny Permission = allowAny{}
	// IsAuthenticated allows connections that presented a valid token.
	IsAuthenticated Permission = isAuthenticated{}
	// DenyAll allows no one.
	DenyAll Permission = denyAll{}
)

// HasScope allows identities whose "scope" claim (space-separated) or "scp" claim holds scope.
func HasScope(scope string) Permission { return hasScope(scope) }

// HasRole allows identities whose "roles" claim holds role.
func HasRole(role string) Permission { return hasRole(role) }

// AllOf allows what every one of ps allows.
func AllOf(ps ...Permission) Permission {
	if len(ps) == 1 {
		return ps[0]
	}
	return allOf(ps)
}

// identityOnly reports whether p's decision depends on the identity only.
func identityOnly(p Permission) bool {
	switch p := p.(type) {
	case builtin:
		return true
	case allOf:
		for _, q := range p {
			if !identityOnly(q) {
				return false
			}
		}
		return true
	}
	return false
}

// ParsePermission reads the permission syntax of the configuration file and of the proto
// options ResourceOptions.permission and ActionOptions.permission: "allow_any",
// "is_authenticated", "deny_all", "scope:<scope>" or "role:<role>"; several terms separated
// by spaces must all allow ("is_authenticated scope:polls.write").
func ParsePermission(s string) (Permission, error) {
	terms := strings.Fields(s)
	if len(terms) == 0 {
		return nil, fmt.Errorf("empty permission")
	}
	ps := make([]Permission, 0, len(terms))
	for _, t := range terms {
		var p Permission
		switch {
		case t == "allow_any":
			p = AllowAny
		case t == "is_authenticated":
			p = IsAuthenticated
		case t == "deny_all":
			p = DenyAll
		case strings.HasPrefix(t, "scope:") && len(t) > len("scope:"):
			p = HasScope(t[len("scope:"):])
		case strings.HasPrefix(t, "role:") && len(t) > len("role:"):
			p = HasRole(t[len("role:"):])
		default:
			return nil, fmt.Errorf("unknown permission %q (want allow_any, is_authenticated, deny_all, scope:<name> or role:<name>)", t)
		}
		ps = append(ps, p)
	}
	return AllOf(ps...), nil
}

// Policy is the configured permissions. Each request is decided by the first of: the
// stream's permission for the action, the stream's default, the proto's
// ActionOptions.permission, the proto's ResourceOptions.permission, Default, and AllowAny.
// An action the resource does not have is decided by the same order without the proto
// action's permission. Permissions added with WithPermissions must allow too.
type Policy struct {
	// Default applies to every stream whose configuration and proto say nothing.
	Default Permission
	// Streams configure single streams, by stream name.
	Streams map[string]StreamPolicy
}

// StreamPolicy is one stream's configured permissions.
type StreamPolicy struct {
	// Default applies to every action of the stream without its own entry in Actions,
	// unknown actions, subscribe and unsubscribe included.
	Default Permission
	// Actions are per-action permissions, by action name ("create", "vote", "subscribe"...).
	Actions map[string]Permission
}

// access is a resource's resolved permissions.
type access struct {
	actions map[string]Permission // every action the resource has or the configuration names
	stream  Permission            // for other action names
	event   Permission            // "retrieve", for events
	// eventPerEvent: the event permission may depend on the pk, so it is decided for each
	// event and subscriber; otherwise it is decided once, at subscribe.
	eventPerEvent bool
}

func (a *access) of(action string) Permission {
	if p := a.actions[action]; p != nil {
		return p
	}
	return a.stream
}

// accessConfig is what the options add to the proto's permissions.
type accessConfig struct {
	policy Policy
	custom []Permission // WithPermissions: every decision includes them
	logger *slog.Logger // for proto permissions the bridge cannot read
}

// resolveAccess resolves the permissions of res, once, when its catalog is built.
func resolveAccess(res *resource, cfg accessConfig) *access {
	pol := cfg.policy
	sp := pol.Streams[res.stream]
	custom := cfg.custom
	parse := func(what, text string) Permission {
		p, err := ParsePermission(text)
		if err != nil {
			// Fail closed: a permission the bridge cannot read allows no one.
			logger := cfg.logger
			if logger == nil {
				logger = slog.Default()
			}
			logger.Error("invalid permission in proto option; denying", "stream", res.stream, "option", what, "err", err)
			return DenyAll
		}
		return p
	}
	var resource Permission
	if res.permission != "" {
		resource = parse("resource", res.permission)
	}
	with := func(p Permission) Permission {
		if len(custom) == 0 {
			return p
		}
		return AllOf(append([]Permission{p}, custom...)...)
	}
	streamLevel := func() Permission {
		switch {
		case sp.Default != nil:
			return sp.Default
		case resource != nil:
			return resource
		case pol.Default != nil:
			return pol.Default
		}
		return AllowAny
	}
	acc := &access{actions: make(map[string]Permission), stream: with(streamLevel())}
	names := []string{"subscribe", "unsubscribe"}
	for name := range res.actions {
		names = append(names, name)
	}
	for name := range sp.Actions {
		names = append(names, name)
	}
	for _, name := range names {
		p := sp.Actions[name]
		if p == nil && sp.Default == nil {
			if a := res.actions[name]; a != nil && a.permission != "" {
				p = parse("action "+name, a.permission)
			}
		}
		if p == nil {
			p = streamLevel()
		}
		acc.actions[name] = with(p)
	}
	acc.event = acc.of("retrieve")
	acc.eventPerEvent = !identityOnly(acc.event)
	return acc
}

// permits decides a request on res. pk is canonicalized through the key field when the
// action has one, so that a permission sees the key the backend will.
func (res *resource) permits(id *Identity, action string, rawPK []byte) bool {
	acc := res.access
	p := acc.of(action)
	// The usual permissions look at the identity only; reading the pk costs a parse.
	pk := ""
	if !identityOnly(p) {
		pk = requestPK(res, action, rawPK)
	}
	if !p.Allow(id, res.stream, action, pk) {
		return false
	}
	if action == "subscribe" && !acc.eventPerEvent {
		// A subscriber who may not retrieve would never receive an event: refuse now, and
		// fan-out need not check anything. eventPerEvent is false only for identity-only
		// permissions, so the pk is not needed.
		return acc.event.Allow(id, res.stream, "retrieve", pk)
	}
	return true
}

func requestPK(res *resource, action string, raw []byte) string {
	if raw == nil {
		return ""
	}
	var key protoreflect.FieldDescriptor
	switch action {
	case "subscribe", "unsubscribe":
		if sm := res.subscribe; sm != nil {
			key = sm.key
		}
	default:
		if a := res.actions[action]; a != nil {
			key = a.pk
		}
	}
	if key != nil {
		if v, ok := parseKey(key, raw); ok {
			return v.String()
		}
	}
	s, _ := jsonScalarText(raw)
	return s
}

// mayReceive reports whether id may see the event of pk on res. Only called when
// res.access.eventPerEvent; it runs the embedding program's code, so never under a lock
// fan-out waits on.
func (res *resource) mayReceive(id *Identity, pk string) bool {
	return res.access.event.Allow(id, res.stream, "retrieve", pk)
}
