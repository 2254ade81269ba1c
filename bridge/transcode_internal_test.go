package bridge

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/wsbridge/wsbridge/internal/wirejson"
)

// buildMessage is buildRequest's request as a message, whichever way it was built.
func buildMessage(t testing.TB, a *action, r *request, pd pageDefaults) (*dynamicpb.Message, page, *errorReply) {
	t.Helper()
	req, pg, e := buildRequest(nil, a, r, pd)
	if e != nil || !a.wire {
		return req.msg, pg, e
	}
	msg := dynamicpb.NewMessage(a.req)
	if err := proto.Unmarshal(req.wire, msg); err != nil {
		t.Fatalf("the request's wire bytes %x: %v", req.wire, err)
	}
	return msg, pg, nil
}

// Every action of the example goes through wirejson; a message wirejson does not support
// (proto2's required fields) keeps protojson, decided when the catalog is built, and its
// request is still built.
func TestWirejsonDecidedPerAction(t *testing.T) {
	for _, res := range pollsCatalog(t).streams {
		for _, a := range res.actions {
			if !a.wire {
				t.Errorf("%s does not go through wirejson", a.method)
			}
		}
	}

	fd := &descriptorpb.FileDescriptorProto{Name: proto.String("legacy.proto"), Package: proto.String("legacy"), Syntax: proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Thing"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("id"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_REQUIRED.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum()},
				{Name: proto.String("title"), Number: proto.Int32(2), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()},
			}},
			{Name: proto.String("GetThingRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("pk"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum()},
			}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("ThingService"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: proto.String("Retrieve"), InputType: proto.String(".legacy.GetThingRequest"), OutputType: proto.String(".legacy.Thing")},
		}}},
	}
	file, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := buildCatalogWith([]serviceSource{{desc: file.Services().Get(0), stream: "things"}}, catalogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a := cat.streams["things"].actions["retrieve"]
	if a == nil || a.wire {
		t.Fatalf("retrieve of a proto2 message with a required field: %+v", a)
	}
	msg, _, e := buildMessage(t, a, testRequest(t, `"7"`, ``), pageDefaults{size: 10, max: 100})
	if e != nil || msg.Get(a.pk).Int() != 7 {
		t.Fatalf("fallback request %v, error %v", msg, e)
	}
}

// A reply written from the response's wire bytes is protojson's, compact, for every kind of
// action and with -int64-as-number; a list's meta reads the last value of a field sent twice,
// as the wire format says.
func TestWireReplyMatchesProtojson(t *testing.T) {
	res := pollsCatalog(t).streams["questions"]
	q := func(id int64, text string) *dynamicpb.Message {
		m := dynamicpb.NewMessage(res.actions["retrieve"].resp)
		m.Set(m.Descriptor().Fields().ByName("id"), protoreflect.ValueOfInt64(id))
		m.Set(m.Descriptor().Fields().ByName("question_text"), protoreflect.ValueOfString(text))
		return m
	}
	for _, name := range []string{"retrieve", "create", "delete", "list"} {
		a := res.actions[name]
		var resp *dynamicpb.Message
		var extra []byte
		switch name {
		case "list":
			resp = dynamicpb.NewMessage(a.resp)
			items := resp.Mutable(a.items).List()
			items.Append(protoreflect.ValueOfMessage(q(1, "é \"quoted\"")))
			items.Append(protoreflect.ValueOfMessage(q(9007199254740993, "")))
			count := a.resp.Fields().ByName("count")
			resp.Set(count, protoreflect.ValueOfInt32(5))
			extra = protowire.AppendVarint(protowire.AppendTag(nil, count.Number(), protowire.VarintType), 2)
		case "delete":
			resp = dynamicpb.NewMessage(a.resp)
		default:
			resp = q(42, "What's new?")
		}
		wire, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		wire = append(wire, extra...)
		got := dynamicpb.NewMessage(a.resp)
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatal(err)
		}
		pg := page{number: 1, size: 10}
		for _, num := range []bool{false, true} {
			want, err := appendResponseReply(nil, res, a, got, pg, []byte(`"r"`), num)
			if err != nil {
				t.Fatal(err)
			}
			out, err := appendWireReply(nil, res, a, wire, pg, []byte(`"r"`), num)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != compactJSON(t, want) {
				t.Errorf("%s (int64 as number %v):\n got %s\nwant %s", name, num, out, compactJSON(t, want))
			}
		}
	}
}

// wirejson's errors become the reply's field errors: the top-level field, and the rest of a
// nested field's path before the message; an error in no field is "Invalid data".
func TestWireDataError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{&wirejson.Error{Field: "votes", Msg: "Not a valid int64."}, `[{"votes":["Not a valid int64."]}]`},
		{&wirejson.Error{Field: "book.author.name", Msg: "Not a valid string."}, `[{"book":["author.name: Not a valid string."]}]`},
		{&wirejson.Error{Msg: "invalid JSON at offset 3: unexpected \"}\""}, `["Invalid data: invalid JSON at offset 3: unexpected \"}\""]`},
	} {
		e := wireDataError(c.err)
		if got := string(e.appendErrors(nil)); e.Status != 400 || got != c.want {
			t.Errorf("%v: %d %s, want 400 %s", c.err, e.Status, got, c.want)
		}
	}
}
