package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The whole harness runs against the real processes in scripts/test (a brief run) and in
// docs/reliability.md; these tests pin the accounting that decides pass or fail.

func TestParseFlagsNamesTheBadFlag(t *testing.T) {
	req := []string{"-bridge-bin", "b", "-backend-bin", "k", "-dir", "d"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-conns", "0"}, "-conns"},
		{[]string{"-subs", "0"}, "-subs"},
		{[]string{"-rate", "0"}, "-rate"},
		{[]string{"-faults", "network"}, "-faults"},
		{[]string{"-source-addrs", "300"}, "-source-addrs"},
		{nil, "-bridge-bin"},
	} {
		args := tc.args
		if tc.want != "-bridge-bin" {
			args = append(append([]string{}, req...), args...)
		}
		_, err := parseFlags(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseFlags(%q) = %v, want one line naming %s", tc.args, err, tc.want)
		}
	}
	c, err := parseFlags(append(req, "-conns", "10000", "-faults", "none"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.sourceAddrs != 5 || len(c.faults) != 0 {
		t.Errorf("source addrs %d, faults %v; want 5 and none", c.sourceAddrs, c.faults)
	}
}

// patch acknowledges patch seq of s as the client would see its 200.
func patch(b *book, s *subState) int {
	r := b.startPatch(s)
	b.patched(s, r, 200)
	return r.seq
}

func TestBookWindows(t *testing.T) {
	st := &stats{}
	b := &book{st: st}
	s := &subState{client: 7, index: 1, pk: "42"}
	ev := func(seq int) { b.event(s, patchText(7, 1, seq)) }

	b.confirmed(s)
	p1, p2, p3 := patch(b, s), patch(b, s), patch(b, s)
	ev(p1)
	ev(p3) // p2 missing while a later change arrived: lost
	p4 := patch(b, s)
	b.notice(s, 503, json.RawMessage(`null`)) // p4's event may have died with the backend
	_ = p4
	if got := [3]int64{st.verified.Load(), st.lost.Load(), st.unverified.Load()}; got != [3]int64{2, 1, 1} {
		t.Errorf("after the first window verified/lost/unverified = %v, want [2 1 1]", got)
	}
	if p2 != 2 {
		t.Fatalf("sequence %d", p2)
	}

	// A change made during the outage is not expected; one delivered twice is a duplicate.
	p5 := patch(b, s)
	b.notice(s, 200, json.RawMessage(`{"action":"update","resumed":true}`))
	ev(p5)
	p6 := patch(b, s)
	ev(p6)
	ev(p6)
	if st.dupEvents.Load() != 1 {
		t.Errorf("duplicates %d, want 1", st.dupEvents.Load())
	}
	// The final window is strict: a change answered 200 whose event never came is lost.
	p7 := patch(b, s)
	_ = p7
	b.closeWindow(s, true)
	if got := [3]int64{st.verified.Load(), st.lost.Load(), st.unverified.Load()}; got != [3]int64{3, 2, 1} {
		t.Errorf("at the end verified/lost/unverified = %v, want [3 2 1]", got)
	}

	// An event of a change the client did not make, and a resumed while live, are violations.
	before := st.violations.Load()
	b.confirmed(s)
	b.event(s, "soak c8 q1 n1")
	b.notice(s, 200, json.RawMessage(`{"resumed":true}`))
	if st.violations.Load()-before != 2 {
		t.Errorf("violations %d, want 2", st.violations.Load()-before)
	}
}

// A patch answered after its window ended is not expected in the next one.
func TestBookPatchAcrossOutage(t *testing.T) {
	st := &stats{}
	b := &book{st: st}
	s := &subState{client: 1, index: 0, pk: "1"}
	b.confirmed(s)
	r := b.startPatch(s)
	if b.startPatch(s) != nil {
		t.Fatal("a second patch started while one is in flight")
	}
	b.notice(s, 503, nil)
	b.notice(s, 200, json.RawMessage(`{"resumed":true}`))
	b.patched(s, r, 200)
	b.closeWindow(s, true)
	if st.lost.Load() != 0 || st.verified.Load() != 0 {
		t.Errorf("lost %d verified %d, want 0 0", st.lost.Load(), st.verified.Load())
	}
}

func TestParsePatchText(t *testing.T) {
	if n, ok := parsePatchText(patchText(12, 3, 45), 12, 3); !ok || n != 45 {
		t.Errorf("got %d %v", n, ok)
	}
	for _, s := range []string{patchText(1, 3, 45), patchText(12, 3, 45) + "x", "soak c12 q3 n"} {
		if _, ok := parsePatchText(s, 12, 3); ok {
			t.Errorf("%q parsed", s)
		}
	}
}

// The final check waits for an event only while the window it was owed in lasts.
func TestWaitSeenEndsWithTheWindow(t *testing.T) {
	b := &book{st: &stats{}}
	s := &subState{client: 2, index: 0, pk: "5"}
	b.confirmed(s)
	r := b.startPatch(s)
	b.patched(s, r, 200)
	if !r.counted {
		t.Fatal("a patch answered 200 in a live window is not owed")
	}
	never := make(chan struct{})
	go b.notice(s, 503, nil)
	if seen, ended := b.waitSeen(s, r.seq, r.win, never, never); seen || !ended {
		t.Fatalf("after a notice: seen %v ended %v, want false true", seen, ended)
	}
	b.notice(s, 200, json.RawMessage(`{"resumed":true}`))
	r = b.startPatch(s)
	b.patched(s, r, 200)
	go b.event(s, patchText(2, 0, r.seq))
	if seen, _ := b.waitSeen(s, r.seq, r.win, never, never); !seen {
		t.Fatal("the event was not seen")
	}
}

// A subscribe retry left over from an older connection must not replace the request_id of
// the subscription a newer connection made: events for the newer one would look unknown.
func TestStaleRetryKeepsTheNewerSubscribe(t *testing.T) {
	s := &subState{client: 3, index: 0, pk: "9"}
	if !s.subscribing(1, "r1") || !s.subscribing(2, "r5") {
		t.Fatal("subscribes in session order were refused")
	}
	if s.subscribing(1, "r6") {
		t.Fatal("a retry of session 1 replaced session 2's subscribe")
	}
	if got := s.currentID(); got != "r5" {
		t.Fatalf("current request_id %q, want r5", got)
	}
	if !s.subscribing(2, "r7") {
		t.Fatal("a retry of the current session was refused")
	}
}

func TestAbnormalReasons(t *testing.T) {
	for _, tc := range []struct{ err, want string }{
		{"websocket: close 1006 (abnormal closure): unexpected EOF", "EOF without a close frame"},
		{"read tcp 127.0.0.3:41854->127.0.0.1:41839: read: connection reset by peer", "connection reset (RST)"},
		{"read tcp 127.0.0.3:41854->127.0.0.1:41839: i/o timeout", "read tcp ADDR->ADDR: i/o timeout"},
	} {
		if got := abnormalReason(errors.New(tc.err)); got != tc.want {
			t.Errorf("abnormalReason(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestScanLogCountsConnectionLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge-1.log")
	log := `time=2026-12-02T17:00:00Z level=INFO msg="bridge listening" ws=ws://x/ws
time=2026-12-02T17:00:01Z level=WARN msg="connection lost: the client read nothing for the write timeout" write_timeout=10s remote=127.0.0.2:40001
time=2026-12-02T17:00:02Z level=WARN msg="connection lost: the client read nothing for the write timeout; no close frame sent" code=1001 write_timeout=10s remote=127.0.0.3:40002
time=2026-12-02T17:00:03Z level=INFO msg="closing slow consumer" queued_bytes=1048576
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	facts := &logFacts{lines: map[string]int64{}, starved: map[string]bool{}}
	if p, r, d, _ := scanLog(path, "127.0.0.1:9000", facts); p+r+d != 0 {
		t.Errorf("scanLog found %d panics, %d races, %d drains in a clean log", p, r, d)
	}
	if len(facts.lines) != 3 || facts.lines["closing slow consumer"] != 1 || facts.lines["connection lost: the client read nothing for the write timeout"] != 1 {
		t.Errorf("connection lines %v", facts.lines)
	}
	want := map[string]bool{"127.0.0.1:9000 127.0.0.2:40001": true, "127.0.0.1:9000 127.0.0.3:40002": true}
	if len(facts.starved) != 2 || !facts.starved["127.0.0.1:9000 127.0.0.2:40001"] || !facts.starved["127.0.0.1:9000 127.0.0.3:40002"] {
		t.Errorf("starved connections %v, want %v", facts.starved, want)
	}
}

// A 1006 passes only when the bridge's log names that connection as dropped by the write
// timeout; any other 1006 fails the run.
func TestReportExcusesOnlyLoggedWriteTimeouts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bridge-1.log")
	log := `time=2026-12-02T17:00:01Z level=WARN msg="connection lost: the client read nothing for the write timeout" write_timeout=10s remote=127.0.0.2:40001
`
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(clients ...string) (bool, string) {
		h := &harness{cfg: &config{conns: 1, subs: 1}, logs: []string{path}, logAddr: map[string]string{path: "127.0.0.1:9000"}}
		for _, c := range clients {
			h.stats.closeCode(1006)
			h.stats.abnormal(connKey("127.0.0.1:9000", c), "EOF without a close frame")
		}
		var out strings.Builder
		return h.report(&out, 0), out.String()
	}
	if ok, out := run("127.0.0.2:40001"); !ok {
		t.Errorf("a logged write timeout failed the run:\n%s", out)
	}
	if ok, out := run("127.0.0.2:40001", "127.0.0.2:40002"); ok || !strings.Contains(out, "1 connections closed with 1006") {
		t.Errorf("an unexplained 1006 passed the run:\n%s", out)
	}
}
