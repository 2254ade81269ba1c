package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The whole program runs against the real processes in scripts/test (a brief run, bridge
// only) and in docs/benchmarks.md; these tests pin the parts that decide the numbers.

func TestEventTextRoundTrip(t *testing.T) {
	at := time.Unix(1_800_000_000, 123456789)
	text := eventText(17, at, 64)
	if len(text) != 64 {
		t.Fatalf("len %d, want 64: %q", len(text), text)
	}
	frame := []byte(`{"stream":"questions","payload":{"action":"update","data":{"id":"1","question_text":"` + text + `","published":false}}}`)
	i := strings.Index(string(frame), marker)
	seq, nanos, ok := parseStamp(frame[i+len(marker):])
	if !ok || seq != 17 || nanos != at.UnixNano() {
		t.Errorf("parseStamp = %d, %d, %v; want 17, %d", seq, nanos, ok, at.UnixNano())
	}
	for _, bad := range []string{"", "x", "12", "12.", "12.x", ".5."} {
		if _, _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp(%q) succeeded", bad)
		}
	}
}

func TestHasPing(t *testing.T) {
	ping := []byte("{}")
	for frame, want := range map[string]bool{
		"{}":                                true,
		`{"push":{"channel":"b"}}` + "\n{}": true,
		"{}\n" + `{"push":{}}`:              true,
		`{"push":{"pub":{"data":{}}}}`:      false,
		"":                                  false,
	} {
		if got := hasPing([]byte(frame), ping); got != want {
			t.Errorf("hasPing(%q) = %v", frame, got)
		}
	}
	if hasPing([]byte("{}"), nil) {
		t.Error("a server without application pings has none")
	}
}

func TestPercentileAndCombine(t *testing.T) {
	var lat []int32
	for i := 1; i <= 100; i++ {
		lat = append(lat, int32(i*1000)) // 1..100 ms
	}
	if p := percentile(lat, 0.99); p != 99 {
		t.Errorf("p99 = %v, want 99", p)
	}
	if p := percentile(lat, 1); p != 100 {
		t.Errorf("max = %v", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("percentile(nil) = %v", p)
	}
	rows := []*row{
		{Server: "bridge", Round: "1", Delivered: 10, Window: 1, CPU: cpuSecs{Server: 1, Backend: 1}, lat: []int32{1000, 3000}},
		{Server: "centrifugo", Round: "1", Delivered: 10, Window: 1, CPU: cpuSecs{Server: 1}, lat: []int32{1000}},
		{Server: "bridge", Round: "2", Delivered: 30, Window: 1, CPU: cpuSecs{Server: 1, Backend: 1}, lat: []int32{2000}},
	}
	all := combine("bridge", rows)
	if all.Delivered != 40 || all.PerSec != 20 || all.PerCPU != 10 || all.Max != 3 || all.P50 != 2 {
		t.Errorf("combined: %+v", all)
	}
	c := combine("centrifugo", rows)
	r := ratios(append(rows, all, c))
	if len(r) != 1 || r[0].P99 != 3 || r[0].PerCPU != 1 {
		t.Errorf("ratios: %+v", r)
	}
}

func TestParseFlagsNamesTheBadFlag(t *testing.T) {
	req := []string{"-bridge-bin", "b", "-backend-bin", "k", "-dir", "d", "-centrifugo", ""}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-subs", "0"}, "-subs"},
		{[]string{"-events", "0"}, "-events"},
		{[]string{"-rate", "0"}, "-rate"},
		{[]string{"-text-bytes", "300"}, "-text-bytes"},
		{[]string{"-source-addrs", "300"}, "-source-addrs"},
		{[]string{"-servers", "nginx"}, "-servers"},
		{[]string{"-servers", "centrifugo"}, "-servers"},
	} {
		_, err := parseFlags(append(append([]string{}, req...), tc.args...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
	if _, err := parseFlags([]string{"-dir", "d"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-bridge-bin") {
		t.Errorf("no binaries: %v", err)
	}
	c, err := parseFlags(append(req, "-subs", "12000"), io.Discard)
	if err != nil || c.sourceAddrs != 3 || strings.Join(c.servers, ",") != "bridge" {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}
