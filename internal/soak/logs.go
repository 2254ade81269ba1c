package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// goroutines is the bridge's goroutine gauge, if its /metrics has one.
func goroutines(m map[string]float64) (float64, bool) {
	for _, name := range []string{"go_goroutines", "wsbridge_goroutines"} {
		if v, ok := m[name]; ok {
			return v, true
		}
	}
	return 0, false
}

// starvedRE matches the bridge's line for a connection it dropped because the client read
// nothing for the whole write timeout; no close frame can follow, the client sees 1006.
var starvedRE = regexp.MustCompile(`msg="connection lost: the client read nothing for the write timeout[^"]*".* remote=(\S+)`)

// connLogRE matches the bridge's log lines about one connection ending abnormally or being
// closed by the bridge (write timeouts, slow consumers, close handshakes cut short).
var connLogRE = regexp.MustCompile(`msg="((?:connection lost|closing|close)[^"]*)"`)

// logFacts is what the bridges' logs say about connections.
type logFacts struct {
	lines   map[string]int64 // connection-loss lines by message
	starved map[string]bool  // connKeys of connections dropped by the write timeout
}

// scanLog counts panics, fatal errors, race reports and timed-out drains in a process's log,
// and adds the bridge's connection-loss lines to facts; addr is the bridge's listen address.
func scanLog(path, addr string, facts *logFacts) (panics, races, drains int, first string) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
			panics++
		case strings.Contains(line, "WARNING: DATA RACE"):
			races++
		case strings.Contains(line, `msg="drain timed out"`):
			drains++
			continue
		default:
			if m := connLogRE.FindStringSubmatch(line); m != nil {
				facts.lines[m[1]]++
			}
			if m := starvedRE.FindStringSubmatch(line); m != nil {
				facts.starved[connKey(addr, m[1])] = true
			}
			continue
		}
		if first == "" {
			first = filepath.Base(path) + ": " + line
		}
	}
	return panics, races, drains, first
}
