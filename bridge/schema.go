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
// The format is documented in docs/schema.md.

// WithSchema serves the JSON description of the streams at GET /schema. Default true;
// with false the path answers 404.
func WithSchema(on bool) Option {
	return optionFunc(func(o *options) { o.schemaOff = !on })
}

// Schema is the document served at /schema.
type Schema struct {
	// Streams by stream name.
	Streams map[string]*SchemaStream `json:"streams"`
	// Messages by full name: every message a shape refers to with "message".
	Messages map[string]*SchemaMessage `json:"messages"`
}

// SchemaStream is one resource.
type SchemaStream struct {
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
	Actions []*SchemaAction `json:"actions"`
	// Events are the event actions a client can subscribe to; empty without Subscribe.
	Events []string `json:"events"`
	// Subscribe describes the subscription, nil when the resource has none.
	Subscribe *SchemaSubscribe `json:"subscribe"`
}

// SchemaAction is one action of a stream.
type SchemaAction struct {
	Name string `json:"name"`
	// Kind is create, retrieve, update, patch, list, delete or custom.
	Kind string `json:"kind"`
	// Scope is "detail" (the action takes a pk) or "list".
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
	PK *SchemaType `json:"pk"`
	// PKRequired is true for detail actions.
	PKRequired bool `json:"pk_required"`
	// Data is the shape of payload.data.
	Data SchemaType `json:"data"`
	// Partial is true when only the keys sent are changed (patch).
	Partial bool `json:"partial,omitempty"`
	// Status is the response_status of a success.
	Status int `json:"status"`
	// Reply is the shape of a success reply's data.
	Reply SchemaType `json:"reply"`
	// Meta is the shape of a list reply's meta.
	Meta *SchemaType `json:"meta,omitempty"`
}

// SchemaSubscribe describes the subscribe action of a stream.
type SchemaSubscribe struct {
	Method     string `json:"method"`
	Permission string `json:"permission"`
	// EffectivePermission decides subscribe; events also need the one of retrieve.
	EffectivePermission string `json:"effective_permission"`
	// PK is the type of the optional pk filter; nil when the stream cannot filter by pk.
	PK *SchemaType `json:"pk"`
	// Events are the values data.action accepts (one or an array).
	Events []string `json:"events"`
	// Event is the shape of an event frame's payload (besides request_id).
	Event SchemaType `json:"event"`
}

// SchemaMessage is a protobuf message as JSON.
type SchemaMessage struct {
	Name   string        `json:"name"`
	Fields []SchemaField `json:"fields"`
}

// SchemaField is one field of a message or inline object.
type SchemaField struct {
	// Name is the key the bridge writes (the proto name); JSONName is accepted on input too.
	Name     string `json:"name"`
	JSONName string `json:"json_name"`
	Number   int    `json:"number,omitempty"`
	SchemaType
	// Optional is true for fields with explicit presence (proto3 optional).
	Optional bool   `json:"optional,omitempty"`
	Oneof    string `json:"oneof,omitempty"`
}

// SchemaType is the JSON shape of a value.
//
// Type is one of string, integer, number, boolean, object, array, null or any. 64-bit
// integers are strings (format int64 or uint64), as protojson writes them. An object is
// either a reference to Messages (Message set), an inline object (Fields set, possibly
// empty), a map (Map set) or a well-known type.
type SchemaType struct {
	Type   string `json:"type"`
	Format string `json:"format,omitempty"`
	// Message is the full name of a message in Schema.Messages.
	Message string `json:"message,omitempty"`
	// Enum is an enum's full name; Values are its value names.
	Enum   string   `json:"enum,omitempty"`
	Values []string `json:"values,omitempty"`
	// Items is the element of an array.
	Items *SchemaType `json:"items,omitempty"`
	// Map is set for protobuf maps (JSON objects whose keys are always strings).
	Map *SchemaMap `json:"map,omitempty"`
	// Fields of an inline object.
	Fields []SchemaField `json:"fields,omitzero"`
	// WellKnown names a google.protobuf type with a special JSON form.
	WellKnown string `json:"well_known,omitempty"`
	// Nullable is set for wrapper types, which accept null.
	Nullable bool `json:"nullable,omitempty"`
}

