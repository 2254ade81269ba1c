package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// subState is one subscription of a client: to update events of one question that only
// this client patches, one patch at a time, each with a new sequence number in its text.
//
// A window is the time between the client receiving the subscription's 200 (or its
// resumed notice) and the next 503 notice or close. A patch written inside a window and
// answered 200 inside it must arrive as an event exactly once. Events of one row arrive
// in patch order, so a patch missing while a later one arrived is lost; the tail of a
// window cut by an outage is unverifiable (the backend may die between its reply and
// the event), except for the last window, which the final patch closes strictly.
type subState struct {
	client, index int
	pk            string

	mu        sync.Mutex
	id        string // request_id of the current subscribe
	sessSeq   int    // the session that sent it
	live      bool
	win       int
	nextSeq   int
	inFlight  bool
	seen      map[int]int
	expected  []int // patches answered 200 in the current window
	maxSeen   int   // highest sequence seen in the current window
	seenCh    chan struct{}
	windowsOK int
}

func (s *subState) currentID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

func (s *subState) isLive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// subscribing records the request_id of a subscribe sent on session seq. A retry left over
// from an older session must not replace the id of a newer one's subscribe: it reports
// false then, and the retry stops.
func (s *subState) subscribing(seq int, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq < s.sessSeq {
		return false
	}
	s.sessSeq, s.id, s.live = seq, id, false
	return true
}

// book checks the events of every subscription and counts the results.
type book struct {
	st *stats
}

func (b *book) confirmed(s *subState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = true
	s.win++
	s.expected, s.maxSeen = nil, 0
}

// notice handles a 503 "interrupted" or a 200 "resumed" of a confirmed subscription.
func (b *book) notice(s *subState, status int, data json.RawMessage) {
	var d struct {
		Resumed bool `json:"resumed"`
	}
	_ = json.Unmarshal(data, &d)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case status == 503 && s.live:
		b.closeWindowLocked(s, false)
		s.live = false
		b.st.add(&b.st.interrupted, 1)
	case status == 200 && d.Resumed && !s.live:
		s.live = true
		s.win++
		s.expected, s.maxSeen = nil, 0
		b.st.add(&b.st.resumed, 1)
	default:
		b.st.violation("unexpected subscription notice for c%d q%d: status %d data %s (live %v)", s.client, s.index, status, data, s.live)
	}
}

func (b *book) event(s *subState, text string) {
	seq, ok := parsePatchText(text, s.client, s.index)
	s.mu.Lock()
	defer s.mu.Unlock()
	b.st.add(&b.st.events, 1)
	if !ok {
		b.st.violation("event of c%d q%d carries a change it did not make: %q", s.client, s.index, text)
		return
	}
	if s.seen == nil {
		s.seen = map[int]int{}
	}
	s.seen[seq]++
	if s.seen[seq] > 1 {
		b.st.add(&b.st.dupEvents, 1)
		b.st.violation("event of c%d q%d patch %d arrived %d times", s.client, s.index, seq, s.seen[seq])
	}
	if s.live {
		s.maxSeen = max(s.maxSeen, seq)
	} else {
		b.st.add(&b.st.outsideEvents, 1)
	}
	if s.seenCh != nil {
		select {
		case s.seenCh <- struct{}{}:
		default:
		}
	}
}

// startPatch reserves the subscription's next patch, or returns nil if one is in flight.
func (b *book) startPatch(s *subState) *request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight || s.pk == "" {
		return nil
	}
	s.inFlight = true
	s.nextSeq++
	r := &request{sub: s, seq: s.nextSeq, win: -1}
	if s.live {
		r.win = s.win
	}
	return r
}

func (b *book) patched(s *subState, r *request, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight = false
	if status == 200 && r.win >= 0 && s.live && s.win == r.win {
		s.expected = append(s.expected, r.seq)
		r.counted = true
	}
}

func (b *book) closeWindow(s *subState, final bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.closeWindowLocked(s, final)
}

func (b *book) closeWindowLocked(s *subState, final bool) {
	for _, seq := range s.expected {
		switch {
		case s.seen[seq] > 0:
			b.st.add(&b.st.verified, 1)
		case final || seq < s.maxSeen:
			b.st.add(&b.st.lost, 1)
			b.st.violation("event of c%d q%d patch %d lost (window ended final=%v, later patch %d arrived)", s.client, s.index, seq, final, s.maxSeen)
		default:
			b.st.add(&b.st.unverified, 1)
		}
	}
	s.expected, s.maxSeen = nil, 0
	s.windowsOK++
}

// connClosed ends the subscription with its connection.
func (b *book) connClosed(s *subState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live {
		b.closeWindowLocked(s, false)
	}
	s.live, s.inFlight = false, false
}

// waitSeen waits until the event of patch seq arrived (seen), or window win ended (ended);
// both false if done or stop came first.
func (b *book) waitSeen(s *subState, seq, win int, done, stop <-chan struct{}) (seen, ended bool) {
	s.mu.Lock()
	if s.seenCh == nil {
		s.seenCh = make(chan struct{}, 1)
	}
	ch := s.seenCh
	s.mu.Unlock()
	for {
		s.mu.Lock()
		seen, ended = s.seen[seq] > 0, !s.live || s.win != win
		s.mu.Unlock()
		if seen || ended {
			return seen, ended
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond): // notices do not signal ch
		case <-done:
			return false, false
		case <-stop:
			return false, false
		}
	}
}

// stats are the run's counters. Violations are the broken invariants.
type stats struct {
	sent, frames, connects, dialFailures  atomic.Int64
	noReply, crossed, duplicates          atomic.Int64
	events, dupEvents, outsideEvents      atomic.Int64
	verified, lost, unverified            atomic.Int64
	interrupted, resumed, unsettled       atomic.Int64
	finalRetries, abandoned, lostWithConn atomic.Int64
	violations                            atomic.Int64
	mu                                    sync.Mutex
	statuses                              map[int]int64
	closes                                map[int]int64
	abnormals                             []abnormalClose
	firstViolations                       []string
	kinds                                 map[string]int64 // violations by format
}

func (s *stats) add(c *atomic.Int64, n int64) { c.Add(n) }

func (s *stats) status(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.statuses == nil {
		s.statuses = map[int]int64{}
	}
	s.statuses[code]++
}

func (s *stats) closeCode(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closes == nil {
		s.closes = map[int]int64{}
	}
	s.closes[code]++
}

// abnormalClose is a connection that ended without a close frame (1006).
type abnormalClose struct {
	key    string // connKey
	reason string // the client's read error (abnormalReason)
}

func (s *stats) abnormal(key, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abnormals = append(s.abnormals, abnormalClose{key, reason})
}

// connKey names a connection the way both ends can: the bridge's listen address and the
// client's address, which the bridge logs as remote.
func connKey(bridge, client string) string { return bridge + " " + client }

// violation records a broken invariant; the first few are kept for the report.
func (s *stats) violation(format string, args ...any) {
	s.violations.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kinds == nil {
		s.kinds = map[string]int64{}
	}
	if s.kinds[format]++; s.kinds[format] <= 3 && len(s.firstViolations) < 40 {
		s.firstViolations = append(s.firstViolations, fmt.Sprintf(format, args...))
	}
}

func sortedStrings(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(m map[int]int64) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}
