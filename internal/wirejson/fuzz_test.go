package wirejson_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
	testingv1 "github.com/wsbridge/wsbridge/proto/wsbridge/testing/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	everything = (&testingv1.Everything{}).ProtoReflect().Descriptor()
	marshalRef = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
)

// refMarshal is protojson's output for wire, compacted; ok false when proto.Unmarshal or
// protojson.Marshal refuses it.
func refMarshal(t testing.TB, md protoreflect.MessageDescriptor, wire []byte) ([]byte, error) {
	m := dynamicpb.NewMessage(md)
	if err := proto.Unmarshal(wire, m); err != nil {
		return nil, err
	}
	out, err := marshalRef.Marshal(m)
	if err != nil {
		return nil, err
	}
	var c bytes.Buffer
	if err := json.Compact(&c, out); err != nil {
		t.Fatalf("protojson wrote invalid JSON %q: %v", out, err)
	}
	return c.Bytes(), nil
}

func checkMarshal(t *testing.T, md protoreflect.MessageDescriptor, wire []byte) {
	t.Helper()
	want, werr := refMarshal(t, md, wire)
	got, gerr := wirejson.Marshal(md, wire)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("wire %x: protojson refuses (%v), wirejson wrote %s", wire, werr, got)
	case werr == nil && gerr != nil:
		t.Fatalf("wire %x: wirejson refuses (%v), protojson wrote %s", wire, gerr, want)
	case werr == nil && !bytes.Equal(got, want):
		t.Fatalf("wire %x:\nwirejson: %s\nprotojson: %s", wire, got, want)
	}
}

func checkUnmarshal(t *testing.T, md protoreflect.MessageDescriptor, data []byte) (accepted bool) {
	t.Helper()
	want := dynamicpb.NewMessage(md)
	werr := protojson.Unmarshal(data, want)
	wire, gerr := wirejson.Unmarshal(md, data)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("json %q: protojson refuses (%v), wirejson accepts", data, werr)
	case werr == nil && gerr != nil:
		t.Fatalf("json %q: wirejson refuses (%v), protojson accepts", data, gerr)
	case werr != nil:
		return false
	}
	got := dynamicpb.NewMessage(md)
	// protojson nests Struct and ListValue levels deeper than proto.Unmarshal reads by default.
	if err := (proto.UnmarshalOptions{RecursionLimit: math.MaxInt32}).Unmarshal(wire, got); err != nil {
		t.Fatalf("json %q: wirejson wrote wire bytes proto cannot read: %v", data, err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("json %q:\nwirejson decoded: %v\nprotojson decoded: %v", data, got, want)
	}
	return true
}

