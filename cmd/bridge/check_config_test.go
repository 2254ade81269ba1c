package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkConfig runs bridge -check-config with args and env, with a context that does not
// end: a check that served instead of returning would hang until the test's deadline.
func checkConfig(t *testing.T, args []string, env map[string]string) (string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"-check-config"}, args...), &out, io.Discard)
	return out.String(), err
}

// TestCheckConfigOK: a good configuration prints "ok", without listening (its -listen
// address is taken) and without connecting to the backend.
func TestCheckConfigOK(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("http:\n  rules:\n    - selector: polls.v1.QuestionService.Retrieve\n      get: /v1/questions/{pk}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := checkConfig(t, []string{"-backend", backend.Addr().String(), "-listen", taken.Addr().String(), "-http-rules", rules,
		"-log-format", "json"}, map[string]string{
		"BRIDGE_PAGE_SIZE":            "10",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + backend.Addr().String(), // checked, never dialed
	})
	if err != nil {
		t.Fatalf("check-config: %v", err)
	}
	if out != "ok\n" {
		t.Fatalf("check-config printed %q, want \"ok\\n\"", out)
	}
	// Nothing is waiting to be accepted: neither the backend nor the exporter was dialed.
	backend.(*net.TCPListener).SetDeadline(time.Now())
	if c, err := backend.Accept(); err == nil {
		c.Close()
		t.Fatal("check-config connected to the backend")
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("accept: %v", err)
	}
}

// TestCheckConfigNamesTheBadFlag: each kind of bad setting fails with one line naming the
// flag or variable, and prints no "ok".
func TestCheckConfigNamesTheBadFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badConfig := write("bad.json", `{"permissions":{"default":"allow_everyone"}}`)
	badRules := write("rules.yaml", "http:\n  rules:\n    - selector: a.B.C\n      get: no-slash\n")
	notASet := write("set.binpb", "not a descriptor set")
	notKeys := write("keys.pem", "hello")
	base := []string{"-backend", "127.0.0.1:1", "-listen", "127.0.0.1:0"}
	cases := []struct {
		args []string
		env  map[string]string
		name string // what the error must name
	}{
		{[]string{"-page-size", "0"}, nil, "-page-size"},
		{nil, map[string]string{"BRIDGE_MAX_IN_FLIGHT": "0"}, "-max-in-flight"},
		{nil, map[string]string{"BRIDGE_CALL_TIMEOUT": "soon"}, "-call-timeout"},
		{[]string{"-config", badConfig}, nil, "-config"},
		{[]string{"-config", filepath.Join(dir, "missing.json")}, nil, "-config"},
		{[]string{"-http-rules", badRules}, nil, "-http-rules"},
		{[]string{"-descriptor-set", notASet}, nil, "-descriptor-set"},
		{[]string{"-jwt-keys", notKeys}, nil, "-jwt-keys"},
		{[]string{"-jwt-secret", "short"}, nil, "-jwt-secret"},
		{[]string{"-tls-cert", filepath.Join(dir, "no.crt"), "-tls-key", filepath.Join(dir, "no.key")}, nil, "-tls-cert"},
		{[]string{"-backend-ca", notKeys}, nil, "-backend-ca"},
		{[]string{"-listen", "256.0.0.1:http"}, nil, "-listen"},
		{[]string{"-listen", "127.0.0.1"}, nil, "-listen"},
		{[]string{"-metrics-listen", "127.0.0.1:nope"}, nil, "-metrics-listen"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-backend", "%zz"}, nil, "-backend"},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := checkConfig(t, append(append([]string(nil), base...), tc.args...), tc.env)
			if err == nil {
				t.Fatalf("%v %v: accepted, printed %q", tc.args, tc.env, out)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.name) || strings.Contains(msg, "\n") {
				t.Fatalf("%v %v: error %q should be one line naming %s", tc.args, tc.env, msg, tc.name)
			}
			if out != "" {
				t.Fatalf("%v %v: printed %q with an error", tc.args, tc.env, out)
			}
		})
	}
}
