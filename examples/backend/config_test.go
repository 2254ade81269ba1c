package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	for name, tc := range map[string]struct {
		args    []string
		env     func(string) (string, bool)
		want    config
		wantErr string
	}{
		"defaults": {nil, env(), config{"127.0.0.1:9090", "127.0.0.1:9091", "data/polls.db", ""}, ""},
		"env": {nil, env("BACKEND_ADDR", ":1", "BACKEND_HTTP_ADDR", "", "BACKEND_DB", "x.db", "BACKEND_NATS_URL", "nats://n:4222"),
			config{":1", "", "x.db", "nats://n:4222"}, ""},
		"flags over env": {[]string{"-grpc-addr", ":2", "-nats-url", "a:1,tls://b:2"}, env("BACKEND_ADDR", ":1"),
			config{":2", "127.0.0.1:9091", "data/polls.db", "a:1,tls://b:2"}, ""},
		"bad flag":  {[]string{"-grpc-addr", "nope"}, env(), config{}, `invalid -grpc-addr "nope": missing port in address`},
		"bad env":   {nil, env("BACKEND_HTTP_ADDR", "h:99999"), config{}, `invalid -http-addr (from BACKEND_HTTP_ADDR) "h:99999": bad port "99999"`},
		"empty db":  {[]string{"-db="}, env(), config{}, `invalid -db "": must not be empty`},
		"bad nats":  {[]string{"-nats-url", "nats://"}, env(), config{}, `invalid -nats-url "nats://": no host in "nats://"`},
		"unknown":   {[]string{"-port", "1"}, env(), config{}, "flag provided but not defined: -port"},
		"extra arg": {[]string{"serve"}, env(), config{}, `unexpected argument "serve"`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseConfig(tc.args, tc.env, io.Discard)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}

	var usage strings.Builder
	if _, err := parseConfig([]string{"-h"}, env(), &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, s := range []string{"-grpc-addr", "BACKEND_ADDR", "-http-addr", "BACKEND_HTTP_ADDR", "-db", "BACKEND_DB", "-nats-url", "BACKEND_NATS_URL"} {
		if !strings.Contains(usage.String(), s) {
			t.Errorf("usage lacks %s:\n%s", s, usage.String())
		}
	}
}