// seedMessages use every field shape; their encodings seed the Marshal fuzzer.
func seedMessages() []proto.Message {
	nested := &testingv1.Nested{A: -5, B: "née\"\\\n\x01\u2028", Child: &testingv1.Nested{A: 1, List: []int64{1, -1, 1 << 60}}, List: []int64{-1 << 63}}
	anyNested, _ := anypb.New(nested)
	anyTS, _ := anypb.New(timestamppb.New(timestamppb.Now().AsTime()))
	anyAny, _ := anypb.New(anyNested)
	anyEmpty, _ := anypb.New(&emptypb.Empty{})
	st, _ := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{true, nil, "x", map[string]any{}}, "c": nil})
	lv, _ := structpb.NewList([]any{1, "two", false, nil})
	full := &testingv1.Everything{
		FInt32: math.MinInt32, FInt64: math.MinInt64, FUint32: math.MaxUint32, FUint64: math.MaxUint64,
		FSint32: -7, FSint64: math.MaxInt64, FFixed32: 7, FFixed64: 1 << 53, FSfixed32: -9, FSfixed64: -(1 << 53) - 1,
		FFloat: float32(math.Inf(-1)), FDouble: math.NaN(), FBool: true, FString: "ünïcödé 😀", FBytes: []byte{0, 0xff, 0xfe},
		FColor: testingv1.Color_COLOR_GREEN, FNested: nested, FSelf: &testingv1.Everything{FInt32: 1, FSelf: &testingv1.Everything{}},
		FCustom: "c",
		OInt32:  proto.Int32(0), OString: proto.String(""), OColor: testingv1.Color_COLOR_UNSPECIFIED.Enum(), ODouble: proto.Float64(math.Copysign(0, -1)),
		OBytes: []byte{}, OUint64: proto.Uint64(0),
		RInt32: []int32{0, -1, math.MaxInt32}, RInt64: []int64{0, 1 << 62}, RUint32: []uint32{1}, RUint64: []uint64{math.MaxUint64},
		RSint32: []int32{-1, 1}, RSint64: []int64{-2}, RFixed32: []uint32{3}, RFixed64: []uint64{4}, RSfixed32: []int32{-5}, RSfixed64: []int64{-6},
		RFloat: []float32{1e-7, 1e21, 0.1, float32(math.NaN())}, RDouble: []float64{1e-7, 1e21, 5e-324, math.MaxFloat64, 123456789.125},
		RBool: []bool{true, false}, RString: []string{"", "a"}, RBytes: [][]byte{{}, {1}}, RColor: []testingv1.Color{1, 2, 7}, RNested: []*testingv1.Nested{{}, nested},
		MStringInt32: map[string]int32{"b": 2, "a": 1, "": 0}, MInt32String: map[int32]string{-1: "m", 10: "t", 2: "w"},
		MInt64Nested: map[int64]*testingv1.Nested{-3: nested, 3: {}}, MUint32Bytes: map[uint32][]byte{1: {1}},
		MUint64Color: map[uint64]testingv1.Color{1: 1, 99: 99}, MSint32Double: map[int32]float64{-2: 0.5},
		MSint64Float: map[int64]float32{-1 << 40: 2.5}, MFixed32Bool: map[uint32]bool{0: true, 4000000000: false},
		MFixed64String: map[uint64]string{math.MaxUint64: "max"}, MSfixed32Int64: map[int32]int64{-1: -1}, MSfixed64Uint64: map[int64]uint64{1: 1},
		MBoolString:      map[bool]string{true: "t", false: "f"},
		MStringValue:     map[string]*structpb.Value{"n": structpb.NewNullValue(), "s": structpb.NewStringValue("x")},
		MStringNull:      map[string]structpb.NullValue{"z": 0},
		MStringTimestamp: map[string]*timestamppb.Timestamp{"epoch": {}},
		Choice:           &testingv1.Everything_CNested{CNested: nested},
		Other:            &testingv1.Everything_DDouble{DDouble: 0},
		WTimestamp:       &timestamppb.Timestamp{Seconds: -62135596800, Nanos: 1000}, WDuration: &durationpb.Duration{Seconds: -1, Nanos: -500000000},
		WFieldMask: &fieldmaskpb.FieldMask{Paths: []string{"f_int32", "a.b_c"}}, WStruct: st, WValue: structpb.NewNumberValue(3),
		WListValue: lv, WAny: anyNested, WEmpty: &emptypb.Empty{}, WNull: 0,
		WDouble: wrapperspb.Double(0), WFloat: wrapperspb.Float(1.5), WInt64: wrapperspb.Int64(-1 << 60), WUint64: wrapperspb.UInt64(1),
		WInt32: wrapperspb.Int32(0), WUint32: wrapperspb.UInt32(9), WBool: wrapperspb.Bool(false), WString: wrapperspb.String("s"), WBytes: wrapperspb.Bytes([]byte("b")),
		RwTimestamp: []*timestamppb.Timestamp{{Seconds: 253402300799, Nanos: 999999999}, {Nanos: 120000000}},
		RwDuration:  []*durationpb.Duration{{Seconds: 315576000000}, {Nanos: 1}},
		RwValue:     []*structpb.Value{structpb.NewNullValue(), structpb.NewBoolValue(true), structpb.NewStructValue(st), structpb.NewListValue(lv)},
		RwAny:       []*anypb.Any{anyTS, anyAny, anyEmpty, {}},
		RwInt64:     []*wrapperspb.Int64Value{{}, {Value: 5}}, RwNull: []structpb.NullValue{0, 0},
		RwStruct: []*structpb.Struct{{}, st}, RwEmpty: []*emptypb.Empty{{}},
		RwFieldMask: []*fieldmaskpb.FieldMask{{}, {Paths: []string{"x"}}}, RwListValue: []*structpb.ListValue{{}, lv},
		FBigNumber: 1,
	}
	return []proto.Message{
		&testingv1.Everything{},
		full,
		&testingv1.Everything{Choice: &testingv1.Everything_CValue{CValue: structpb.NewNullValue()}, Other: &testingv1.Everything_DBool{}},
		&testingv1.Everything{Choice: &testingv1.Everything_CNull{}},
		&testingv1.Everything{Choice: &testingv1.Everything_CInt32Wrapper{CInt32Wrapper: &wrapperspb.Int32Value{}}},
		&testingv1.Everything{Choice: &testingv1.Everything_CString{CString: ""}, WAny: anyTS},
		&testingv1.Everything{Choice: &testingv1.Everything_CBytes{CBytes: []byte("x")}, WValue: structpb.NewListValue(lv)},
	}
}

