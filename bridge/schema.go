package bridge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The schema endpoint: GET /schema describes every stream of the current catalog in JSON,
// derived from the same descriptors the bridge uses to transcode, so it is always current.
// The format is documented in docs/schema.md; the types below are that JSON and nothing
// else, so they are unexported: Server.Schema gives Go callers the same bytes.

// WithSchema serves the JSON description of the streams at GET /schema. Default true;
// with false the path answers 404.
func WithSchema(on bool) Option {
	return optionFunc(func(o *options) { o.schemaOff = !on })
}

// schemaDoc is the document served at /schema.
type schemaDoc struct {
	// Streams by stream name.
	Streams map[string]*schemaStream `json:"streams"`
	// Messages by full name: every message a shape refers to with "message".
	Messages map[string]*schemaMessage `json:"messages"`
}

// schemaStream is one resource.
type schemaStream struct {
	Stream  string `json:"stream"`
	Service string `json:"service"`
	// Model is the resource message's full name (the "model" of events), "" when unknown.
	Model string `json:"model"`
	// Permission is the resource's permission as configured ("" means the bridge's default).
	Permission string `json:"permission"`
	// EffectivePermission decides action names the resource does not list, as resolved from
	// the configured policy, the proto options and the defaults.
	EffectivePermission string `json:"effective_permission"`
	// Actions in the order of the service's methods.
	Actions []*schemaAction `json:"actions"`
	// Events are the event actions a client can subscribe to; empty without Subscribe.
	Events []string `json:"events"`
	// Subscribe describes the subscription, nil when the resource has none.
	Subscribe *schemaSubscribe `json:"subscribe"`
}

// schemaAction is one action of a stream.
type schemaAction struct {
	Name string `json:"name"`
	// Kind is create, retrieve, update, patch, list, delete or custom.
	Kind string `json:"kind"`
	// Scope ("detail" or "list"), Detail and PKRequired are one bit, whether the action
	// takes a pk, under the three keys clients read; setDetail sets them together.
	Scope  string `json:"scope"`
	Detail bool   `json:"detail"`
	// Method is the gRPC method path, e.g. /polls.v1.QuestionService/Create.
	Method string `json:"method"`
	// Rule is what decided the action: "option" (the bridge's method option), "http" (the
	// method's HTTP rule) or "name" (the method's name), in that order of precedence.
	Rule string `json:"rule"`
	// HTTP is the method's HTTP rule, e.g. "PATCH /v1/{book.name=shelves/*/books/*}", when it has one.
	HTTP string `json:"http,omitempty"`
	// Pagination of a list: "page" (data.page and data.page_size) or "cursor"
	// (data.page_token and data.page_size; meta.next_page_token).
	Pagination string `json:"pagination,omitempty"`
	Request    string `json:"request"`
	Response   string `json:"response"`
	// Permission is the action's own permission, else the resource's ("" means the default).
	Permission string `json:"permission"`
	// EffectivePermission is the permission that decides the action, as resolved from the
	// configured policy, the proto options and the defaults, e.g. "allow_any".
	EffectivePermission string `json:"effective_permission"`
	// PK is the type of payload.pk; nil when the action takes none.
	PK         *schemaType `json:"pk"`
	PKRequired bool        `json:"pk_required"`
	// Data is the shape of payload.data.
	Data schemaType `json:"data"`
	// Partial is true when only the keys sent are changed (patch).
	Partial bool `json:"partial,omitempty"`
	// Status is the response_status of a success.
	Status int `json:"status"`
	// Reply is the shape of a success reply's data.
	Reply schemaType `json:"reply"`
	// Meta is the shape of a list reply's meta.
	Meta *schemaType `json:"meta,omitempty"`
}

// schemaSubscribe describes the subscribe action of a stream.
type schemaSubscribe struct {
	Method     string `json:"method"`
	Permission string `json:"permission"`
	// EffectivePermission decides subscribe; events also need the one of retrieve.
	EffectivePermission string `json:"effective_permission"`
	// PK is the type of the optional pk filter; nil when the stream cannot filter by pk.
	PK *schemaType `json:"pk"`
	// Events are the values data.action accepts (one or an array).
	Events []string `json:"events"`
	// Event is the shape of an event frame's payload (besides request_id).
	Event schemaType `json:"event"`
}

// schemaMessage is a protobuf message as JSON.
type schemaMessage struct {
	Name   string        `json:"name"`
	Fields []schemaField `json:"fields"`
}

// schemaField is one field of a message or inline object.
type schemaField struct {
	// Name is the key the bridge writes (the proto name); JSONName is accepted on input too.
	Name     string `json:"name"`
	JSONName string `json:"json_name"`
	Number   int    `json:"number,omitempty"`
	schemaType
	// Optional is true for fields with explicit presence (proto3 optional).
	Optional bool   `json:"optional,omitempty"`
	Oneof    string `json:"oneof,omitempty"`
}

