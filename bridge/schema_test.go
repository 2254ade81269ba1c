package bridge

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// schemaTestFile is a service whose messages use what polls does not: a recursive message,
// maps, enums, oneofs, well-known types, a list request with filters, a custom list action.
func schemaTestFile(t *testing.T) *protoregistry.Files {
	t.Helper()
	opt := func(n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, name, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum()}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	const (
		optional = descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		repeated = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		msg      = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	oneofField := opt(9, descriptorpb.FieldDescriptorProto_TYPE_STRING, optional, "email", "")
	oneofField.OneofIndex = proto.Int32(0)
	oneofField2 := opt(10, descriptorpb.FieldDescriptorProto_TYPE_STRING, optional, "phone", "")
	oneofField2.OneofIndex = proto.Int32(0)
	fd := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("schematest/v1/nodes.proto"),
		Package:    proto.String("schematest.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto", "google/protobuf/field_mask.proto", "google/protobuf/wrappers.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{
			Name: proto.String("Color"),
			Value: []*descriptorpb.EnumValueDescriptorProto{
				{Name: proto.String("COLOR_UNSPECIFIED"), Number: proto.Int32(0)},
				{Name: proto.String("COLOR_RED"), Number: proto.Int32(1)},
			},
		}},
		MessageType: []*descriptorpb.DescriptorProto{
			{
				Name: proto.String("Node"),
				Field: []*descriptorpb.FieldDescriptorProto{
					opt(1, descriptorpb.FieldDescriptorProto_TYPE_UINT64, optional, "id", ""),
					opt(2, msg, repeated, "children", ".schematest.v1.Node"),
					opt(3, msg, optional, "parent", ".schematest.v1.Node"),
					opt(4, msg, repeated, "labels", ".schematest.v1.Node.LabelsEntry"),
					opt(5, descriptorpb.FieldDescriptorProto_TYPE_ENUM, optional, "color", ".schematest.v1.Color"),
					opt(6, msg, optional, "created_at", ".google.protobuf.Timestamp"),
					opt(7, msg, optional, "weight", ".google.protobuf.DoubleValue"),
					opt(8, descriptorpb.FieldDescriptorProto_TYPE_BYTES, optional, "blob", ""),
					oneofField, oneofField2,
					opt(11, descriptorpb.FieldDescriptorProto_TYPE_SINT32, repeated, "scores", ""),
				},
				OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("contact")}},
				NestedType: []*descriptorpb.DescriptorProto{{
					Name:    proto.String("LabelsEntry"),
					Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
					Field: []*descriptorpb.FieldDescriptorProto{
						opt(1, descriptorpb.FieldDescriptorProto_TYPE_INT32, optional, "key", ""),
						opt(2, descriptorpb.FieldDescriptorProto_TYPE_STRING, optional, "value", ""),
					},
				}},
			},
			{Name: proto.String("CreateNodeRequest"), Field: []*descriptorpb.FieldDescriptorProto{opt(1, msg, optional, "data", ".schematest.v1.Node")}},
			{Name: proto.String("PatchNodeRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				opt(1, descriptorpb.FieldDescriptorProto_TYPE_UINT64, optional, "pk", ""),
				opt(2, descriptorpb.FieldDescriptorProto_TYPE_STRING, optional, "name", ""),
				opt(3, msg, optional, "update_mask", ".google.protobuf.FieldMask"),
			}},
			{Name: proto.String("ListNodesRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				opt(1, descriptorpb.FieldDescriptorProto_TYPE_INT32, optional, "page", ""),
				opt(2, descriptorpb.FieldDescriptorProto_TYPE_INT32, optional, "page_size", ""),
				opt(3, descriptorpb.FieldDescriptorProto_TYPE_ENUM, optional, "color", ".schematest.v1.Color"),
			}},
			{Name: proto.String("ListNodesResponse"), Field: []*descriptorpb.FieldDescriptorProto{
				opt(1, msg, repeated, "nodes", ".schematest.v1.Node"),
				opt(2, descriptorpb.FieldDescriptorProto_TYPE_INT64, optional, "total", ""),
			}},
			{Name: proto.String("Empty")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("NodeService"),
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: proto.String("Create"), InputType: proto.String(".schematest.v1.CreateNodeRequest"), OutputType: proto.String(".schematest.v1.Node")},
				{Name: proto.String("Patch"), InputType: proto.String(".schematest.v1.PatchNodeRequest"), OutputType: proto.String(".schematest.v1.Node")},
				{Name: proto.String("List"), InputType: proto.String(".schematest.v1.ListNodesRequest"), OutputType: proto.String(".schematest.v1.ListNodesResponse")},
				{Name: proto.String("Reset"), InputType: proto.String(".schematest.v1.Empty"), OutputType: proto.String(".schematest.v1.Empty")},
			},
		}},
	}
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(f); err != nil {
		t.Fatal(err)
	}
	return files
}

