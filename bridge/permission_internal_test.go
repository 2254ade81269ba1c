package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	bridgev1 "github.com/wsbridge/wsbridge/proto/bridge/v1"
)

// permissionsService is a service whose proto declares permissions: the resource's default
// and one action's.
func permissionsService(t *testing.T, resourcePerm, actionPerm string) *resource {
	t.Helper()
	svcOpts := &descriptorpb.ServiceOptions{}
	proto.SetExtension(svcOpts, bridgev1.E_Resource, &bridgev1.ResourceOptions{Stream: "things", Permission: resourcePerm})
	createOpts := &descriptorpb.MethodOptions{}
	proto.SetExtension(createOpts, bridgev1.E_Action, &bridgev1.ActionOptions{Permission: actionPerm})
	str := func(s string) *string { return &s }
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       str("things.proto"),
		Package:    str("things.v1"),
		Syntax:     str("proto3"),
		Dependency: []string{"bridge/v1/options.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: str("Thing"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: str("id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: str("id"),
			}}},
			{Name: str("Key"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: str("pk"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: str("pk"),
			}}},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    str("ThingService"),
			Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: str("Create"), InputType: str(".things.v1.Thing"), OutputType: str(".things.v1.Thing"), Options: createOpts},
				{Name: str("Retrieve"), InputType: str(".things.v1.Key"), OutputType: str(".things.v1.Thing")},
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := buildCatalog([]serviceSource{{desc: fd.Services().Get(0)}})
	if err != nil {
		t.Fatal(err)
	}
	return cat.streams["things"]
}

// TestPermissionPrecedence: config per action > config per stream > proto action > proto
// resource > config global > AllowAny; unknown actions skip the proto action.
func TestPermissionPrecedence(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	role := func(r string) Permission { return HasRole(r) }
	cases := []struct {
		name                           string
		resourcePerm, actionPerm       string
		policy                         Policy
		create, retrieve, unknown, sub string
	}{
		{"nothing", "", "", Policy{}, "allow_any", "allow_any", "allow_any", "allow_any"},
		{"global", "", "", Policy{Default: role("g")}, "role:g", "role:g", "role:g", "role:g"},
		{"proto resource over global", "role:r", "", Policy{Default: role("g")}, "role:r", "role:r", "role:r", "role:r"},
		{"proto action over proto resource", "role:r", "role:a", Policy{Default: role("g")}, "role:a", "role:r", "role:r", "role:r"},
		{"config stream over proto", "role:r", "role:a", Policy{Default: role("g"), Streams: map[string]StreamPolicy{
			"things": {Default: role("s")}}}, "role:s", "role:s", "role:s", "role:s"},
		{"config action over all", "role:r", "role:a", Policy{Default: role("g"), Streams: map[string]StreamPolicy{
			"things": {Default: role("s"), Actions: map[string]Permission{"create": role("c"), "explode": role("x"), "subscribe": role("sub")}}}},
			"role:c", "role:s", "role:x", "role:sub"},
		{"config action, proto below", "role:r", "role:a", Policy{Streams: map[string]StreamPolicy{
			"things": {Actions: map[string]Permission{"retrieve": role("c")}}}}, "role:a", "role:c", "role:r", "role:r"},
		{"other stream configured", "", "role:a", Policy{Default: role("g"), Streams: map[string]StreamPolicy{
			"others": {Default: role("s")}}}, "role:a", "role:g", "role:g", "role:g"},
		{"invalid proto permission denies", "everyone", "", Policy{}, "deny_all", "deny_all", "deny_all", "deny_all"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := permissionsService(t, tc.resourcePerm, tc.actionPerm)
			if res.permission != tc.resourcePerm || res.actions["create"].permission != tc.actionPerm {
				t.Fatalf("catalog read permissions %q %q", res.permission, res.actions["create"].permission)
			}
			acc := resolveAccess(res, accessConfig{policy: tc.policy, logger: quiet})
			for action, want := range map[string]string{"create": tc.create, "retrieve": tc.retrieve, "explode": tc.unknown, "subscribe": tc.sub} {
				if got := fmt.Sprint(acc.of(action)); got != want {
					t.Fatalf("%s: %s, want %s", action, got, want)
				}
			}
			if acc.eventPerEvent {
				t.Fatal("built-in permissions checked per event")
			}
		})
	}

	// A custom permission makes every decision include it, and events are checked one by one.
	res := permissionsService(t, "", "")
	acc := resolveAccess(res, accessConfig{custom: []Permission{PermissionFunc(func(id *Identity, stream, action, pk string) bool { return pk != "7" })}})
	if !acc.eventPerEvent {
		t.Fatal("a custom permission must be checked per event")
	}
	if acc.of("retrieve").Allow(nil, "things", "retrieve", "7") || !acc.of("retrieve").Allow(nil, "things", "retrieve", "8") {
		t.Fatal("custom permission not applied")
	}
	if acc.of("explode").Allow(nil, "things", "explode", "7") {
		t.Fatal("custom permission not applied to unknown actions")
	}
}

func TestRequestPKCanonical(t *testing.T) {
	res := permissionsService(t, "", "")
	for raw, want := range map[string]string{`"7"`: "7", `7`: "7", `"007"`: "7", `"x"`: "x", `{}`: ""} {
		if got := requestPK(res, "retrieve", []byte(raw)); got != want {
			t.Fatalf("pk %s: %q, want %q", raw, got, want)
		}
	}
	if got := requestPK(res, "retrieve", nil); got != "" {
		t.Fatalf("no pk: %q", got)
	}
}