// schemaType is the JSON shape of a value.
//
// Type is one of string, integer, number, boolean, object, array, null or any. 64-bit
// integers are strings (format int64 or uint64), as protojson writes them. An object is
// either a reference to Messages (Message set), an inline object (Fields set, possibly
// empty), a map (Map set) or a well-known type.
type schemaType struct {
	Type   string `json:"type"`
	Format string `json:"format,omitempty"`
	// Message is the full name of a message in schemaDoc.Messages.
	Message string `json:"message,omitempty"`
	// Enum is an enum's full name; Values are its value names.
	Enum   string   `json:"enum,omitempty"`
	Values []string `json:"values,omitempty"`
	// Items is the element of an array.
	Items *schemaType `json:"items,omitempty"`
	// Map is set for protobuf maps (JSON objects whose keys are always strings).
	Map *schemaMap `json:"map,omitempty"`
	// Fields of an inline object.
	Fields []schemaField `json:"fields,omitzero"`
	// WellKnown names a google.protobuf type with a special JSON form.
	WellKnown string `json:"well_known,omitempty"`
	// Nullable is set for wrapper types, which accept null.
	Nullable bool `json:"nullable,omitempty"`
}

// schemaMap is the key and value of a protobuf map.
type schemaMap struct {
	Key   schemaType `json:"key"`
	Value schemaType `json:"value"`
}

// schemaPermission is the "permission" the schema shows for an action (a nil for subscribe):
// the strings of the proto options as the catalog holds them, the action's own overriding
// the resource's, "" meaning the bridge's configured default.
func (s *Server) schemaPermission(res *resource, a *action) string {
	if a != nil && a.permission != "" {
		return a.permission
	}
	return res.permission
}

// effectivePermission is the "effective_permission" the schema shows for an action name
// ("" for the stream's default): what the permission system resolved (permission.go).
// HOOK(permissions): the schema and the debugger page show whatever this returns.
func (s *Server) effectivePermission(res *resource, action string) string {
	acc := res.access
	if action == "" {
		return permissionText(acc.stream)
	}
	return permissionText(acc.of(action))
}

// permissionText is a permission in the permission syntax; "custom" for one of the
// embedding program's own (WithPermissions, a PermissionFunc in a Policy).
func permissionText(p Permission) string {
	switch p := p.(type) {
	case builtin:
		return p.String()
	case allOf:
		parts := make([]string, len(p))
		for i, q := range p {
			parts[i] = permissionText(q)
		}
		return strings.Join(parts, " ")
	case fmt.Stringer:
		return p.String()
	}
	return "custom"
}

// Schema returns the JSON document GET /schema serves (docs/schema.md), whether or not
// WithSchema serves it, or nil before discovery succeeded.
func (s *Server) Schema() []byte {
	cat := s.catalog.Load()
	if cat == nil {
		return nil
	}
	return encodeSchema(s.buildSchema(cat))
}

// encodeSchema is the body of /schema.
func encodeSchema(doc *schemaDoc) []byte {
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err) // cannot happen: the schema is plain data
	}
	return append(body, '\n')
}

func (s *Server) buildSchema(cat *catalog) *schemaDoc {
	b := &schemaBuilder{messages: map[string]*schemaMessage{}}
	out := &schemaDoc{Streams: map[string]*schemaStream{}, Messages: b.messages}
	for _, name := range cat.names() {
		res := cat.streams[name]
		st := &schemaStream{
			Stream:     res.stream,
			Service:    string(res.service.FullName()),
			Permission: res.permission,
			Actions:    []*schemaAction{},
			Events:     []string{},
		}
		st.EffectivePermission = s.effectivePermission(res, "")
		if res.model != nil {
			st.Model = string(res.model.FullName())
			b.message(res.model)
		}
		// The catalog's map has no order; the service's methods do.
		methods := res.service.Methods()
		// One AIP Update method may serve two actions (update and patch): by kind then.
		byMethod := make(map[string][]*action, len(res.actions))
		for _, a := range res.actions {
			byMethod[a.method] = append(byMethod[a.method], a)
		}
		for i := 0; i < methods.Len(); i++ {
			path := "/" + string(res.service.FullName()) + "/" + string(methods.Get(i).Name())
			as := byMethod[path]
			slices.SortFunc(as, func(x, y *action) int { return cmp.Compare(x.kind, y.kind) })
			for _, a := range as {
				st.Actions = append(st.Actions, s.schemaAction(b, res, a))
			}
		}
		if sm := res.subscribe; sm != nil {
			st.Events = append(st.Events, eventActions...)
			st.Subscribe = s.schemaSubscribe(b, res, sm)
		}
		out.Streams[name] = st
	}
	return out
}

