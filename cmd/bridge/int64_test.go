package main

import "testing"

func TestInt64AsNumberFlag(t *testing.T) {
	t.Setenv("BRIDGE_BACKENDS", "a:1")
	t.Setenv("BRIDGE_INT64_AS_NUMBER", "")
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.int64Number || c.int64Set {
		t.Fatalf("default: %v (set %v); want off and unset, so that -config decides", c.int64Number, c.int64Set)
	}
	t.Setenv("BRIDGE_INT64_AS_NUMBER", "true")
	if c, err = parseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if !c.int64Number || !c.int64Set {
		t.Fatalf("from the environment: %v (set %v)", c.int64Number, c.int64Set)
	}
	if c, err = parseFlags([]string{"-int64-as-number=false"}); err != nil {
		t.Fatal(err)
	}
	if c.int64Number || !c.int64Set {
		t.Fatalf("the command line must win: %v (set %v)", c.int64Number, c.int64Set)
	}
	wantFlagError(t, []string{"-backend", "x:1"}, map[string]string{"BRIDGE_INT64_AS_NUMBER": "maybe"}, "-int64-as-number")
}
