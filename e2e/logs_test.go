package e2e_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// logLines parses the process's complete output lines as JSON; every line must be one. A
// last line without its newline is still being copied from the pipe: it is left for later.
func logLines(t *testing.T, p *bridgeProc) []map[string]any {
	t.Helper()
	var lines []map[string]any
	out := p.out.String()
	out = out[:strings.LastIndexByte(out, '\n')+1]
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestCommandJSONLogs: with -log-format json every line is a JSON object, and a request's
// line carries its request_id, stream, action, status and the connection id, which the
// connection's own lines carry too.
func TestCommandJSONLogs(t *testing.T) {
	b := startBackend(t)
	p := startBridgeBinary(t, "-backend", b.addr, "-log-format", "json", "-log-level", "debug")
	c := dialURL(t, "ws://"+p.addr+"/ws", nil)
	wantStatus(t, c.do("questions", map[string]any{"action": "retrieve", "pk": "999999", "request_id": "log-1"}), 404)

	var req map[string]any
	waitFor(t, "the request's log line", func() bool {
		for _, l := range logLines(t, p) {
			if l["msg"] == "request" && l["request_id"] == "log-1" {
				req = l
				return true
			}
		}
		return false
	})
	for key, want := range map[string]any{"level": "DEBUG", "stream": "questions", "action": "retrieve", "status": float64(404)} {
		if req[key] != want {
			t.Fatalf("request line %v: %s = %v, want %v", req, key, req[key], want)
		}
	}
	conn, _ := req["conn"].(string)
	if conn == "" {
		t.Fatalf("request line %v has no conn", req)
	}
	if _, ok := req["duration"].(float64); !ok {
		t.Fatalf("request line %v has no duration", req)
	}
	opened := false
	for _, l := range logLines(t, p) {
		opened = opened || l["msg"] == "connection opened" && l["conn"] == conn
	}
	if !opened {
		t.Fatalf("no \"connection opened\" line for conn %s:\n%s", conn, p.out)
	}
}
