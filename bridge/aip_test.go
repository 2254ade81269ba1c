package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/emptypb"

	bridgev1 "github.com/wsbridge/wsbridge/proto/bridge/v1"
)

// widgetFile is an AIP-style service whose descriptors carry google.api.http and
// google.api.resource, as a service generated with googleapis imports has them. Methods
// without a rule map by name.
func widgetFile(t *testing.T) *descriptorpb.FileDescriptorProto {
	t.Helper()
	str := proto.String
	field := func(n int32, name string, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: str(name), Number: proto.Int32(n), Type: typ.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: str(name)}
		if typeName != "" {
			f.TypeName = str(typeName)
		}
		return f
	}
	const (
		tString = descriptorpb.FieldDescriptorProto_TYPE_STRING
		tInt    = descriptorpb.FieldDescriptorProto_TYPE_INT32
		tMsg    = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	httpOpt := func(r *annotations.HttpRule) *descriptorpb.MethodOptions {
		o := &descriptorpb.MethodOptions{}
		proto.SetExtension(o, annotations.E_Http, r)
		return o
	}
	widgetOpts := &descriptorpb.MessageOptions{}
	proto.SetExtension(widgetOpts, annotations.E_Resource, &annotations.ResourceDescriptor{
		Type: "example.com/Widget", Pattern: []string{"factories/{factory}/widgets/{widget}"}, Plural: "gizmos",
	})
	renamed := &descriptorpb.MethodOptions{}
	proto.SetExtension(renamed, annotations.E_Http, &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/{name=factories/*/widgets/*}:polish"}})
	proto.SetExtension(renamed, bridgev1.E_Action, &bridgev1.ActionOptions{Name: "shine"})
	repeated := func(f *descriptorpb.FieldDescriptorProto) *descriptorpb.FieldDescriptorProto {
		f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		return f
	}
	return &descriptorpb.FileDescriptorProto{
		Name:       str("widgets/v1/widgets.proto"),
		Package:    str("widgets.v1"),
		Syntax:     str("proto3"),
		Dependency: []string{"google/protobuf/field_mask.proto", "google/protobuf/empty.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: str("Widget"), Options: widgetOpts, Field: []*descriptorpb.FieldDescriptorProto{field(1, "name", tString, ""), field(2, "color", tString, ""), field(3, "size", tInt, "")}},
			{Name: str("Factory"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "id", tString, ""), field(2, "city", tString, "")}},
			{Name: str("GetWidgetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "name", tString, "")}},
			{Name: str("ListWidgetsRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "parent", tString, ""), field(2, "page_size", tInt, ""), field(3, "page_token", tString, "")}},
			{Name: str("ListWidgetsResponse"), Field: []*descriptorpb.FieldDescriptorProto{repeated(field(1, "widgets", tMsg, ".widgets.v1.Widget")), field(2, "next_page_token", tString, "")}},
			{Name: str("CreateWidgetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "parent", tString, ""), field(2, "widget", tMsg, ".widgets.v1.Widget"), field(3, "validate_only", descriptorpb.FieldDescriptorProto_TYPE_BOOL, "")}},
			{Name: str("UpdateWidgetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "widget", tMsg, ".widgets.v1.Widget"), field(2, "update_mask", tMsg, ".google.protobuf.FieldMask")}},
			{Name: str("DeleteWidgetRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "name", tString, "")}},
			{Name: str("GetFactoryRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "id", tString, "")}},
			{Name: str("ListFactoriesRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "page", tInt, ""), field(2, "page_size", tInt, "")}},
			{Name: str("ListFactoriesResponse"), Field: []*descriptorpb.FieldDescriptorProto{repeated(field(1, "factories", tMsg, ".widgets.v1.Factory"))}},
			{Name: str("InspectFactoryRequest"), Field: []*descriptorpb.FieldDescriptorProto{field(1, "id", tString, "")}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: str("WidgetService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: str("GetWidget"), InputType: str(".widgets.v1.GetWidgetRequest"), OutputType: str(".widgets.v1.Widget"),
					Options: httpOpt(&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/{name=factories/*/widgets/*}"}})},
				{Name: str("ListWidgets"), InputType: str(".widgets.v1.ListWidgetsRequest"), OutputType: str(".widgets.v1.ListWidgetsResponse"),
					Options: httpOpt(&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/{parent=factories/*}/widgets"}})},
				{Name: str("CreateWidget"), InputType: str(".widgets.v1.CreateWidgetRequest"), OutputType: str(".widgets.v1.Widget"),
					Options: httpOpt(&annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/{parent=factories/*}/widgets"}, Body: "widget"})},
				// PUT with a field mask: update, and patch too (the keys sent as the mask).
				{Name: str("UpdateWidget"), InputType: str(".widgets.v1.UpdateWidgetRequest"), OutputType: str(".widgets.v1.Widget"),
					Options: httpOpt(&annotations.HttpRule{Pattern: &annotations.HttpRule_Put{Put: "/v1/{widget.name=factories/*/widgets/*}"}, Body: "widget"})},
				{Name: str("DeleteWidget"), InputType: str(".widgets.v1.DeleteWidgetRequest"), OutputType: str(".google.protobuf.Empty"),
					Options: httpOpt(&annotations.HttpRule{Pattern: &annotations.HttpRule_Delete{Delete: "/v1/{name=factories/*/widgets/*}"}})},
				{Name: str("PolishWidget"), InputType: str(".widgets.v1.GetWidgetRequest"), OutputType: str(".widgets.v1.Widget"), Options: renamed},
				{Name: str("GetFactory"), InputType: str(".widgets.v1.GetFactoryRequest"), OutputType: str(".widgets.v1.Factory")},
				{Name: str("ListFactories"), InputType: str(".widgets.v1.ListFactoriesRequest"), OutputType: str(".widgets.v1.ListFactoriesResponse")},
				{Name: str("InspectFactory"), InputType: str(".widgets.v1.InspectFactoryRequest"), OutputType: str(".google.protobuf.Empty")},
			},
		}},
	}
}

func widgetCatalog(t *testing.T, fdp *descriptorpb.FileDescriptorProto, cfg catalogConfig) *catalog {
	t.Helper()
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := buildCatalogWith([]serviceSource{{desc: fd.Services().Get(0)}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// actionList is name:kind:scope:rule for every action of a stream, sorted by name.
func actionList(res *resource) string {
	var out []string
	for _, n := range sortedKeys(res.actions) {
		a := res.actions[n]
		scope := "list"
		if a.detail {
			scope = "detail"
		}
		out = append(out, n+":"+kindNames[a.kind]+":"+scope+":"+a.rule)
	}
	return strings.Join(out, " ")
}

func TestAIPAnnotationsDecideActions(t *testing.T) {
	cat := widgetCatalog(t, widgetFile(t), catalogConfig{})
	if got := strings.Join(cat.names(), ","); got != "factories,gizmos" {
		t.Fatalf("streams %s, want factories (List method's plural) and gizmos (google.api.resource plural)", got)
	}
	w := cat.streams["gizmos"]
	if got, want := actionList(w), "create:create:list:http delete:delete:detail:http list:list:list:http patch:patch:detail:http retrieve:retrieve:detail:http shine:custom:detail:option update:update:detail:http"; got != want {
		t.Errorf("gizmos\n got %s\nwant %s", got, want)
	}
	if u := w.actions["update"]; len(u.keyPath) != 2 || u.keyPath[0].Name() != "widget" || u.pk.Name() != "name" || u.data.Name() != "widget" {
		t.Errorf("update key %v data %v", u.keyPath, u.data)
	}
	if l := w.actions["list"]; l.pageToken == nil || l.http.summary != "GET /v1/{parent=factories/*}/widgets" {
		t.Errorf("list: %+v", l)
	}
	f := cat.streams["factories"]
	// No rules: AIP names; the key is id; InspectFactory goes to factories by its name.
	if got, want := actionList(f), "inspect_factory:custom:detail:name list:list:list:name retrieve:retrieve:detail:name"; got != want {
		t.Errorf("factories\n got %s\nwant %s", got, want)
	}
	if l := f.actions["list"]; l.pageToken != nil || l.page == nil {
		t.Errorf("factories list is page-numbered: %+v", l)
	}
}

// Server reflection hands the bridge descriptors parsed without the googleapis types: the
// annotations arrive as unknown option bytes and must still be read.
func TestAIPAnnotationsAsUnknownBytes(t *testing.T) {
	raw, err := proto.Marshal(widgetFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var fdp descriptorpb.FileDescriptorProto
	if err := (proto.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(raw, &fdp); err != nil {
		t.Fatal(err)
	}
	if proto.HasExtension(fdp.Service[0].Method[0].Options, annotations.E_Http) {
		t.Fatal("the test needs the annotation as unknown bytes")
	}
	cat := widgetCatalog(t, &fdp, catalogConfig{})
	if w := cat.streams["gizmos"]; w == nil || w.actions["retrieve"].rule != ruleHTTP {
		t.Fatalf("streams %v: annotations in unknown bytes were not read", cat.names())
	}
}

func TestAIPConfigurationOverrides(t *testing.T) {
	rules, err := ParseHTTPRules([]byte(`
type: google.api.Service
config_version: 3
http:
  rules:
    - selector: widgets.v1.WidgetService.UpdateWidget
      patch: /v1/{widget.name=factories/*/widgets/*}
      body: widget
    - selector: widgets.v1.WidgetService.InspectFactory
      post: /v1/factories/{id}:inspect
      body: "*"
`))
	if err != nil {
		t.Fatal(err)
	}
	cat := widgetCatalog(t, widgetFile(t), catalogConfig{rules: rules, streams: map[string]string{"widgets.v1.Widget": "widgets"}})
	if got := strings.Join(cat.names(), ","); got != "factories,widgets" {
		t.Fatalf("streams %s: -stream widgets.v1.Widget=widgets must rename the stream", got)
	}
	// The file's PATCH beats the annotation's PUT; with a field mask it serves update too.
	if got, want := actionList(cat.streams["widgets"]), "create:create:list:http delete:delete:detail:http list:list:list:http patch:patch:detail:http retrieve:retrieve:detail:http shine:custom:detail:option update:update:detail:http"; got != want {
		t.Errorf("widgets\n got %s\nwant %s", got, want)
	}
	if got, want := actionList(cat.streams["factories"]), "inspect:custom:detail:http list:list:list:name retrieve:retrieve:detail:name"; got != want {
		t.Errorf("factories\n got %s\nwant %s", got, want)
	}
}

func TestParseHTTPRules(t *testing.T) {
	for _, bad := range []string{
		"http:\n  rules:\n    - get: /v1/x\n",                         // no selector
		"http:\n  rulez: []\n",                                        // unknown key
		"http:\n  rules:\n    - selector: a.B.C\n      get: v1/x\n",   // relative path
		"http:\n  rules:\n    - selector: a.B.C\n      get: /v1/{x\n", // unbalanced
		"type: google.api.Service\n",                                  // no http
		"http:\n  rules:\n    - selector: a.B.C\n      get: /v1/x:\n", // empty verb
	} {
		if _, err := ParseHTTPRules([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	for path, want := range map[string]string{
		"/v1/{name=shelves/*/books/*}":         "detail books [name] ",
		"/v1/{parent=shelves/*}/books":         "list books [] ",
		"/v1/{book.name=shelves/*/books/*}":    "detail books [book name] ",
		"/v1/{name=shelves/*/books/*}:publish": "detail books [name] publish",
		"/v1/questions/{pk}":                   "detail questions [pk] ",
		"/v1/questions:report":                 "list questions [] report",
	} {
		m, err := parseHTTPRule(&annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: path}})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		scope := "list"
		if m.detail {
			scope = "detail"
		}
		got := scope + " " + m.coll + " [" + strings.Join(m.key, " ") + "] " + m.custom
		if got != want {
			t.Errorf("%s: got %q want %q", path, got, want)
		}
	}
}

func TestStreamNameOfPlural(t *testing.T) {
	for name, want := range map[string]string{"Book": "books", "Box": "boxes", "Category": "categories", "Day": "days", "UserGroup": "user_groups"} {
		fdp := &descriptorpb.FileDescriptorProto{Name: proto.String("p" + name + ".proto"), Package: proto.String("p"), Syntax: proto.String("proto3"),
			MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String(name)}},
			Service:     []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("S")}}}
		fd, err := protodesc.NewFile(fdp, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := streamNameOf(fd.Messages().Get(0), fd.Services().Get(0), catalogConfig{}); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
}

// buildAIPRequest: data splits between the resource field and the request; pk fills the
// nested key; patch's mask is the keys sent, update's "*".
func TestBuildAIPRequest(t *testing.T) {
	cat := widgetCatalog(t, widgetFile(t), catalogConfig{})
	s := &Server{opts: defaultOptions()}
	w := cat.streams["gizmos"]
	// text is the message as compact JSON, update_mask as its paths joined (protojson
	// refuses to write "*").
	text := func(m *dynamicpb.Message) string {
		var mask []string
		if f := m.Descriptor().Fields().ByName("update_mask"); f != nil && m.Has(f) {
			paths := m.Get(f).Message().Get(f.Message().Fields().ByName("paths")).List()
			for i := 0; i < paths.Len(); i++ {
				mask = append(mask, paths.Get(i).String())
			}
			m.Clear(f)
		}
		b, err := marshalJSON.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := json.Compact(&out, b); err != nil {
			t.Fatal(err)
		}
		if mask != nil {
			return out.String() + " mask " + strings.Join(mask, ",")
		}
		return out.String()
	}

	msg, _, e := buildMessage(t, w.actions["create"], testRequest(t, ``, `{"color":"red","parent":"factories/1","validate_only":true}`), pagesOf(&s.opts))
	if e != nil {
		t.Fatal(e)
	}
	if got := text(msg); got != `{"parent":"factories/1","widget":{"name":"","color":"red","size":0},"validate_only":true}` {
		t.Errorf("create: %s", got)
	}
	msg, _, e = buildMessage(t, w.actions["update"], testRequest(t, `"factories/1/widgets/2"`, `{"size":3}`), pagesOf(&s.opts))
	if e != nil {
		t.Fatal(e)
	}
	if got := text(msg); got != `{"widget":{"name":"factories/1/widgets/2","color":"","size":3},"update_mask":null} mask *` {
		t.Errorf("update: %s", got)
	}
	if _, _, e := buildMessage(t, w.actions["update"], testRequest(t, ``, `{"size":3}`), pagesOf(&s.opts)); e != errNotFound {
		t.Errorf("update without pk: %v", e)
	}
	if _, _, e := buildMessage(t, w.actions["create"], testRequest(t, ``, `{"colour":"red"}`), pagesOf(&s.opts)); e == nil || e.Fields[0].Field != "colour" {
		t.Errorf("unknown field: %v", e)
	}
	msg, pg, e := buildMessage(t, w.actions["list"], testRequest(t, ``, `{"parent":"factories/1","page_size":5000,"page_token":"abc"}`), pagesOf(&s.opts))
	if e != nil {
		t.Fatal(e)
	}
	if got := text(msg); got != `{"parent":"factories/1","page_size":1000,"page_token":"abc"}` || pg.size != 1000 {
		t.Errorf("list: %s (page size %d)", got, pg.size)
	}
	if _, _, e := buildMessage(t, w.actions["list"], testRequest(t, ``, `{"page":2}`), pagesOf(&s.opts)); e != errCursorPage {
		t.Errorf("page on a cursor list: %v", e)
	}

	rules, err := ParseHTTPRules([]byte("http:\n  rules:\n    - selector: widgets.v1.WidgetService.UpdateWidget\n      patch: /v1/{widget.name=factories/*/widgets/*}\n      body: widget\n"))
	if err != nil {
		t.Fatal(err)
	}
	w = widgetCatalog(t, widgetFile(t), catalogConfig{rules: rules}).streams["gizmos"]
	msg, _, e = buildMessage(t, w.actions["patch"], testRequest(t, `"factories/1/widgets/2"`, `{"size":3,"color":"blue"}`), pagesOf(&s.opts))
	if e != nil {
		t.Fatal(e)
	}
	if got := text(msg); got != `{"widget":{"name":"factories/1/widgets/2","color":"blue","size":3},"update_mask":null} mask size,color` {
		t.Errorf("patch: %s", got)
	}
}

// A service of only custom methods is no resource service: it stays hidden, as before.
func TestAIPServiceWithoutStandardMethodsIsHidden(t *testing.T) {
	fdp := &descriptorpb.FileDescriptorProto{Name: proto.String("greet.proto"), Package: proto.String("greet"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Hello")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Greeter"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: proto.String("SayHello"), InputType: proto.String(".greet.Hello"), OutputType: proto.String(".greet.Hello")},
		}}}}
	if cat := widgetCatalog(t, fdp, catalogConfig{}); len(cat.streams) != 0 {
		t.Fatalf("streams %v", cat.names())
	}
}

// A server-streaming method following the bridge's event convention gives its resource events.
func TestAIPResourceEvents(t *testing.T) {
	str := proto.String
	f := func(n int32, name string, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		fd := &descriptorpb.FieldDescriptorProto{Name: str(name), Number: proto.Int32(n), Type: typ.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
		if typeName != "" {
			fd.TypeName = str(typeName)
		}
		return fd
	}
	const tString, tMsg = descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	fdp := &descriptorpb.FileDescriptorProto{Name: str("ev.proto"), Package: str("ev"), Syntax: str("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: str("Thing"), Field: []*descriptorpb.FieldDescriptorProto{f(1, "name", tString, "")}},
			{Name: str("GetThingRequest"), Field: []*descriptorpb.FieldDescriptorProto{f(1, "name", tString, "")}},
			{Name: str("SubscribeThingsRequest"), Field: []*descriptorpb.FieldDescriptorProto{f(1, "pk", tString, "")}},
			{Name: str("ThingEvent"), Field: []*descriptorpb.FieldDescriptorProto{f(1, "action", tString, ""), f(2, "pk", tString, ""), f(3, "data", tMsg, ".ev.Thing")}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: str("ThingService"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: str("GetThing"), InputType: str(".ev.GetThingRequest"), OutputType: str(".ev.Thing")},
			{Name: str("SubscribeThings"), InputType: str(".ev.SubscribeThingsRequest"), OutputType: str(".ev.ThingEvent"), ServerStreaming: proto.Bool(true)},
		}}}}
	cat := widgetCatalog(t, fdp, catalogConfig{})
	r := cat.streams["things"]
	if r == nil || r.subscribe == nil || r.subscribe.method != "/ev.ThingService/SubscribeThings" || r.subscribe.desc.StreamName != "SubscribeThings" {
		t.Fatalf("things: %+v", r)
	}
}

// A service named after the bridge's conventions keeps its other methods custom: GetStats
// beside Retrieve stays get_stats, as before AIP names were understood.
func TestBridgeNamedServiceKeepsCustomMethods(t *testing.T) {
	str := proto.String
	svcOpts := &descriptorpb.ServiceOptions{}
	proto.SetExtension(svcOpts, bridgev1.E_Resource, &bridgev1.ResourceOptions{Stream: "things"})
	fdp := &descriptorpb.FileDescriptorProto{Name: str("bn.proto"), Package: str("bn"), Syntax: str("proto3"),
		Dependency: []string{"bridge/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{Name: str("Thing"), Field: []*descriptorpb.FieldDescriptorProto{{
			Name: str("pk"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}}}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: str("ThingService"), Options: svcOpts, Method: []*descriptorpb.MethodDescriptorProto{
			{Name: str("Retrieve"), InputType: str(".bn.Thing"), OutputType: str(".bn.Thing")},
			{Name: str("GetStats"), InputType: str(".bn.Thing"), OutputType: str(".bn.Thing")},
			{Name: str("ListVotes"), InputType: str(".bn.Thing"), OutputType: str(".bn.Thing")},
		}}}}
	cat := widgetCatalog(t, fdp, catalogConfig{})
	if got, want := actionList(cat.streams["things"]), "get_stats:custom:detail:name list_votes:custom:detail:name retrieve:retrieve:detail:name"; got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

// Without the option, a service named after the bridge's conventions stays hidden unless
// configured; an HTTP rule exposes it.
func TestBridgeNamedServiceWithoutOptionIsHidden(t *testing.T) {
	str := proto.String
	fdp := &descriptorpb.FileDescriptorProto{Name: str("bn2.proto"), Package: str("bn2"), Syntax: str("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: str("Thing"), Field: []*descriptorpb.FieldDescriptorProto{{
			Name: str("pk"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}}}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: str("ThingService"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: str("Create"), InputType: str(".bn2.Thing"), OutputType: str(".bn2.Thing")},
			{Name: str("Retrieve"), InputType: str(".bn2.Thing"), OutputType: str(".bn2.Thing")},
		}}}}
	if cat := widgetCatalog(t, fdp, catalogConfig{}); len(cat.streams) != 0 || strings.Join(cat.hidden, ",") != "bn2.ThingService" {
		t.Fatalf("streams %v hidden %v", cat.names(), cat.hidden)
	}
	rules, err := ParseHTTPRules([]byte("http:\n  rules:\n    - selector: bn2.ThingService.Retrieve\n      get: /v1/things/{pk}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(widgetCatalog(t, fdp, catalogConfig{rules: rules}).names(), ","); got != "things" {
		t.Fatalf("with a rule: streams %s", got)
	}
}

// testRequest decodes a request frame with pk and data (raw JSON; "" leaves either out).
func testRequest(t *testing.T, pk, data string) *request {
	t.Helper()
	frame := `{"stream":"s","payload":{"action":"a"`
	if pk != "" {
		frame += `,"pk":` + pk
	}
	if data != "" {
		frame += `,"data":` + data
	}
	r := new(request)
	if e := r.decode([]byte(frame + "}}")); e != nil {
		t.Fatalf("%s: %v", frame, e)
	}
	return r
}
