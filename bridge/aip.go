package bridge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Services written in Google's resource-oriented style (AIP-131 to AIP-136) work through
// the bridge unchanged: their methods map to actions by HTTP rule or by AIP's method names,
// and a service holding several resources becomes one stream per resource
// (docs/conventions.md).

// hiddenStream, as the stream of -stream pkg.Service=- or pkg.Message=-, hides the service or
// resource: the way to keep a service the bridge would expose unreachable without editing it.
const hiddenStream = "-"

// Rules that decide an action, as /schema shows them.
const (
	ruleOption = "option" // the bridge's (bridge.v1.action) method option
	ruleHTTP   = "http"   // a google.api.http rule, annotation or -http-rules file
	ruleName   = "name"   // the method's name
)

var (
	errNoEvents = newError(http.StatusNotImplemented,
		"This stream has no events: its service has no Subscribe method following the bridge's event convention.")
	errCursorPage = &errorReply{Status: http.StatusBadRequest, Fields: []fieldError{{Field: "page", Messages: []string{
		"This list is paginated by cursor: send page_token (the previous reply's meta.next_page_token) instead of page.",
	}}}}
	errPageToken = &errorReply{Status: http.StatusBadRequest, Fields: []fieldError{{Field: "page_token", Messages: []string{"Not a valid string."}}}}
)

// aipPrefixes are AIP's standard method names: the prefix, then the resource.
var aipPrefixes = []struct {
	prefix string
	kind   actionKind
}{
	{"Get", kindRetrieve},
	{"List", kindList},
	{"Create", kindCreate},
	{"Update", kindUpdate},
	{"Delete", kindDelete},
}

// aipMethod reads an AIP standard method name: GetBook → retrieve, "Book".
func aipMethod(name string) (actionKind, string, bool) {
	for _, p := range aipPrefixes {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if ok && rest != "" && unicode.IsUpper(rune(rest[0])) {
			return p.kind, rest, true
		}
	}
	return kindCustom, "", false
}

// kindOfHTTP maps an HTTP rule to an action kind; ok is false when the rule says nothing
// (a POST to one resource without a custom verb, a custom HTTP method).
func kindOfHTTP(m *httpMapping) (actionKind, bool) {
	if m.custom != "" {
		return kindCustom, true
	}
	switch m.verb {
	case http.MethodGet:
		if m.detail {
			return kindRetrieve, true
		}
		return kindList, true
	case http.MethodPost:
		if !m.detail {
			return kindCreate, true
		}
	case http.MethodPut:
		return kindUpdate, true
	case http.MethodPatch:
		return kindPatch, true
	case http.MethodDelete:
		return kindDelete, true
	}
	return kindCustom, false
}

// resolveFieldPath finds a dotted field path (book.name) in a message: every field but the
// last a singular message, the last a key.
func resolveFieldPath(md protoreflect.MessageDescriptor, path []string) ([]protoreflect.FieldDescriptor, error) {
	var out []protoreflect.FieldDescriptor
	for i, name := range path {
		f := md.Fields().ByName(protoreflect.Name(name))
		if f == nil {
			return nil, fmt.Errorf("%s has no field %s", md.FullName(), name)
		}
		out = append(out, f)
		if i == len(path)-1 {
			if f.IsList() || f.IsMap() || !isKeyKind(f.Kind()) {
				return nil, fmt.Errorf("key field %s must be a singular integer or string", strings.Join(path, "."))
			}
			break
		}
		if f.Message() == nil || f.IsList() || f.IsMap() {
			return nil, fmt.Errorf("%s of %s is not a message", name, strings.Join(path, "."))
		}
		md = f.Message()
	}
	return out, nil
}

// keyField is a name, id or pk field usable as a key, nil when md has none.
func keyField(md protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	for _, n := range []protoreflect.Name{"name", "id", "pk"} {
		if f := md.Fields().ByName(n); f != nil && !f.IsList() && !f.IsMap() && isKeyKind(f.Kind()) {
			return f
		}
	}
	return nil
}

// resourceField is the request's singular field of the response's type (CreateBookRequest.book).
func resourceField(req, resp protoreflect.MessageDescriptor) protoreflect.FieldDescriptor {
	var found protoreflect.FieldDescriptor
	fields := req.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.Message() != nil && !f.IsList() && !f.IsMap() && f.Message().FullName() == resp.FullName() {
			if found != nil {
				return nil // ambiguous
			}
			found = f
		}
	}
	return found
}