func (s *Server) schemaAction(b *schemaBuilder, res *resource, a *action) *schemaAction {
	sa := &schemaAction{
		Name:                a.name,
		Kind:                kindNames[a.kind],
		Method:              a.method,
		Rule:                a.rule,
		Request:             string(a.req.FullName()),
		Response:            string(a.resp.FullName()),
		Permission:          s.schemaPermission(res, a),
		EffectivePermission: s.effectivePermission(res, a.name),
		Partial:             a.kind == kindPatch,
		Status:              http.StatusOK,
	}
	sa.setDetail(a.detail)
	if a.http != nil {
		sa.HTTP = a.http.summary
	}
	if a.kind == kindCreate {
		sa.Status = http.StatusCreated
	}
	if a.pk != nil {
		t := b.single(a.pk)
		sa.PK = &t
	}
	sa.Data = b.dataShape(a)
	switch a.kind {
	case kindDelete:
		sa.Reply = schemaType{Type: "object", Fields: []schemaField{}}
	case kindList:
		item := b.single(a.items)
		sa.Reply = schemaType{Type: "array", Items: &item}
		sa.Pagination = "page"
		meta := schemaType{Type: "object", Fields: []schemaField{pageField("page"), pageField("page_size")}}
		if a.pageToken != nil {
			sa.Pagination = "cursor"
			meta.Fields = []schemaField{pageField("page_size")}
		}
		for _, f := range a.meta {
			meta.Fields = append(meta.Fields, b.field(f))
		}
		sa.Meta = &meta
	default:
		sa.Reply = b.message(a.resp)
	}
	return sa
}

// setDetail writes whether the action takes a pk under its three keys.
func (sa *schemaAction) setDetail(detail bool) {
	sa.Scope, sa.Detail, sa.PKRequired = "list", detail, detail
	if detail {
		sa.Scope = "detail"
	}
}

func (s *Server) schemaSubscribe(b *schemaBuilder, res *resource, sm *subscribeMethod) *schemaSubscribe {
	ss := &schemaSubscribe{
		Method:     sm.method,
		Permission: s.schemaPermission(res, nil),
		Events:     append([]string(nil), eventActions...),
	}
	ss.EffectivePermission = s.effectivePermission(res, "subscribe")
	if key := sm.key; key != nil {
		t := b.single(key)
		ss.PK = &t
	}
	ev := schemaType{Type: "object", Fields: []schemaField{{
		Name: "action", JSONName: "action",
		schemaType: schemaType{Type: "string", Values: append([]string(nil), eventActions...)},
	}}}
	pk := schemaField{Name: "pk", JSONName: "pk", schemaType: schemaType{Type: "null"}}
	if sm.evPK != nil {
		pk.schemaType = b.single(sm.evPK)
	}
	ev.Fields = append(ev.Fields, pk,
		schemaField{Name: "data", JSONName: "data", schemaType: b.single(sm.evData)},
		schemaField{Name: "model", JSONName: "model", schemaType: schemaType{Type: "string"}},
	)
	ss.Event = ev
	return ss
}

// pageField is page or page_size of a list's data and meta: a JSON number.
func pageField(name string) schemaField {
	return schemaField{Name: name, JSONName: name, schemaType: schemaType{Type: "integer"}}
}

// schemaBuilder collects the messages the shapes refer to.
type schemaBuilder struct {
	messages map[string]*schemaMessage
}

// dataShape is what payload.data may hold: the request's data message when it has one, else
// the request's own fields but pk and update_mask. A list's data also takes page and page_size.
func (b *schemaBuilder) dataShape(a *action) schemaType {
	if a.aip {
		return b.aipDataShape(a) // schema_aip.go
	}
	if a.data != nil && a.kind != kindList {
		return b.single(a.data)
	}
	obj := schemaType{Type: "object", Fields: []schemaField{}}
	if a.kind == kindList {
		obj.Fields = append(obj.Fields, pageField("page"), pageField("page_size"))
	}
	var fields protoreflect.FieldDescriptors
	if a.data != nil {
		fields = a.data.Message().Fields()
	} else {
		fields = a.req.Fields()
	}
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if a.data == nil && (f == a.pk || f == a.mask) {
			continue
		}
		if a.kind == kindList && (f.Name() == "page" || f.Name() == "page_size") {
			continue // read by the bridge for pagination
		}
		obj.Fields = append(obj.Fields, b.field(f))
	}
	return obj
}

func (b *schemaBuilder) field(f protoreflect.FieldDescriptor) schemaField {
	sf := schemaField{
		Name:       string(f.Name()),
		JSONName:   f.JSONName(),
		Number:     int(f.Number()),
		schemaType: b.typeOf(f),
		Optional:   f.HasOptionalKeyword(),
	}
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		sf.Oneof = string(o.Name())
	}
	return sf
}

