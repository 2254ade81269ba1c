package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBadHTTPRulesNameTheFlag(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(bad, []byte("http:\n  rules:\n    - selector: a.B.C\n      get: no-slash\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantFlagError(t, []string{"-backend", "x:1", "-http-rules", bad}, nil, "-http-rules")
	wantFlagError(t, []string{"-backend", "x:1", "-http-rules", filepath.Join(t.TempDir(), "missing.yaml")}, nil, "-http-rules")
	wantFlagError(t, []string{"-backend", "x:1"}, map[string]string{"BRIDGE_HTTP_RULES": bad}, "-http-rules")
}