func TestSchemaShapes(t *testing.T) {
	files := schemaTestFile(t)
	d, err := files.FindDescriptorByName("schematest.v1.NodeService")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := buildCatalog([]serviceSource{{desc: d.(protoreflect.ServiceDescriptor), stream: "nodes"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	doc := s.buildSchema(cat)
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	st := doc.Streams["nodes"]
	if st == nil || st.Model != "schematest.v1.Node" || st.Subscribe != nil || len(st.Events) != 0 {
		t.Fatalf("nodes: %s", raw)
	}

	node := doc.Messages["schematest.v1.Node"]
	if node == nil {
		t.Fatalf("no Node in messages: %s", raw)
	}
	field := func(name string) schemaField {
		for _, f := range node.Fields {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("Node has no field %s", name)
		return schemaField{}
	}
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	for name, want := range map[string]string{
		"id":         `{"name":"id","json_name":"id","number":1,"type":"string","format":"uint64"}`,
		"children":   `{"name":"children","json_name":"children","number":2,"type":"array","items":{"type":"object","message":"schematest.v1.Node"}}`,
		"parent":     `{"name":"parent","json_name":"parent","number":3,"type":"object","message":"schematest.v1.Node"}`,
		"labels":     `{"name":"labels","json_name":"labels","number":4,"type":"object","map":{"key":{"type":"string","format":"int32"},"value":{"type":"string"}}}`,
		"color":      `{"name":"color","json_name":"color","number":5,"type":"string","format":"enum","enum":"schematest.v1.Color","values":["COLOR_UNSPECIFIED","COLOR_RED"]}`,
		"created_at": `{"name":"created_at","json_name":"createdAt","number":6,"type":"string","format":"date-time","well_known":"google.protobuf.Timestamp"}`,
		"weight":     `{"name":"weight","json_name":"weight","number":7,"type":"number","format":"double","well_known":"google.protobuf.DoubleValue","nullable":true}`,
		"blob":       `{"name":"blob","json_name":"blob","number":8,"type":"string","format":"bytes"}`,
		"email":      `{"name":"email","json_name":"email","number":9,"type":"string","oneof":"contact"}`,
		"scores":     `{"name":"scores","json_name":"scores","number":11,"type":"array","items":{"type":"integer","format":"int32"}}`,
	} {
		if got := js(field(name)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	if _, ok := doc.Messages["schematest.v1.Node.LabelsEntry"]; ok {
		t.Error("a map entry is listed as a message")
	}

	actions := map[string]*schemaAction{}
	for _, a := range st.Actions {
		actions[a.Name] = a
	}
	// patch without a data field: data is the request's fields but pk and update_mask.
	if got := js(actions["patch"].Data); got != `{"type":"object","fields":[{"name":"name","json_name":"name","number":2,"type":"string"}]}` {
		t.Errorf("patch data %s", got)
	}
	if a := actions["patch"]; !a.Detail || !a.Partial || a.Rule != "name" || a.HTTP != "" || js(a.PK) != `{"type":"string","format":"uint64"}` {
		t.Errorf("patch: %s", js(a))
	}
	// list: page, page_size, then the other request fields; meta has the scalar total.
	if got := js(actions["list"].Data.Fields); !strings.Contains(got, `"name":"page"`) || !strings.HasSuffix(got, `{"name":"color","json_name":"color","number":3,"type":"string","format":"enum","enum":"schematest.v1.Color","values":["COLOR_UNSPECIFIED","COLOR_RED"]}]`) {
		t.Errorf("list data %s", got)
	}
	if got := js(actions["list"].Meta); actions["list"].Pagination != "page" || !strings.Contains(got, `{"name":"total","json_name":"total","number":2,"type":"string","format":"int64"}`) {
		t.Errorf("list meta %s", got)
	}
	// A custom action without pk is a list action; an empty request is an empty data object.
	if a := actions["reset"]; a.Kind != "custom" || a.Scope != "list" || js(a.Data) != `{"type":"object","fields":[]}` || js(a.Reply) != `{"type":"object","message":"schematest.v1.Empty"}` {
		t.Errorf("reset: %s", js(a))
	}
}

// TestSchemaBytesAreTheEndpoints: Server.Schema gives Go callers the very document GET
// /schema serves.
func TestSchemaBytesAreTheEndpoints(t *testing.T) {
	files := schemaTestFile(t)
	d, err := files.FindDescriptorByName("schematest.v1.NodeService")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := buildCatalog([]serviceSource{{desc: d.(protoreflect.ServiceDescriptor), stream: "nodes"}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	if s.Schema() != nil {
		t.Fatal("a schema before discovery")
	}
	s.catalog.Store(cat)
	rec := httptest.NewRecorder()
	(&schemaHandler{srv: s}).ServeHTTP(rec, httptest.NewRequest("GET", "/schema", nil))
	if rec.Code != 200 || rec.Body.String() != string(s.Schema()) || !json.Valid(s.Schema()) {
		t.Fatalf("GET /schema %d:\n%s\nSchema():\n%s", rec.Code, rec.Body, s.Schema())
	}
}
