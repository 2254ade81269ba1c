package main

import (
	"strings"
	"testing"
)

func TestBadFlagsNameTheFlag(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{nil, nil, "-backend"},
		{[]string{"-backend", "x:1", "-page-size", "0"}, nil, "-page-size"},
		{[]string{"-backend", "x:1", "-page-size", "50", "-max-page-size", "10"}, nil, "-max-page-size"},
		{[]string{"-backend", "x:1", "-call-timeout", "-1s"}, nil, "-call-timeout"},
		{[]string{"-backend", "x:1", "-max-in-flight", "0"}, nil, "-max-in-flight"},
		{[]string{"-backend", "x:1", "-queue-bytes", "10"}, nil, "-queue-bytes"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_PAGE_SIZE": "many"}, "-page-size"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_CALL_TIMEOUT": "soon"}, "-call-timeout"},
		{[]string{"-backend", "x:1", "-stream", "nostream"}, nil, "-stream"},
		{[]string{"-backend", "x:1", "-descriptor-set", "/nonexistent/set.binpb"}, nil, "-descriptor-set"},
		{[]string{"-backend", "x:1", "-listen", "256.0.0.1:http"}, nil, "-listen"},
		{[]string{"-backend", "x:1", "-log-level", "loud"}, nil, "-log-level"},
	}
	for _, tc := range cases {
		wantFlagError(t, tc.args, tc.env, tc.flag)
	}
}

// wantFlagError runs the command with args and env and checks that it fails with one line
// naming flag.
func wantFlagError(t *testing.T, args []string, env map[string]string, flag string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	defer func() {
		for k := range env {
			t.Setenv(k, "")
		}
	}()
	err := run(args)
	if err == nil {
		t.Fatalf("%v %v: no error", args, env)
	}
	msg := err.Error()
	if !strings.Contains(msg, flag) || strings.Contains(msg, "\n") {
		t.Fatalf("%v %v: error %q should be one line naming %s", args, env, msg, flag)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("BRIDGE_BACKENDS", "a:1,b:2")
	t.Setenv("BRIDGE_PAGE_SIZE", "10")
	c, err := parseFlags([]string{"-page-size", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.backends) != 2 || c.pageSize != 7 {
		t.Fatalf("backends %v page size %d: the command line must win over the environment", c.backends, c.pageSize)
	}
}
