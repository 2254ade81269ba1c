package bridge

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	bridgev1 "github.com/wsbridge/wsbridge/proto/bridge/v1"
)

// actionKind says how a frame's payload becomes a request and a response becomes a reply.
type actionKind uint8

const (
	kindCustom actionKind = iota
	kindCreate
	kindRetrieve
	kindUpdate
	kindPatch
	kindList
	kindDelete
)

// kindNames are the actions' kinds as /schema names them; a standard kind's name is also its
// action's name, and capitalized, the bridge's conventional method name (Create, Retrieve...).
var kindNames = [...]string{
	kindCustom:   "custom",
	kindCreate:   "create",
	kindRetrieve: "retrieve",
	kindUpdate:   "update",
	kindPatch:    "patch",
	kindList:     "list",
	kindDelete:   "delete",
}

// standardKind is the kind of a method named after the bridge's conventions.
func standardKind(method string) (actionKind, bool) {
	for k := kindCreate; k <= kindDelete; k++ {
		if n := kindNames[k]; len(method) == len(n) && method[0] == n[0]-'a'+'A' && method[1:] == n[1:] {
			return k, true
		}
	}
	return kindCustom, false
}

// catalog is the immutable set of resources the bridge exposes, built from descriptors.
// Everything a request needs is resolved here once, so the hot path looks nothing up by name
// beyond two map reads.
type catalog struct {
	streams map[string]*resource
	hidden  []string // services seen but not exposed, for the warning of an empty catalog
}

// resource is one gRPC service exposed as a stream.
type resource struct {
	stream     string
	streamJSON []byte // the stream name as a JSON string, ready to splice into frames
	service    protoreflect.ServiceDescriptor
	conn       grpc.ClientConnInterface
	actions    map[string]*action
	subscribe  *subscribeMethod // nil when the service has no Subscribe stream
	model      protoreflect.MessageDescriptor
	modelJSON  []byte // the model's full name as a JSON string, or null: events carry it
	permission string // from the proto option; "" when unset
	// perIdentity: the proto option upstream_per_identity (subscribe.go).
	perIdentity bool
	access      *access // the permissions, resolved when the catalog is built (permission.go)
}

// action is one unary method reachable as an action of a resource.
type action struct {
	name       string
	nameJSON   []byte
	kind       actionKind
	detail     bool
	method     string // full gRPC method path, e.g. /polls.v1.QuestionService/Create
	permission string
	req        protoreflect.MessageDescriptor
	resp       protoreflect.MessageDescriptor

	pk       protoreflect.FieldDescriptor // request's pk field, nil when absent
	data     protoreflect.FieldDescriptor // request's message field "data", nil when absent
	mask     protoreflect.FieldDescriptor // request's FieldMask update_mask, nil when absent
	page     protoreflect.FieldDescriptor // list request's page field
	pageSize protoreflect.FieldDescriptor // list request's page_size field

	items protoreflect.FieldDescriptor   // list response's repeated resource field
	meta  []protoreflect.FieldDescriptor // list response's other scalar fields

	rule      string                         // what decided the action: ruleOption, ruleHTTP or ruleName (aip.go)
	http      *httpMapping                   // the method's HTTP rule, nil when none
	aip       bool                           // built by buildAIPRequest: mapped by HTTP rule or AIP names
	keyPath   []protoreflect.FieldDescriptor // fields from the request to pk, e.g. book, name
	pageToken protoreflect.FieldDescriptor   // cursor-paginated list request's page_token

	wire bool // request and response go through wirejson, not protojson (usesWire, transcode.go)
}

// subscribeMethod is a resource's server-streaming Subscribe RPC.
type subscribeMethod struct {
	method string
	req    protoreflect.MessageDescriptor
	pk     protoreflect.FieldDescriptor // request filter: pk (optional)
	key    protoreflect.FieldDescriptor // what a subscription's pk is read as: pk, else the event's pk
	// dataHasPK: the event's data message has a field pk, so a DCRF delete event's data
	// gets no pk of the bridge's (reply.go).
	dataHasPK bool
	actions   protoreflect.FieldDescriptor // request filter: repeated string actions, or string action
	event     protoreflect.MessageDescriptor
	evActon   protoreflect.FieldDescriptor
	evPK      protoreflect.FieldDescriptor
	evData    protoreflect.FieldDescriptor
	// The offset convention (resume.go): the request's since and the event's offset, both
	// or neither; offsetsHalf when only one was found, which the bridge warns about.
	since       protoreflect.FieldDescriptor
	evOffset    protoreflect.FieldDescriptor
	offsetsHalf bool
	desc        *grpc.StreamDesc
}