// aipResources splits a service without the bridge's resource option into one resource per
// resource message its methods serve. It returns nil when no method maps to a standard
// action by HTTP rule or AIP name: such a service is not a resource service, and stays hidden.
func aipResources(src serviceSource, cfg catalogConfig) ([]*resource, error) {
	sd := src.desc
	type mapped struct {
		md protoreflect.MethodDescriptor
		a  *action
	}
	var unary []mapped
	var streams []protoreflect.MethodDescriptor
	standard := false
	aipNames := !usesBridgeNames(sd)
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		aopts := actionOptions(md)
		if aopts.GetHidden() {
			continue
		}
		if md.IsStreamingServer() && !md.IsStreamingClient() {
			streams = append(streams, md)
			continue
		}
		if md.IsStreamingClient() || md.IsStreamingServer() {
			continue
		}
		path := "/" + string(sd.FullName()) + "/" + string(md.Name())
		a, err := newActionWith(path, md, aopts, httpRuleOf(md, cfg.rules), true, aipNames)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		// Only AIP names and HTTP rules expose a service unasked: one named after the bridge's
		// conventions but without its option stays hidden, as it always was (-stream exposes it).
		standard = standard || (a.kind != kindCustom && (a.rule == ruleHTTP || aipNames))
		unary = append(unary, mapped{md, a})
	}
	if !standard {
		return nil, nil
	}

	// The resource messages: what Get, Create, Update return and List lists.
	var models []protoreflect.MessageDescriptor
	addModel := func(m protoreflect.MessageDescriptor) {
		if m != nil && !slices.ContainsFunc(models, func(x protoreflect.MessageDescriptor) bool { return x.FullName() == m.FullName() }) {
			models = append(models, m)
		}
	}
	for _, u := range unary {
		switch u.a.kind {
		case kindList:
			addModel(u.a.items.Message())
		case kindRetrieve, kindCreate, kindUpdate, kindPatch:
			addModel(u.a.resp)
		}
	}
	isModel := func(m protoreflect.MessageDescriptor) protoreflect.MessageDescriptor {
		for _, x := range models {
			if x.FullName() == m.FullName() {
				return x
			}
		}
		return nil
	}
	plural := map[protoreflect.FullName]string{}
	for _, m := range models {
		plural[m.FullName()] = streamNameOf(m, sd, cfg)
	}
	modelOfAction := func(u mapped) protoreflect.MessageDescriptor {
		if u.a.kind == kindList {
			return u.a.items.Message()
		}
		if m := isModel(u.a.resp); m != nil {
			return m
		}
		// DeleteBook, PublishBook: the longest resource name the method name ends with.
		var best protoreflect.MessageDescriptor
		for _, m := range models {
			if strings.HasSuffix(string(u.md.Name()), string(m.Name())) && (best == nil || len(m.Name()) > len(best.Name())) {
				best = m
			}
		}
		if best != nil {
			return best
		}
		if u.a.http != nil {
			for _, m := range models {
				if plural[m.FullName()] == u.a.http.coll {
					return m
				}
			}
		}
		if len(models) == 1 {
			return models[0]
		}
		return nil
	}

	byModel := map[protoreflect.FullName]*resource{}
	var out []*resource
	for _, u := range unary {
		m := modelOfAction(u)
		if m == nil || plural[m.FullName()] == hiddenStream {
			continue // a method of no resource, or of a hidden one: not reachable
		}
		r := byModel[m.FullName()]
		if r == nil {
			stream := plural[m.FullName()]
			r = &resource{
				stream:     stream,
				streamJSON: appendJSONString(nil, stream),
				service:    sd,
				conn:       src.conn,
				actions:    map[string]*action{},
				model:      m,
			}
			byModel[m.FullName()] = r
			out = append(out, r)
		}
		if err := r.addAction(u.a); err != nil {
			return nil, err
		}
	}
	for _, r := range out {
		addAIPAliases(r)
	}
	// Events: a server-streaming Subscribe method following the bridge's event convention,
	// whose event data is one of the resources.
	for _, md := range streams {
		if !strings.HasPrefix(string(md.Name()), "Subscribe") {
			continue
		}
		path := "/" + string(sd.FullName()) + "/" + string(md.Name())
		sub, err := newSubscribeMethod(path, md)
		if err != nil {
			continue // not the event convention: the resource has no events
		}
		sub.desc.StreamName = string(md.Name())
		if r := byModel[sub.evData.Message().FullName()]; r != nil && r.subscribe == nil {
			r.subscribe = sub
		}
	}
	return out, nil
}