// typeOf is a field's shape, repeated and map included.
func (b *schemaBuilder) typeOf(f protoreflect.FieldDescriptor) schemaType {
	if f.IsMap() {
		return schemaType{Type: "object", Map: &schemaMap{Key: mapKey(f.MapKey()), Value: b.single(f.MapValue())}}
	}
	t := b.single(f)
	if f.IsList() {
		return schemaType{Type: "array", Items: &t}
	}
	return t
}

func mapKey(f protoreflect.FieldDescriptor) schemaType {
	t := schemaType{Type: "string"}
	switch f.Kind() {
	case protoreflect.StringKind:
	case protoreflect.BoolKind:
		t.Format = "boolean"
	default:
		t.Format = scalarFormat(f.Kind())
	}
	return t
}

func scalarFormat(k protoreflect.Kind) string {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "int32"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "uint32"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "int64"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "uint64"
	}
	return ""
}

// single is the shape of one value of a field, ignoring repeated.
func (b *schemaBuilder) single(f protoreflect.FieldDescriptor) schemaType {
	switch k := f.Kind(); k {
	case protoreflect.BoolKind:
		return schemaType{Type: "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return schemaType{Type: "integer", Format: scalarFormat(k)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return schemaType{Type: "string", Format: scalarFormat(k)}
	case protoreflect.FloatKind:
		return schemaType{Type: "number", Format: "float"}
	case protoreflect.DoubleKind:
		return schemaType{Type: "number", Format: "double"}
	case protoreflect.StringKind:
		return schemaType{Type: "string"}
	case protoreflect.BytesKind:
		return schemaType{Type: "string", Format: "bytes"}
	case protoreflect.EnumKind:
		ed := f.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return schemaType{Type: "null", WellKnown: string(ed.FullName())}
		}
		t := schemaType{Type: "string", Format: "enum", Enum: string(ed.FullName())}
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			t.Values = append(t.Values, string(vals.Get(i).Name()))
		}
		return t
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return b.message(f.Message())
	}
	return schemaType{Type: "any"}
}

// message is a reference to md, added to the messages map, or a well-known type's JSON form.
func (b *schemaBuilder) message(md protoreflect.MessageDescriptor) schemaType {
	name := string(md.FullName())
	if t, ok := wellKnownTypes[name]; ok {
		t.WellKnown = name
		return t
	}
	if _, seen := b.messages[name]; !seen {
		m := &schemaMessage{Name: name, Fields: []schemaField{}}
		b.messages[name] = m // before the fields: recursive messages end here
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			m.Fields = append(m.Fields, b.field(fields.Get(i)))
		}
	}
	return schemaType{Type: "object", Message: name}
}

// wellKnownTypes are the google.protobuf messages protojson writes in a special form.
var wellKnownTypes = map[string]schemaType{
	"google.protobuf.Timestamp":   {Type: "string", Format: "date-time"},
	"google.protobuf.Duration":    {Type: "string", Format: "duration"},
	"google.protobuf.FieldMask":   {Type: "string", Format: "field-mask"},
	"google.protobuf.Struct":      {Type: "object"},
	"google.protobuf.Value":       {Type: "any"},
	"google.protobuf.ListValue":   {Type: "array", Items: &schemaType{Type: "any"}},
	"google.protobuf.Any":         {Type: "object", Format: "any"},
	"google.protobuf.Empty":       {Type: "object", Fields: []schemaField{}},
	"google.protobuf.BoolValue":   {Type: "boolean", Nullable: true},
	"google.protobuf.StringValue": {Type: "string", Nullable: true},
	"google.protobuf.BytesValue":  {Type: "string", Format: "bytes", Nullable: true},
	"google.protobuf.Int32Value":  {Type: "integer", Format: "int32", Nullable: true},
	"google.protobuf.UInt32Value": {Type: "integer", Format: "uint32", Nullable: true},
	"google.protobuf.Int64Value":  {Type: "string", Format: "int64", Nullable: true},
	"google.protobuf.UInt64Value": {Type: "string", Format: "uint64", Nullable: true},
	"google.protobuf.FloatValue":  {Type: "number", Format: "float", Nullable: true},
	"google.protobuf.DoubleValue": {Type: "number", Format: "double", Nullable: true},
}

// schemaHandler serves /schema, encoding each catalog once.
type schemaHandler struct {
	srv *Server

	mu   sync.Mutex
	cat  *catalog
	body []byte
}

func (h *schemaHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	body, ok := h.encoded()
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"detail":"discovering backends"}` + "\n"))
		return
	}
	_, _ = w.Write(body)
}

func (h *schemaHandler) encoded() ([]byte, bool) {
	cat := h.srv.catalog.Load()
	if cat == nil {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cat != cat {
		h.cat, h.body = cat, encodeSchema(h.srv.buildSchema(cat))
	}
	return h.body, true
}
