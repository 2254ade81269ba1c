package bridge

import (
	"encoding/json"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pollsv1 "github.com/wsbridge/wsbridge/proto/polls/v1"
)

func TestReplicaList(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   []string
	}{
		{"127.0.0.1:9090", nil},
		{"dns:///polls:9090", nil},
		{"a:1|b:2", []string{"a:1", "b:2"}},
		{" a:1 | b:2 |", []string{"a:1", "b:2"}},
		{"dns:///a:1|b:2", nil}, // a scheme: the resolver's business
	} {
		got, ok := replicaList(tc.target)
		if ok != (tc.want != nil) || !slices.Equal(got, tc.want) {
			t.Errorf("replicaList(%q) = %q, %v; want %q", tc.target, got, ok, tc.want)
		}
	}
}

// TestRetriedMethods: only retrieve and list are retried; create, update, patch, delete and
// custom actions (publish, vote, report) never are, whatever their HTTP verb.
func TestRetriedMethods(t *testing.T) {
	svcs := pollsv1.File_polls_v1_polls_proto.Services()
	var srcs []serviceSource
	for i := 0; i < svcs.Len(); i++ {
		srcs = append(srcs, serviceSource{desc: svcs.Get(i)})
	}
	cat, err := buildCatalog(srcs)
	if err != nil {
		t.Fatal(err)
	}
	got := idempotentMethods(cat, nil)
	slices.Sort(got)
	want := []string{
		"/polls.v1.ChoiceService/List", "/polls.v1.ChoiceService/Retrieve",
		"/polls.v1.QuestionService/List", "/polls.v1.QuestionService/Retrieve",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("retried methods %q, want %q", got, want)
	}
}

// TestServiceConfigValid: gRPC accepts the config with and without retried methods, and the
// retry policy names exactly the methods given.
func TestServiceConfigValid(t *testing.T) {
	sc := &serviceConfig{}
	for _, methods := range [][]string{nil, {"/polls.v1.QuestionService/Retrieve", "/polls.v1.QuestionService/List"}} {
		js := sc.build(methods)
		cc, err := grpc.NewClient("passthrough:///127.0.0.1:1",
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(js))
		if err != nil {
			t.Fatalf("gRPC rejects %s: %v", js, err)
		}
		cc.Close()
		var cfg struct {
			MethodConfig []struct {
				Name []struct{ Service, Method string }
			}
		}
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			t.Fatal(err)
		}
		var named []string
		for _, mc := range cfg.MethodConfig {
			for _, n := range mc.Name {
				if n.Service == "" || n.Method == "" {
					t.Fatalf("a method config name without service or method retries too much: %s", js)
				}
				named = append(named, "/"+n.Service+"/"+n.Method)
			}
		}
		if !slices.Equal(named, methods) {
			t.Fatalf("retry policy for %q, want %q", named, methods)
		}
	}
}