// addAction adds an action, refusing reserved and duplicate names.
func (r *resource) addAction(a *action) error {
	if a.name == "subscribe" || a.name == "unsubscribe" {
		return fmt.Errorf("%s: action name %q is reserved", a.method, a.name)
	}
	if prev, dup := r.actions[a.name]; dup {
		return fmt.Errorf("%s: %s and %s both map to action %q of stream %q", a.method, prev.method, a.method, a.name, r.stream)
	}
	r.actions[a.name] = a
	return nil
}

// addAIPAliases lets one AIP Update method with an update_mask serve both update (mask "*",
// a full replacement) and patch (the keys sent), unless another method holds the other.
func addAIPAliases(r *resource) {
	for _, a := range r.actions {
		if !a.aip || a.mask == nil || (a.kind != kindUpdate && a.kind != kindPatch) {
			continue
		}
		other, name := kindPatch, "patch"
		if a.kind == kindPatch {
			other, name = kindUpdate, "update"
		}
		if _, taken := r.actions[name]; taken || a.name != kindNames[a.kind] {
			continue
		}
		alias := *a
		alias.kind, alias.name, alias.nameJSON = other, name, appendJSONString(nil, name)
		r.actions[name] = &alias
	}
}

// streamNameOf names a resource's stream: the configuration (-stream pkg.Message=name), else
// google.api.resource's plural, else the plural of AIP's List method, else the message name
// in snake case with an s.
func streamNameOf(m protoreflect.MessageDescriptor, sd protoreflect.ServiceDescriptor, cfg catalogConfig) string {
	if s := cfg.streams[string(m.FullName())]; s != "" {
		return s
	}
	if opts, ok := m.Options().(*descriptorpb.MessageOptions); ok && opts != nil {
		if rd, _ := extensionOf(opts, annotations.E_Resource).(*annotations.ResourceDescriptor); rd.GetPlural() != "" {
			return snakeCase(rd.GetPlural())
		}
	}
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		kind, plural, ok := aipMethod(string(md.Name()))
		if !ok || kind != kindList || md.IsStreamingClient() || md.IsStreamingServer() {
			continue
		}
		items := md.Output().Fields()
		for j := 0; j < items.Len(); j++ {
			f := items.Get(j)
			if f.IsList() && f.Message() != nil && f.Message().FullName() == m.FullName() {
				return snakeCase(plural)
			}
		}
	}
	name := snakeCase(string(m.Name()))
	switch {
	case strings.HasSuffix(name, "s"), strings.HasSuffix(name, "x"), strings.HasSuffix(name, "ch"), strings.HasSuffix(name, "sh"):
		return name + "es"
	case strings.HasSuffix(name, "y") && len(name) > 1 && !strings.ContainsRune("aeiou", rune(name[len(name)-2])):
		return name[:len(name)-1] + "ies"
	}
	return name + "s"
}

// isAIPService reports whether a service without the bridge's resource option has methods
// that map to standard actions, so that discovery from a descriptor set keeps it.
func isAIPService(sd protoreflect.ServiceDescriptor, rules map[string]*annotations.HttpRule) bool {
	rs, err := aipResources(serviceSource{desc: sd}, catalogConfig{rules: rules})
	return err != nil || len(rs) > 0 // an error is reported by buildCatalog
}

// servesResource reports whether name is the full name of a resource message of the
// service, so that -stream may rename that resource's stream.
func servesResource(sd protoreflect.ServiceDescriptor, name string, rules map[string]*annotations.HttpRule) bool {
	rs, _ := aipResources(serviceSource{desc: sd}, catalogConfig{rules: rules})
	for _, r := range rs {
		if string(r.model.FullName()) == name {
			return true
		}
	}
	return false
}

