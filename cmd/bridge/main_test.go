package main

import (
	"context"
	"flag"
	"io"
	"os"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the tests in a controlled environment: a BRIDGE_* variable of the shell
// would otherwise configure every run and parseFlags below.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "BRIDGE_") {
			os.Unsetenv(name)
		}
	}
	goleak.VerifyTestMain(m)
}

// ended is the context of runs that must fail: if a regression accepted their flags, run
// would return at once instead of serving and hanging the test.
func ended() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

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
		{[]string{"-backend", "x:1", "-max-frame-bytes", "10"}, nil, "-max-frame-bytes"},
		{[]string{"-backend", "x:1", "-max-subscriptions", "-1"}, nil, "-max-subscriptions"},
		{[]string{"-backend", "x:1", "-refresh-interval", "-1s"}, nil, "-refresh-interval"},
		{[]string{"-backend", "x:1", "-drain-timeout", "-1s"}, nil, "-drain-timeout"},
		{[]string{"-backend", "x:1", "-stream", "=questions"}, nil, "-stream"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_PAGE_SIZE": "many"}, "-page-size"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_CALL_TIMEOUT": "soon"}, "-call-timeout"},
		{[]string{"-backend", "x:1", "-stream", "nostream"}, nil, "-stream"},
		{[]string{"-backend", "x:1", "-descriptor-set", "/nonexistent/set.binpb"}, nil, "-descriptor-set"},
		{[]string{"-backend", "x:1", "-listen", "256.0.0.1:http"}, nil, "-listen"},
		{[]string{"-backend", "x:1", "-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-backend", "x:1", "-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-backend", "x:1", "-http-idle-timeout", "0s"}, nil, "-http-idle-timeout"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_HTTP_IDLE_TIMEOUT": "-1s"}, "-http-idle-timeout"},
		{[]string{"-backend", "x:1", "-listen", "127.0.0.1:0", "-metrics-listen", "256.0.0.1:http"}, nil, "-metrics-listen"},
		{[]string{"-backend", "x:1", "-gc-floor-mib", "-1"}, nil, "-gc-floor-mib"},
		{[]string{"-backend", "x:1"}, map[string]string{"BRIDGE_GC_FLOOR_MIB": "lots"}, "-gc-floor-mib"},
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
	err := run(ended(), args, io.Discard, io.Discard)
	if err == nil {
		t.Fatalf("%v %v: no error", args, env)
	}
	msg := err.Error()
	if !strings.Contains(msg, flag) || strings.Contains(msg, "\n") {
		t.Fatalf("%v %v: error %q should be one line naming %s", args, env, msg, flag)
	}
}

// TestEveryFlagHasAnEnvironmentVariable: flagSpecs is the one table of flags; a flag missing
// from it would have no variable and its option's refusals would name no flag.
func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	var c config
	registerFlags(fs, &c)
	seen := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		seen[f.Name] = true
		if envOf(f.Name) == "" {
			t.Errorf("-%s has no environment variable in flagSpecs", f.Name)
		}
	})
	for _, f := range flagSpecs {
		if !seen[f.name] {
			t.Errorf("flagSpecs lists -%s, which is not a flag", f.name)
		}
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

// TestAcceptedFlagsReturnOnEndedContext checks the harness of wantFlagError: flags that are
// accepted make run return nil at once with an ended context, instead of serving.
func TestAcceptedFlagsReturnOnEndedContext(t *testing.T) {
	if err := run(ended(), []string{"-backend", "127.0.0.1:1", "-listen", "127.0.0.1:0", "-metrics-listen", "127.0.0.1:0"}, io.Discard, io.Discard); err != nil {
		t.Fatalf("valid flags: %v", err)
	}
}

// gogc is the GOGC in force, read without setting it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestGCFloorFlag: while the command serves, GOGC is raised for the small heap of this test
// process (internal/gcfloor), and put back when it returns.
func TestGCFloorFlag(t *testing.T) {
	if gogc() != 100 {
		t.Skipf("GOGC is %d in this environment, not 100", gogc())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-backend", "127.0.0.1:1", "-listen", "127.0.0.1:0", "-gc-floor-mib", "32"}, io.Discard, io.Discard)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for gogc() <= 100 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("GOGC still %d 30 s after start with -gc-floor-mib 32", gogc())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC after the command returned: %d, want 100 again", got)
	}
}
