package bridge

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
)

// int64TestMessage is a message with every place a 64-bit integer can hide in protojson.
func int64TestMessage(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	field := func(name string, n int32, label descriptorpb.FieldDescriptorProto_Label, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: &name, Number: &n, Label: &label, Type: &typ}
		if typeName != "" {
			f.TypeName = &typeName
		}
		return f
	}
	T := descriptorpb.FieldDescriptorProto_TYPE_INT64
	entry := true
	fd := &descriptorpb.FileDescriptorProto{
		Name:       strPtr("int64test.proto"),
		Package:    strPtr("int64test"),
		Syntax:     strPtr("proto3"),
		Dependency: []string{"google/protobuf/wrappers.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: strPtr("T"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("a", 1, opt, T, ""),
				field("b", 2, rep, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
				field("c", 3, rep, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".int64test.T.CEntry"),
				field("nested", 4, opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".int64test.T"),
				field("s", 5, opt, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				field("w", 6, opt, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Int64Value"),
				field("f", 7, opt, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, ""),
				field("small", 8, opt, descriptorpb.FieldDescriptorProto_TYPE_INT32, ""),
			},
			NestedType: []*descriptorpb.DescriptorProto{{
				Name:    strPtr("CEntry"),
				Field:   []*descriptorpb.FieldDescriptorProto{field("key", 1, opt, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""), field("value", 2, opt, T, "")},
				Options: &descriptorpb.MessageOptions{MapEntry: &entry},
			}},
		}},
	}
	file, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return file.Messages().ByName("T")
}

func strPtr(s string) *string { return &s }

func TestInt64AsNumber(t *testing.T) {
	md := int64TestMessage(t)
	in := `{"a": "9007199254740991", "b": ["1", "9007199254740992"], "c": {"k": "-9007199254740991", "big": "-9007199254740992"},
		"nested": {"a": 7, "s": "12", "w": "5", "f": "-3"}, "s": "42", "w": "9223372036854775807", "f": "0", "small": 3}`
	m := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal([]byte(in), m); err != nil {
		t.Fatal(err)
	}
	out, err := marshalAppend(nil, m, true)
	if err != nil {
		t.Fatal(err)
	}
	var want = `{"a":9007199254740991,"b":[1,"9007199254740992"],"c":{"big":"-9007199254740992","k":-9007199254740991},` +
		`"nested":{"a":7,"b":[],"c":{},"nested":null,"s":"12","w":5,"f":-3,"small":0},"s":"42","w":"9223372036854775807","f":0,"small":3}`
	if got := compactJSON(t, out); got != want {
		t.Errorf("with numbers\n got %s\nwant %s", got, want)
	}
	// The unary path writes replies from the response's bytes with wirejson: the same text.
	wire, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := (wirejson.MarshalOptions{Int64AsNumber: true}).Append(nil, md, wire); err != nil || string(got) != want {
		t.Errorf("wirejson with numbers\n got %s (%v)\nwant %s", got, err, want)
	}
	// The default stays protojson's, and the numbers read back as the same message.
	plain, err := marshalAppend(nil, m, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := compactJSON(t, plain); got[:29] != `{"a":"9007199254740991","b":[` {
		t.Errorf("default: %s", got)
	}
	back := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(out, back); err != nil {
		t.Fatal(err)
	}
	if !back.ProtoReflect().IsValid() || back.Get(md.Fields().ByName("a")).Int() != 1<<53-1 {
		t.Fatalf("read back: %v", back)
	}

	// Scalars (event pk, list meta).
	a := md.Fields().ByName("a")
	for _, c := range []struct {
		n    int64
		num  bool
		want string
	}{{42, true, `42`}, {42, false, `"42"`}, {1 << 53, true, `"9007199254740992"`}, {-(1<<53 - 1), true, `-9007199254740991`}} {
		if got := string(appendScalar(nil, a, protoreflect.ValueOfInt64(c.n), c.num)); got != c.want {
			t.Errorf("appendScalar(%d, %v) = %s, want %s", c.n, c.num, got, c.want)
		}
	}
}

// compactJSON strips protojson's unstable whitespace.
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var out []byte
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			out = append(out, c, b[i+1])
			i++
			continue
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\n' || c == '\t'):
			continue
		}
		out = append(out, c)
	}
	return string(out)
}

func TestConfigInt64AsNumber(t *testing.T) {
	for _, c := range []struct {
		file string
		want bool
	}{{`{}`, false}, {`{"int64_as_number": true}`, true}, {`{"int64_as_number": false}`, false}} {
		cfg, err := ParseConfig([]byte(c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		o := defaultOptions()
		cfg.Option().apply(&o)
		if o.int64AsNumber != c.want {
			t.Errorf("%s: int64AsNumber %v, want %v", c.file, o.int64AsNumber, c.want)
		}
	}
	if _, err := ParseConfig([]byte(`{"int64_as_number": "yes"}`)); err == nil {
		t.Error(`int64_as_number "yes" was accepted`)
	}
}