// names lists the stream names of the catalog, sorted.
func (c *catalog) names() []string {
	names := make([]string, 0, len(c.streams))
	for n := range c.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// serviceSource is one service to expose and the connection that serves it.
type serviceSource struct {
	desc   protoreflect.ServiceDescriptor
	conn   grpc.ClientConnInterface
	stream string // from configuration; "" to use the proto option
}

// catalogConfig is what the configuration adds to the descriptors.
type catalogConfig struct {
	rules   map[string]*annotations.HttpRule // HTTP rules by method full name (-http-rules)
	streams map[string]string                // resource message full name → stream (-stream)
	access  accessConfig                     // the configured permissions
}

// buildCatalog turns services into resources, with no configured HTTP rules.
func buildCatalog(sources []serviceSource) (*catalog, error) {
	return buildCatalogWith(sources, catalogConfig{})
}

// buildCatalogWith turns services into resources. A service marked with the bridge's resource
// option or named by the configuration is one stream; any other becomes one stream per
// resource its standard methods serve (aip.go), and one with none is skipped: no frame can
// reach it.
func buildCatalogWith(sources []serviceSource, cfg catalogConfig) (*catalog, error) {
	c := &catalog{streams: make(map[string]*resource)}
	add := func(r *resource) error {
		if prev, ok := c.streams[r.stream]; ok {
			return fmt.Errorf("stream %q is claimed by both %s and %s", r.stream, prev.service.FullName(), r.service.FullName())
		}
		r.access = resolveAccess(r, cfg.access)
		r.modelJSON = []byte("null")
		if r.model != nil {
			r.modelJSON = appendJSONString(nil, string(r.model.FullName()))
		}
		c.streams[r.stream] = r
		return nil
	}
	for _, src := range sources {
		ropts := resourceOptions(src.desc)
		stream := src.stream
		if stream == hiddenStream {
			c.hidden = append(c.hidden, string(src.desc.FullName()))
			continue // -stream pkg.Service=-: never exposed
		}
		if stream == "" && ropts != nil {
			stream = ropts.GetStream()
		}
		if stream == "" {
			rs, err := aipResources(src, cfg)
			if err != nil {
				return nil, err
			}
			if len(rs) == 0 {
				c.hidden = append(c.hidden, string(src.desc.FullName()))
			}
			for _, r := range rs {
				if err := add(r); err != nil {
					return nil, err
				}
			}
			continue
		}
		r, err := newResource(stream, src.desc, src.conn, ropts, cfg)
		if err != nil {
			return nil, err
		}
		if err := add(r); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func resourceOptions(sd protoreflect.ServiceDescriptor) *bridgev1.ResourceOptions {
	opts := sd.Options()
	if opts == nil || !proto.HasExtension(opts, bridgev1.E_Resource) {
		return nil
	}
	ro, _ := proto.GetExtension(opts, bridgev1.E_Resource).(*bridgev1.ResourceOptions)
	return ro
}

func actionOptions(md protoreflect.MethodDescriptor) *bridgev1.ActionOptions {
	opts := md.Options()
	if opts == nil || !proto.HasExtension(opts, bridgev1.E_Action) {
		return nil
	}
	ao, _ := proto.GetExtension(opts, bridgev1.E_Action).(*bridgev1.ActionOptions)
	return ao
}

func newResource(stream string, sd protoreflect.ServiceDescriptor, conn grpc.ClientConnInterface, ropts *bridgev1.ResourceOptions, cfg catalogConfig) (*resource, error) {
	r := &resource{
		stream:      stream,
		streamJSON:  appendJSONString(nil, stream),
		service:     sd,
		conn:        conn,
		actions:     make(map[string]*action),
		permission:  ropts.GetPermission(),
		perIdentity: ropts.GetUpstreamPerIdentity(),
	}
	aipNames := !usesBridgeNames(sd)
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		aopts := actionOptions(md)
		if aopts.GetHidden() {
			continue
		}
		path := "/" + string(sd.FullName()) + "/" + string(md.Name())
		if md.IsStreamingServer() && !md.IsStreamingClient() && md.Name() == "Subscribe" {
			sub, err := newSubscribeMethod(path, md)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			r.subscribe = sub
			continue
		}
		if md.IsStreamingClient() || md.IsStreamingServer() {
			continue // only unary methods map to actions
		}
		a, err := newActionWith(path, md, aopts, httpRuleOf(md, cfg.rules), false, aipNames)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := r.addAction(a); err != nil {
			return nil, err
		}
		if r.model == nil {
			r.model = modelOf(a)
		}
	}
	addAIPAliases(r)
	if r.subscribe != nil && r.subscribe.evData != nil && r.subscribe.evData.Message() != nil {
		r.model = r.subscribe.evData.Message()
	}
	return r, nil
}

// modelOf guesses the resource message from a standard action: Retrieve's response, or
// the element of List's repeated field.
func modelOf(a *action) protoreflect.MessageDescriptor {
	switch a.kind {
	case kindRetrieve, kindCreate, kindUpdate, kindPatch:
		return a.resp
	case kindList:
		if a.items != nil {
			return a.items.Message()
		}
	}
	return nil
}

func newAction(path string, md protoreflect.MethodDescriptor, opts *bridgev1.ActionOptions) (*action, error) {
	return newActionWith(path, md, opts, nil, false, false)
}

// usesBridgeNames reports whether a service names any method after the bridge's conventions
// (Create, Retrieve, ...). Such a service keeps its other methods custom, as before AIP names
// were understood: a ListVotes beside List stays list_votes.
func usesBridgeNames(sd protoreflect.ServiceDescriptor) bool {
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		if _, ok := standardKind(string(methods.Get(i).Name())); ok {
			return true
		}
	}
	return false
}

// newActionWith maps a method to an action. The name comes from the bridge's method option,
// else the HTTP rule, else the method name (the bridge's conventions, then AIP's); aipService
// is set for services without the bridge's resource option, whose methods follow AIP, and
// aipNames when AIP's method names (GetBook) map to standard actions.
func newActionWith(path string, md protoreflect.MethodDescriptor, opts *bridgev1.ActionOptions, rule *annotations.HttpRule, aipService, aipNames bool) (*action, error) {
	a := &action{
		method:     path,
		req:        md.Input(),
		resp:       md.Output(),
		permission: opts.GetPermission(),
	}
	if rule != nil {
		m, err := parseHTTPRule(rule)
		if err != nil {
			return nil, fmt.Errorf("HTTP rule: %w", err)
		}
		a.http = m
	}
	bridgeKind, bridgeName := standardKind(string(md.Name()))
	aipKind, _, aipName := aipMethod(string(md.Name()))
	aipName = aipName && aipNames
	httpKind, httpOK := kindCustom, false
	if a.http != nil {
		httpKind, httpOK = kindOfHTTP(a.http)
	}
	// The kind comes from the most precedent rule that says one; the name from the option.
	switch {
	case httpOK:
		a.kind, a.rule = httpKind, ruleHTTP
		if httpKind == kindCustom {
			a.name = snakeCase(strings.ReplaceAll(a.http.custom, "-", "_"))
		}
	case bridgeName:
		a.kind, a.rule = bridgeKind, ruleName
	case aipName:
		a.kind, a.rule = aipKind, ruleName
	default:
		a.kind, a.rule = kindCustom, ruleName
	}
	a.aip = aipService || a.rule == ruleHTTP || (!bridgeName && aipName)
	switch {
	case opts.GetName() != "":
		a.name, a.rule = opts.GetName(), ruleOption
	case a.name != "":
	case a.kind != kindCustom && (a.aip || a.rule == ruleHTTP):
		a.name = kindNames[a.kind]
	case a.kind != kindCustom:
		a.name = strings.ToLower(string(md.Name()))
	default:
		a.name = snakeCase(string(md.Name()))
	}
	a.nameJSON = appendJSONString(nil, a.name)

	fields := a.req.Fields()
	a.pk = fields.ByName("pk")
	if a.pk != nil && (a.pk.Cardinality() == protoreflect.Repeated || !isKeyKind(a.pk.Kind())) {
		return nil, fmt.Errorf("field pk must be a singular integer or string")
	}
	if f := fields.ByName("data"); f != nil && f.Message() != nil && !f.IsList() && !f.IsMap() {
		a.data = f
	}
	if a.http != nil && a.http.body != "" && a.http.body != "*" {
		f := fields.ByName(protoreflect.Name(a.http.body))
		if f == nil || f.Message() == nil || f.IsList() || f.IsMap() {
			return nil, fmt.Errorf("HTTP rule body %q is not a message field of %s", a.http.body, a.req.FullName())
		}
		a.data = f
	}
	if a.data == nil && a.aip && (a.kind == kindCreate || a.kind == kindUpdate || a.kind == kindPatch) {
		a.data = resourceField(a.req, a.resp)
	}
	if f := fields.ByName("update_mask"); f != nil && f.Message() != nil && f.Message().FullName() == "google.protobuf.FieldMask" {
		a.mask = f
	}

	// The key: the HTTP rule's last path variable, else pk, else for AIP name or id (of the
	// resource field for update).
	switch {
	case a.http != nil && a.http.detail:
		kp, err := resolveFieldPath(a.req, a.http.key)
		if err != nil {
			return nil, fmt.Errorf("HTTP rule %s: %w", a.http.summary, err)
		}
		a.keyPath = kp
	case a.pk != nil:
		a.keyPath = []protoreflect.FieldDescriptor{a.pk}
	case a.aip && a.http == nil && a.kind != kindList && a.kind != kindCreate:
		if f := keyField(a.req); f != nil {
			a.keyPath = []protoreflect.FieldDescriptor{f}
		} else if a.data != nil {
			if f := keyField(a.data.Message()); f != nil {
				a.keyPath = []protoreflect.FieldDescriptor{a.data, f}
			}
		}
	}
	if len(a.keyPath) > 0 {
		a.pk = a.keyPath[len(a.keyPath)-1]
	}
	if len(a.keyPath) > 1 || (a.data != nil && a.data.Name() != "data") {
		a.aip = true
	}

	switch opts.GetScope() {
	case bridgev1.Scope_SCOPE_DETAIL:
		a.detail = true
	case bridgev1.Scope_SCOPE_LIST:
		a.detail = false
	default:
		if a.http != nil {
			a.detail = a.http.detail
		} else {
			a.detail = a.pk != nil
		}
	}
	if a.detail && a.pk == nil {
		return nil, fmt.Errorf("detail action %q needs a pk field in %s", a.name, a.req.FullName())
	}

	if a.kind == kindList {
		a.page = intField(fields.ByName("page"))
		a.pageSize = intField(fields.ByName("page_size"))
		if f := fields.ByName("page_token"); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
			a.pageToken = f
			a.aip = true
		}
		rf := a.resp.Fields()
		for i := 0; i < rf.Len(); i++ {
			f := rf.Get(i)
			switch {
			case f.IsList() && f.Message() != nil:
				if a.items != nil {
					return nil, fmt.Errorf("list response %s has more than one repeated message field", a.resp.FullName())
				}
				a.items = f
			case !f.IsList() && !f.IsMap() && f.Message() == nil:
				a.meta = append(a.meta, f)
			}
		}
		if a.items == nil {
			return nil, fmt.Errorf("list response %s has no repeated message field", a.resp.FullName())
		}
	}
	a.wire = usesWire(a)
	return a, nil
}