// buildAIPRequest builds the request of an action mapped by HTTP rule or AIP name. data's
// keys fill the resource field (book) when it has them, and the request's other fields
// (parent, book_id, validate_only, force) otherwise; pk fills the key field, also inside the
// resource field (book.name).
func buildAIPRequest(rb *reqBuilder, a *action, r *request, pd pageDefaults) (page, *errorReply) {
	var pg page
	if r.data != nil && r.data[0] != '{' {
		return pg, errDataNotObject
	}
	var token []byte
	var skip func(k []byte) bool
	if a.kind == kindList {
		var e *errorReply
		if a.pageToken != nil {
			pg, token, e = readCursor(r, pd)
			skip = isCursorKey
		} else {
			pg, e = readPage(r, pd)
			skip = isPageKey
		}
		if e != nil {
			return pg, e
		}
	}

	_, members := dataFor(r, len(a.keyPath) > 0, skip, func(k []byte) bool {
		return (a.data != nil && fieldByKey(a.data.Message().Fields(), k) != nil) || fieldByKey(a.req.Fields(), k) != nil
	})
	var body, rest []byte
	var bodyKeys []protoreflect.FieldDescriptor
	var unknown *errorReply
	for _, m := range members {
		k, v := m.key, m.value
		if a.data != nil {
			if f := fieldByKey(a.data.Message().Fields(), k); f != nil {
				body = appendMember(body, k, v)
				bodyKeys = append(bodyKeys, f)
				continue
			}
		}
		if f := fieldByKey(a.req.Fields(), k); f != nil && f != a.data && f != a.mask {
			rest = appendMember(rest, k, v)
			if a.data == nil {
				bodyKeys = append(bodyKeys, f)
			}
			continue
		}
		if unknown == nil {
			unknown = &errorReply{Status: http.StatusBadRequest}
		}
		name, _ := jsonString(k)
		unknown.Fields = append(unknown.Fields, fieldError{Field: name, Messages: []string{"Unknown field."}})
	}
	if unknown != nil {
		return pg, unknown
	}
	if rest != nil {
		rest = append(rest, '}')
		if e := rb.unmarshal(nil, rest); e != nil {
			return pg, e
		}
	}
	if a.data != nil && (body != nil || a.kind == kindCreate || a.kind == kindUpdate || a.kind == kindPatch) {
		if body != nil {
			body = append(body, '}')
		}
		if e := rb.unmarshal(a.data, body); e != nil {
			return pg, e
		}
	}

	if len(a.keyPath) > 0 {
		if e := rb.setKey(a.keyPath[:len(a.keyPath)-1], a, r.pk); e != nil {
			return pg, e
		}
	}

	if a.mask != nil && (a.kind == kindPatch || a.kind == kindUpdate) {
		rb.beginMask(a.mask)
		if a.kind == kindUpdate {
			rb.addPath("*")
		} else {
			for _, f := range bodyKeys {
				if len(a.keyPath) > 0 && f == a.keyPath[len(a.keyPath)-1] {
					continue // the key names the resource; it is not changed
				}
				rb.addPath(string(f.Name()))
			}
		}
		rb.endMask()
	}

	if a.kind == kindList {
		if a.pageToken != nil {
			if token != nil {
				rb.set(nil, a.pageToken, protoreflect.ValueOfString(string(token)))
			}
		} else if a.page != nil {
			rb.set(nil, a.page, intValue(a.page, pg.number))
		}
		if a.pageSize != nil {
			rb.set(nil, a.pageSize, intValue(a.pageSize, pg.size))
		}
	}
	return pg, nil
}

// readCursor reads a cursor-paginated list's data.page_size and data.page_token; the request
// message gets data without them (isCursorKey). data.page is refused: it would be silently
// ignored.
func readCursor(r *request, pd pageDefaults) (pg page, token []byte, e *errorReply) {
	pg = page{size: pd.size}
	for _, m := range r.members {
		k, v := m.key, m.value
		switch {
		case keyIs(k, "page"):
			if e == nil {
				e = errCursorPage
			}
		case keyIs(k, "page_size") || keyIs(k, "pageSize"):
			if isNull(v) {
				continue
			}
			n, ok := jsonInt(v)
			if !ok || n < 1 {
				if e == nil {
					e = errInvalidPageSz
				}
				continue
			}
			pg.size = min(n, pd.max)
		case keyIs(k, "page_token") || keyIs(k, "pageToken"):
			if isNull(v) {
				continue
			}
			t, ok := jsonString(v)
			if !ok {
				if e == nil {
					e = errPageToken
				}
				continue
			}
			token = []byte(t)
		}
	}
	return pg, token, e
}

func isCursorKey(k []byte) bool {
	return isPageKey(k) || keyIs(k, "page_token") || keyIs(k, "pageToken")
}