// seedJSON are edge cases of protojson's reading; they seed the Unmarshal fuzzer and form
// the table of TestUnmarshalTricky.
var seedJSON = []struct {
	json   string
	accept bool
}{
	{`{}`, true},
	{` { } `, true},
	{``, false},
	{`null`, false},
	{`[]`, false},
	{`{} {}`, false},
	{`{}x`, false},
	{`{"f_int32":1}`, true},
	{`{"fInt32":1}`, true},
	{`{"f_int32":1,"fInt32":2}`, false}, // the same field twice
	{`{"f_int32":null,"fInt32":2}`, false},
	{`{"nope":1}`, false},
	{`{"f_int32":2147483647}`, true},
	{`{"f_int32":2147483648}`, false},
	{`{"f_int32":4294967297}`, false},
	{`{"f_uint32":4294967297}`, false},
	{`{"f_uint32":-1}`, false},
	{`{"f_uint32":4294967295}`, true},
	{`{"f_int32":"12"}`, true},
	{`{"f_int32":" 12"}`, false},
	{`{"f_int32":"12 "}`, false},
	{`{"f_int32":1.0}`, true},
	{`{"f_int32":1.5}`, false},
	{`{"f_int32":1e2}`, true},
	{`{"f_int32":100e-2}`, true},
	{`{"f_int32":1E+2}`, true},
	{`{"f_int32":1e}`, true}, // protojson reads "1e" before a delimiter as 1
	{`{"f_int32":"1e"}`, false},
	{`{"f_int32":1e+}`, false},
	{`{"f_int32":0e+}`, false}, // found by FuzzUnmarshal: zero took a shortcut past the exponent
	{`{"f_int32":-0.0E-}`, false},
	{`{"f_int32":"0e+"}`, false},
	{`{"f_double":0e+}`, false},
	{`{"f_int32":0e}`, true},
	{`{"f_int32":-0}`, true},
	{`{"f_int32":01}`, false},
	{`{"f_int32":1x}`, false},
	{`{"f_int32":true}`, false},
	{`{"f_int64":"-9223372036854775808"}`, true},
	{`{"f_int64":"9223372036854775808"}`, false},
	{`{"f_uint64":"18446744073709551615"}`, true},
	{`{"f_uint64":18446744073709551616}`, false},
	{`{"f_sint32":-2147483648,"f_sfixed32":-1,"f_sint64":"-1","f_sfixed64":-2,"f_fixed32":4294967295,"f_fixed64":"1"}`, true},
	{`{"f_float":3.4e38}`, true},
	{`{"f_float":3.5e38}`, false},
	{`{"f_float":"NaN","f_double":"-Infinity"}`, true},
	{`{"f_double":"Infinity"}`, true},
	{`{"f_double":"nan"}`, false},
	{`{"f_double":"1.5"}`, true},
	{`{"f_double":1e400}`, false},
	{`{"f_double":-0}`, true},
	{`{"f_double":-0.0}`, true},
	{`{"f_bool":true,"f_bool":false}`, false},
	{`{"f_bool":"true"}`, false},
	{`{"f_bool":1}`, false},
	{`{"f_string":"a\u00e9\ud83d\ude00\n\"\\\/"}`, true},
	{`{"f_string":"\ud83d"}`, false},
	{`{"f_string":"\ude00x"}`, false},
	{`{"f_string":"\x"}`, false},
	{"{\"f_string\":\"\x01\"}", false},
	{"{\"f_string\":\"\xff\"}", false},
	{`{"f_string":1}`, false},
	{`{"f_bytes":"AP/+"}`, true},
	{`{"f_bytes":"AP_-"}`, true},
	{`{"f_bytes":"AP8"}`, true},
	{`{"f_bytes":"AP8="}`, true},
	{`{"f_bytes":"A"}`, false},
	{`{"f_bytes":"AP8=\n"}`, false}, // 5 characters: read unpadded, so "=" is refused
	{`{"f_bytes":"!!!!"}`, false},
	{`{"f_color":"COLOR_RED"}`, true},
	{`{"f_color":2}`, true},
	{`{"f_color":99}`, true},
	{`{"f_color":"COLOR_BLUE"}`, false},
	{`{"f_color":"1"}`, false},
	{`{"f_color":null}`, true},
	{`{"myCustomName":"x"}`, true},
	{`{"f_custom":"x"}`, true},
	{`{"fCustom":"x"}`, false},
	{`{"o_int32":0,"o_string":"","o_color":"COLOR_UNSPECIFIED","o_double":-0,"o_bytes":"","o_uint64":"0"}`, true},
	{`{"oInt32":null}`, true},
	{`{"f_nested":{"a":1,"child":{"b":"x"}}}`, true},
	{`{"f_nested":null}`, true},
	{`{"f_nested":[]}`, false},
	{`{"f_self":{"f_self":{"f_self":{}}}}`, true},
	{`{"r_int32":[1,"2",3e0],"r_string":["a"],"r_nested":[{},{"a":1}]}`, true},
	{`{"r_int32":[]}`, true},
	{`{"r_int32":null}`, true},
	{`{"r_int32":[null]}`, false},
	{`{"r_int32":[1,]}`, false},
	{`{"r_int32":[,1]}`, false},
	{`{"r_int32":1}`, false},
	{`{"r_nested":[null]}`, false},
	{`{"r_color":["COLOR_RED",2]}`, true},
	{`{"m_string_int32":{"a":1,"b":2}}`, true},
	{`{"m_string_int32":{"a":1,"a":2}}`, false},
	{`{"m_int32_string":{"1":"a","01":"b"}}`, false}, // 1 and 01 are one key
	{`{"m_int32_string":{"+1":"a","-1":"b"}}`, true},
	{`{"m_int32_string":{"2147483648":"a"}}`, false},
	{`{"m_int32_string":{"1.0":"a"}}`, false},
	{`{"m_bool_string":{"true":"a","false":"b"}}`, true},
	{`{"m_bool_string":{"True":"a"}}`, false},
	{`{"m_uint64_color":{"18446744073709551615":"COLOR_RED"}}`, true},
	{`{"m_fixed32_bool":{"-1":true}}`, false},
	{`{"m_sint64_float":{"-9223372036854775808":1}}`, true},
	{`{"m_int64_nested":{"1":{}}}`, true},
	{`{"m_int64_nested":{"1":null}}`, false},
	{`{"m_string_int32":{"a":null}}`, false},
	{`{"m_string_value":{"a":null,"b":{"c":[1,{}]}}}`, true},
	{`{"m_string_null":{"a":null}}`, true},
	{`{"m_string_null":{"a":0}}`, true},
	{`{"m_string_timestamp":{"a":"1970-01-01T00:00:00Z"}}`, true},
	{`{"m_string_int32":null}`, true},
	{`{"c_string":"a"}`, true},
	{`{"c_string":"a","c_int64":1}`, false},
	{`{"c_string":null,"c_int64":1}`, true},
	{`{"c_value":null}`, true},
	{`{"c_null":null}`, true},
	{`{"c_nested":{}}`, true},
	{`{"c_int32_wrapper":0}`, true},
	{`{"c_int32_wrapper":null}`, true},
	{`{"d_bool":false,"c_color":0}`, true},
	{`{"w_timestamp":"1970-01-01T00:00:00Z"}`, true},
	{`{"w_timestamp":"2024-02-29T12:30:45.123456789+01:00"}`, true},
	{`{"w_timestamp":"0001-01-01T00:00:00Z"}`, true},
	{`{"w_timestamp":"9999-12-31T23:59:59.999999999Z"}`, true},
	{`{"w_timestamp":"2024-02-29T12:30:45.1234567890Z"}`, false},
	{`{"w_timestamp":"2024-02-30T00:00:00Z"}`, false},
	{`{"w_timestamp":"2024-01-01 00:00:00Z"}`, false},
	{`{"w_timestamp":0}`, false},
	{`{"w_duration":"1.5s"}`, true},
	{`{"w_duration":"-0.000000001s"}`, true},
	{`{"w_duration":".5s"}`, true},
	{`{"w_duration":"+3s"}`, true},
	{`{"w_duration":"1.s"}`, true},
	{`{"w_duration":"1"}`, false},
	{`{"w_duration":"315576000001s"}`, false},
	{`{"w_duration":"1.0000000001s"}`, false},
	{`{"w_field_mask":"fInt32,a.bC"}`, true},
	{`{"w_field_mask":""}`, true},
	{`{"w_field_mask":" a "}`, true},
	{`{"w_field_mask":"a_b"}`, false},
	{`{"w_field_mask":"a,,b"}`, false},
	{`{"w_struct":{"a":[1,"x",null,true,{"b":{}}]}}`, true},
	{`{"w_struct":[]}`, false},
	{`{"w_struct":{"a":1,"a":2}}`, false},
	{`{"w_value":null}`, true},
	{`{"w_value":1e400}`, false},
	{`{"w_value":[[[]]]}`, true},
	{`{"w_list_value":[1,null]}`, true},
	{`{"w_list_value":null}`, true},
	{`{"w_list_value":{}}`, false},
	{`{"rw_value":[null]}`, true},
	{`{"rw_value":null}`, false}, // a repeated Value's null is not "unset"
	{`{"rw_null":[null,0]}`, true},
	{`{"w_null":null}`, true},
	{`{"w_null":"NULL_VALUE"}`, true},
	{`{"w_null":1}`, true},
	{`{"w_empty":{}}`, true},
	{`{"w_empty":{"a":1}}`, false},
	{`{"w_empty":null}`, true},
	{`{"w_double":1.5,"w_float":"NaN","w_int64":"-5","w_uint64":5,"w_int32":0,"w_uint32":1,"w_bool":false,"w_string":"","w_bytes":"eA=="}`, true},
	{`{"w_int64":null}`, true},
	{`{"rw_int64":[null]}`, false},
	{`{"rw_int64":[0,"1"]}`, true},
	{`{"w_any":{}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/wsbridge.testing.v1.Nested","a":1,"b":"x"}}`, true},
	{`{"w_any":{"a":1,"@type":"type.googleapis.com/wsbridge.testing.v1.Nested"}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/wsbridge.testing.v1.Nested","nope":1}}`, false},
	{`{"w_any":{"a":1}}`, false},
	{`{"w_any":{"@type":"type.googleapis.com/wsbridge.testing.v1.Nope"}}`, false},
	{`{"w_any":{"@type":""}}`, false},
	{`{"w_any":{"@type":1}}`, false},
	{`{"w_any":{"@type":"type.googleapis.com/wsbridge.testing.v1.Nested","@type":"x"}}`, false},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"1970-01-01T00:00:01Z"}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Timestamp"}}`, false},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Empty"}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Empty","value":{}}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Value","value":{"x":[1]}}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Int64Value","value":"7","x":1}}`, false},
	{`{"w_any":{"@type":"type.googleapis.com/google.protobuf.Any","value":{"@type":"type.googleapis.com/wsbridge.testing.v1.Nested","child":{"a":2}}}}`, true},
	{`{"w_any":{"@type":"type.googleapis.com/wsbridge.testing.v1.Everything","m_string_int32":{"b":1,"a":2},"c_string":"x","f_int64":"5"}}`, true},
	{`{"rw_any":[{},{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1s"}]}`, true},
	{`{"f_big_number":1}`, true},
	{`{"f_int32":1,}`, false},
	{`{"f_int32" 1}`, false},
	{`{"f_int32":1 "f_int64":1}`, false},
	{`{f_int32:1}`, false},
	{`{"f_int32":nul}`, false},
	{`{"f_int32":nullx}`, false},
	{`{"f_nested":{"a":1}`, false},
}