func newSubscribeMethod(path string, md protoreflect.MethodDescriptor) (*subscribeMethod, error) {
	s := &subscribeMethod{
		method: path,
		req:    md.Input(),
		event:  md.Output(),
		desc:   &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true},
	}
	rf := s.req.Fields()
	s.pk = rf.ByName("pk")
	if s.pk != nil && (s.pk.IsList() || !isKeyKind(s.pk.Kind())) {
		return nil, fmt.Errorf("field pk must be a singular integer or string")
	}
	s.actions = rf.ByName("actions")
	if s.actions == nil {
		s.actions = rf.ByName("action")
	}
	if s.actions != nil && s.actions.Kind() != protoreflect.StringKind {
		return nil, fmt.Errorf("field %s must be a string", s.actions.Name())
	}
	ef := s.event.Fields()
	s.evActon = ef.ByName("action")
	s.evPK = ef.ByName("pk")
	s.evData = ef.ByName("data")
	if s.evActon == nil || s.evActon.Kind() != protoreflect.StringKind || s.evActon.IsList() {
		return nil, fmt.Errorf("event %s needs a string field action", s.event.FullName())
	}
	if s.evData == nil || s.evData.Message() == nil || s.evData.IsList() {
		return nil, fmt.Errorf("event %s needs a message field data", s.event.FullName())
	}
	s.key = s.pk
	if s.key == nil {
		s.key = s.evPK
	}
	s.dataHasPK = s.evData.Message().Fields().ByName("pk") != nil
	s.resolveOffsets() // resume.go
	return s, nil
}

func intField(f protoreflect.FieldDescriptor) protoreflect.FieldDescriptor {
	if f == nil || f.IsList() {
		return nil
	}
	switch f.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind,
		protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return f
	}
	return nil
}

func isKeyKind(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.StringKind, protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Uint32Kind,
		protoreflect.Uint64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.Sfixed32Kind,
		protoreflect.Sfixed64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}

// snakeCase turns a method name into an action name: PublishAll → publish_all, GetHTTPInfo → get_http_info.
func snakeCase(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
