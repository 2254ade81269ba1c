package main

import "testing"

func TestSchemaAndDebugFlags(t *testing.T) {
	t.Setenv("BRIDGE_BACKENDS", "a:1")
	t.Setenv("BRIDGE_SCHEMA", "")
	t.Setenv("BRIDGE_DEBUG", "")
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.schema || c.debug {
		t.Fatalf("defaults: schema %v debug %v, want schema on and debug off", c.schema, c.debug)
	}

	t.Setenv("BRIDGE_SCHEMA", "false")
	t.Setenv("BRIDGE_DEBUG", "true")
	if c, err = parseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if c.schema || !c.debug {
		t.Fatalf("from the environment: schema %v debug %v, want schema off and debug on", c.schema, c.debug)
	}

	if c, err = parseFlags([]string{"-schema=true", "-debug=false"}); err != nil {
		t.Fatal(err)
	}
	if !c.schema || c.debug {
		t.Fatalf("the command line must win: schema %v debug %v", c.schema, c.debug)
	}

	t.Setenv("BRIDGE_DEBUG", "maybe")
	if _, err := parseFlags(nil); err == nil {
		t.Fatal("BRIDGE_DEBUG=maybe was accepted")
	}
}