func FuzzMarshal(f *testing.F) {
	for _, m := range seedMessages() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Wire forms Go's Marshal does not write: unpacked repeated numbers, repeated singular
	// fields (last wins, messages merge), oneof switches, unknown fields, wrong wire types.
	f.Add([]byte{0x10, 0x01, 0x10, 0x02})                                                       // f_int32 twice
	f.Add([]byte{0xf0, 0x01, 0x01, 0xf0, 0x01, 0x02, 0xf2, 0x01, 0x01, 0x03})                   // r_int32 unpacked then packed
	f.Add([]byte{0x8a, 0x01, 0x02, 0x08, 0x01, 0x8a, 0x01, 0x02, 0x12, 0x00})                   // f_nested twice: merged
	f.Add([]byte{0xb2, 0x04, 0x01, 0x61, 0xb8, 0x04, 0x05})                                     // c_string then c_int64
	f.Add([]byte{0xc2, 0x04, 0x02, 0x08, 0x01, 0xb8, 0x04, 0x05, 0xc2, 0x04, 0x02, 0x12, 0x00}) // c_nested, c_int64, c_nested
	f.Add([]byte{0xf8, 0xff, 0x03, 0x01, 0x15, 0x01, 0x02, 0x03, 0x04})                         // unknown field; f_int32 as fixed32
	f.Add([]byte{0x93, 0x06, 0x08, 0x01, 0x94, 0x06})                                           // unknown group
	f.Add([]byte{0x72, 0x01, 0xff})                                                             // f_string not UTF-8
	f.Add([]byte{0x92, 0x03, 0x04, 0x0a, 0x00, 0x0a, 0x01})                                     // map entry truncated
	f.Fuzz(func(t *testing.T, wire []byte) {
		checkMarshal(t, everything, wire)
	})
}

func FuzzUnmarshal(f *testing.F) {
	for _, c := range seedJSON {
		f.Add([]byte(c.json))
	}
	for _, m := range seedMessages() {
		b, err := marshalRef.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if b, err = protojson.Marshal(m); err == nil { // JSON names
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkUnmarshal(t, everything, data)
	})
}
