package wirejson_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/wsbridge/wsbridge/examples/backend/polls"
	"github.com/wsbridge/wsbridge/internal/wirejson"
	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
	testingv1 "github.com/wsbridge/wsbridge/proto/wsbridge/testing/v1"
)

// TestUnmarshalTricky pins protojson's reading of each edge case, and checks wirejson
// reads it the same way (accepts or refuses it, and decodes the same message).
func TestUnmarshalTricky(t *testing.T) {
	for _, c := range seedJSON {
		if got := checkUnmarshal(t, everything, []byte(c.json)); got != c.accept {
			t.Errorf("%s: accepted %v, want %v", c.json, got, c.accept)
		}
	}
}

// TestMarshalTricky checks exact output on wire forms Go's own Marshal never writes.
func TestMarshalTricky(t *testing.T) {
	for _, c := range []struct {
		name string
		wire []byte
		want string // the fields of interest, checked against protojson in full
	}{
		{"last scalar wins", []byte{0x10, 0x01, 0x10, 0x02}, `"f_int32":2`},
		{"unpacked and packed", []byte{0xf0, 0x01, 0x01, 0xf0, 0x01, 0x02, 0xf2, 0x01, 0x01, 0x03}, `"r_int32":[1,2,3]`},
		{"messages merge", []byte{0x8a, 0x01, 0x02, 0x08, 0x01, 0x8a, 0x01, 0x02, 0x12, 0x00}, `"f_nested":{"a":1,"b":"","child":null,"list":[]}`},
		{"oneof last member", []byte{0xb2, 0x04, 0x01, 0x61, 0xb8, 0x04, 0x05}, `"c_int64":"5"`},
		{"oneof switch drops the merge", []byte{0xc2, 0x04, 0x02, 0x08, 0x01, 0xb8, 0x04, 0x05, 0xc2, 0x04, 0x02, 0x12, 0x00}, `"c_nested":{"a":0,"b":"","child":null,"list":[]}`},
		{"wrong wire type is unknown", []byte{0x15, 0x01, 0x02, 0x03, 0x04}, `"f_int32":0`},
		{"map key last wins", []byte{0x92, 0x03, 0x05, 0x0a, 0x01, 0x61, 0x10, 0x01, 0x92, 0x03, 0x05, 0x0a, 0x01, 0x61, 0x10, 0x02}, `"m_string_int32":{"a":2}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkMarshal(t, everything, c.wire)
			got, err := wirejson.Marshal(everything, c.wire)
			if err != nil {
				t.Fatal(err)
			}
			if !containsStr(string(got), c.want) {
				t.Fatalf("%s lacks %s", got, c.want)
			}
		})
	}
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestErrorField: every refusal names the field, as the bridge's field errors need.
func TestErrorField(t *testing.T) {
	for _, c := range []struct{ json, field, msg string }{
		{`{"f_int32":4294967297}`, "f_int32", "Not a valid int32."},
		{`{"f_uint32":4294967297}`, "f_uint32", "Not a valid uint32."},
		{`{"f_nested":{"a":"x"}}`, "f_nested.a", "Not a valid int32."},
		{`{"f_nested":{"zz":1}}`, "f_nested.zz", "Unknown field."},
		{`{"f_int32":1,"fInt32":1}`, "f_int32", "Duplicate field."},
		{`{"c_string":"a","c_int64":1}`, "c_int64", "Only one field of choice may be set."},
		{`{"f_color":"COLOR_BLUE"}`, "f_color", "Not a valid choice."},
		{`{"r_nested":[{"b":1}]}`, "r_nested.b", "Not a valid string."},
	} {
		_, err := wirejson.Unmarshal(everything, []byte(c.json))
		var e *wirejson.Error
		if !errors.As(err, &e) || e.Field != c.field || e.Msg != c.msg {
			t.Errorf("%s: error %#v, want field %q message %q", c.json, err, c.field, c.msg)
		}
	}
	_, err := wirejson.Unmarshal(everything, []byte(`{"f_int32":1,}`))
	var e *wirejson.Error
	if !errors.As(err, &e) || e.Field != "" {
		t.Errorf("syntax error: %#v, want an Error with no field", err)
	}
}

func TestInt64AsNumber(t *testing.T) {
	m := &testingv1.Everything{FInt64: 1<<53 - 1, FUint64: 1 << 53, RSint64: []int64{-5}, MSfixed32Int64: map[int32]int64{1: 2}}
	wire, _ := proto.Marshal(m)
	out, err := wirejson.MarshalOptions{Int64AsNumber: true}.Append(nil, everything, wire)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"f_int64":9007199254740991`, `"f_uint64":"9007199254740992"`, `"r_sint64":[-5]`, `"m_sfixed32_int64":{"1":2}`, `"f_fixed64":0`} {
		if !containsStr(string(out), want) {
			t.Errorf("%s lacks %s", out, want)
		}
	}
}

// TestCodec makes a real gRPC call to the example backend with wire bytes built from JSON,
// and writes the reply bytes back as JSON, without a proto.Message on either side.
func TestCodec(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := polls.Start(context.Background(), polls.Config{GRPCListener: lis, DBPath: filepath.Join(t.TempDir(), "polls.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	reqMD := (&pollsv1.CreateQuestionRequest{}).ProtoReflect().Descriptor()
	respMD := (&pollsv1.Question{}).ProtoReflect().Descriptor()
	req, err := wirejson.Unmarshal(reqMD, []byte(`{"data":{"questionText":"Raw?","published":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	var resp []byte
	if err := conn.Invoke(context.Background(), "/polls.v1.QuestionService/Create", req, &resp, grpc.ForceCodecV2(wirejson.Codec{})); err != nil {
		t.Fatal(err)
	}
	out, err := wirejson.Marshal(respMD, resp)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"1","question_text":"Raw?","published":true}`; string(out) != want {
		t.Fatalf("reply %s, want %s", out, want)
	}
	// The reply's own buffers, without a copy; the caller frees them.
	retrieve, err := wirejson.Unmarshal((&pollsv1.RetrieveQuestionRequest{}).ProtoReflect().Descriptor(), []byte(`{"pk":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	var bufs mem.BufferSlice
	if err := conn.Invoke(context.Background(), "/polls.v1.QuestionService/Retrieve", mem.BufferSlice{mem.SliceBuffer(retrieve)}, &bufs, grpc.ForceCodecV2(wirejson.Codec{})); err != nil {
		t.Fatal(err)
	}
	out, err = wirejson.Marshal(respMD, bufs.Materialize())
	bufs.Free()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"1","question_text":"Raw?","published":true}`; string(out) != want {
		t.Fatalf("retrieve reply %s, want %s", out, want)
	}
	// A proto.Message still works through the same codec.
	var q pollsv1.Question
	if err := conn.Invoke(context.Background(), "/polls.v1.QuestionService/Retrieve", &pollsv1.RetrieveQuestionRequest{Pk: 1}, &q, grpc.ForceCodecV2(wirejson.Codec{})); err != nil {
		t.Fatal(err)
	}
	if q.GetQuestionText() != "Raw?" {
		t.Fatalf("retrieved %v", &q)
	}
}

// TestDepthLimit: near the recursion limit (10,000 levels), both directions refuse exactly
// what protojson and proto refuse.
func TestDepthLimit(t *testing.T) {
	nest := func(n int, open, close, inner string) []byte {
		var b []byte
		for range n {
			b = append(b, open...)
		}
		b = append(b, inner...)
		for range n {
			b = append(b, close...)
		}
		return b
	}
	for _, n := range []int{9999, 10000} { // the last accepted, the first refused
		for _, data := range []string{
			`{"w_value":` + string(nest(n, "[", "]", "")) + `}`,
			`{"w_struct":` + string(nest(n-1, `{"a":`, "}", "1")) + `}`,
			`{"w_any":{"w_value":` + string(nest(n-2, "[", "]", "")) + `,"@type":"type.googleapis.com/wsbridge.testing.v1.Everything"}}`,
		} {
			if got := checkUnmarshal(t, everything, []byte(data)); got != (n == 9999) {
				t.Errorf("depth %d: accepted %v", n, got)
			}
		}
	}
	// Wire: Value{list_value: ListValue{values: Value{...}}} is two levels per list;
	// Value{struct_value: Struct{fields: entry{value: Value}}} three per object.
	valueList := func(levels int) []byte {
		var v []byte // the innermost Value: null
		v = append(v, 0x08, 0x00)
		for range levels {
			lv := protowireBytes(1, v)
			v = protowireBytes(6, lv)
		}
		return protowireBytes(84, v)
	}
	valueStruct := func(levels int) []byte {
		v := []byte{0x08, 0x00}
		for range levels {
			entry := append(protowireBytes(1, []byte("k")), protowireBytes(2, v)...)
			v = protowireBytes(5, protowireBytes(1, entry))
		}
		return protowireBytes(84, v)
	}
	for _, n := range []int{4999, 5000} {
		checkMarshal(t, everything, valueList(n))
	}
	for _, n := range []int{3332, 3333} {
		checkMarshal(t, everything, valueStruct(n))
	}
}

func protowireBytes(num int, b []byte) []byte {
	out := appendVarint(nil, uint64(num)<<3|2)
	out = appendVarint(out, uint64(len(b)))
	return append(out, b...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestSupported: proto2's required fields, closed enums, groups and extensions are refused
// up front, never transcoded differently from protojson.
func TestSupported(t *testing.T) {
	for _, md := range []protoreflect.MessageDescriptor{everything, createMD, choicesMD} {
		if err := wirejson.Supported(md); err != nil {
			t.Errorf("%s: %v", md.FullName(), err)
		}
	}
	field := (&descriptorpb.FieldDescriptorProto{}).ProtoReflect().Descriptor() // closed enums
	if err := wirejson.Supported(field); err == nil {
		t.Errorf("%s is supported", field.FullName())
	}
	if _, err := wirejson.Unmarshal(field, []byte(`{}`)); err == nil {
		t.Errorf("Unmarshal of %s accepted", field.FullName())
	}
	if _, err := wirejson.Marshal(field, nil); err == nil {
		t.Errorf("Marshal of %s accepted", field.FullName())
	}
	// A message that only reaches one through a field is refused too.
	file := (&descriptorpb.FileDescriptorSet{}).ProtoReflect().Descriptor()
	if err := wirejson.Supported(file); err == nil {
		t.Errorf("%s is supported", file.FullName())
	}
}