// SchemaMap is the key and value of a protobuf map.
type SchemaMap struct {
	Key   SchemaType `json:"key"`
	Value SchemaType `json:"value"`
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

// Schema describes the current catalog, or returns nil before discovery succeeded.
func (s *Server) Schema() *Schema {
	cat := s.catalog.Load()
	if cat == nil {
		return nil
	}
	return s.buildSchema(cat)
}

func (s *Server) buildSchema(cat *catalog) *Schema {
	b := &schemaBuilder{messages: map[string]*SchemaMessage{}}
	out := &Schema{Streams: map[string]*SchemaStream{}, Messages: b.messages}
	for _, name := range cat.names() {
		res := cat.streams[name]
		st := &SchemaStream{
			Stream:     res.stream,
			Service:    string(res.service.FullName()),
			Permission: res.permission,
			Actions:    []*SchemaAction{},
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

func (s *Server) schemaAction(b *schemaBuilder, res *resource, a *action) *SchemaAction {
	sa := &SchemaAction{
		Name:                a.name,
		Kind:                kindNames[a.kind],
		Scope:               "list",
		Detail:              a.detail,
		Method:              a.method,
		Rule:                a.rule,
		Request:             string(a.req.FullName()),
		Response:            string(a.resp.FullName()),
		Permission:          s.schemaPermission(res, a),
		PKRequired:          a.detail,
		EffectivePermission: s.effectivePermission(res, a.name),
		Partial:             a.kind == kindPatch,
		Status:              http.StatusOK,
	}
	if a.detail {
		sa.Scope = "detail"
	}
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
		sa.Reply = SchemaType{Type: "object", Fields: []SchemaField{}}
	case kindList:
		item := b.single(a.items)
		sa.Reply = SchemaType{Type: "array", Items: &item}
		sa.Pagination = "page"
		meta := SchemaType{Type: "object", Fields: []SchemaField{pageField("page"), pageField("page_size")}}
		if a.pageToken != nil {
			sa.Pagination = "cursor"
			meta.Fields = []SchemaField{pageField("page_size")}
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

func (s *Server) schemaSubscribe(b *schemaBuilder, res *resource, sm *subscribeMethod) *SchemaSubscribe {
	ss := &SchemaSubscribe{
		Method:     sm.method,
		Permission: s.schemaPermission(res, nil),
		Events:     append([]string(nil), eventActions...),
	}
	ss.EffectivePermission = s.effectivePermission(res, "subscribe")
	if key := sm.key; key != nil {
		t := b.single(key)
		ss.PK = &t
	}
	ev := SchemaType{Type: "object", Fields: []SchemaField{{
		Name: "action", JSONName: "action",
		SchemaType: SchemaType{Type: "string", Values: append([]string(nil), eventActions...)},
	}}}
	pk := SchemaField{Name: "pk", JSONName: "pk", SchemaType: SchemaType{Type: "null"}}
	if sm.evPK != nil {
		pk.SchemaType = b.single(sm.evPK)
	}
	ev.Fields = append(ev.Fields, pk,
		SchemaField{Name: "data", JSONName: "data", SchemaType: b.single(sm.evData)},
		SchemaField{Name: "model", JSONName: "model", SchemaType: SchemaType{Type: "string"}},
	)
	ss.Event = ev
	return ss
}

// pageField is page or page_size of a list's data and meta: a JSON number.
func pageField(name string) SchemaField {
	return SchemaField{Name: name, JSONName: name, SchemaType: SchemaType{Type: "integer"}}
}

// schemaBuilder collects the messages the shapes refer to.
type schemaBuilder struct {
	messages map[string]*SchemaMessage
}

// dataShape is what payload.data may hold: the request's data message when it has one, else
// the request's own fields but pk and update_mask. A list's data also takes page and page_size.
func (b *schemaBuilder) dataShape(a *action) SchemaType {
	if a.aip {
		return b.aipDataShape(a) // schema_aip.go
	}
	if a.data != nil && a.kind != kindList {
		return b.single(a.data)
	}
	obj := SchemaType{Type: "object", Fields: []SchemaField{}}
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

func (b *schemaBuilder) field(f protoreflect.FieldDescriptor) SchemaField {
	sf := SchemaField{
		Name:       string(f.Name()),
		JSONName:   f.JSONName(),
		Number:     int(f.Number()),
		SchemaType: b.typeOf(f),
		Optional:   f.HasOptionalKeyword(),
	}
	if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
		sf.Oneof = string(o.Name())
	}
	return sf
}

// typeOf is a field's shape, repeated and map included.
func (b *schemaBuilder) typeOf(f protoreflect.FieldDescriptor) SchemaType {
	if f.IsMap() {
		return SchemaType{Type: "object", Map: &SchemaMap{Key: mapKey(f.MapKey()), Value: b.single(f.MapValue())}}
	}
	t := b.single(f)
	if f.IsList() {
		return SchemaType{Type: "array", Items: &t}
	}
	return t
}

func mapKey(f protoreflect.FieldDescriptor) SchemaType {
	t := SchemaType{Type: "string"}
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
func (b *schemaBuilder) single(f protoreflect.FieldDescriptor) SchemaType {
	switch k := f.Kind(); k {
	case protoreflect.BoolKind:
		return SchemaType{Type: "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return SchemaType{Type: "integer", Format: scalarFormat(k)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return SchemaType{Type: "string", Format: scalarFormat(k)}
	case protoreflect.FloatKind:
		return SchemaType{Type: "number", Format: "float"}
	case protoreflect.DoubleKind:
		return SchemaType{Type: "number", Format: "double"}
	case protoreflect.StringKind:
		return SchemaType{Type: "string"}
	case protoreflect.BytesKind:
		return SchemaType{Type: "string", Format: "bytes"}
	case protoreflect.EnumKind:
		ed := f.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return SchemaType{Type: "null", WellKnown: string(ed.FullName())}
		}
		t := SchemaType{Type: "string", Format: "enum", Enum: string(ed.FullName())}
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			t.Values = append(t.Values, string(vals.Get(i).Name()))
		}
		return t
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return b.message(f.Message())
	}
	return SchemaType{Type: "any"}
}

// message is a reference to md, added to the messages map, or a well-known type's JSON form.
func (b *schemaBuilder) message(md protoreflect.MessageDescriptor) SchemaType {
	name := string(md.FullName())
	if t, ok := wellKnownTypes[name]; ok {
		t.WellKnown = name
		return t
	}
	if _, seen := b.messages[name]; !seen {
		m := &SchemaMessage{Name: name, Fields: []SchemaField{}}
		b.messages[name] = m // before the fields: recursive messages end here
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			m.Fields = append(m.Fields, b.field(fields.Get(i)))
		}
	}
	return SchemaType{Type: "object", Message: name}
}

// wellKnownTypes are the google.protobuf messages protojson writes in a special form.
var wellKnownTypes = map[string]SchemaType{
	"google.protobuf.Timestamp":   {Type: "string", Format: "date-time"},
	"google.protobuf.Duration":    {Type: "string", Format: "duration"},
	"google.protobuf.FieldMask":   {Type: "string", Format: "field-mask"},
	"google.protobuf.Struct":      {Type: "object"},
	"google.protobuf.Value":       {Type: "any"},
	"google.protobuf.ListValue":   {Type: "array", Items: &SchemaType{Type: "any"}},
	"google.protobuf.Any":         {Type: "object", Format: "any"},
	"google.protobuf.Empty":       {Type: "object", Fields: []SchemaField{}},
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
		body, err := json.MarshalIndent(h.srv.buildSchema(cat), "", "  ")
		if err != nil { // cannot happen: the schema is plain data
			return nil, false
		}
		h.cat, h.body = cat, append(body, '\n')
	}
	return h.body, true
}
