// Package gcfloor keeps the garbage collector from running while the heap is small.
//
// With GOGC=100 the collector runs each time the heap grows to twice what the last
// collection left live, and never later than at 4 MiB. A proxy keeps a few MiB live and
// allocates a few KiB per request, so under load it collects tens of times a second: about a
// tenth of the bridge's CPU on the unary benchmark. With a floor, the heap may grow to the
// floor before a collection; once twice the live heap is above the floor, GOGC applies as it
// is. GOMEMLIMIT, when set, still bounds the heap.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Default is the floor the bridge command uses unless told otherwise.
const Default = 32 << 20

// minHeap is the runtime's own smallest heap goal at GOGC=100: a GOGC of p makes it
// minHeap*p/100, which must not pass the floor.
const minHeap = 4 << 20

const liveMetric = "/gc/heap/live:bytes"

var active atomic.Bool // a process has one GOGC, so one floor

// Start sets a heap floor of floor bytes until stop is called, which puts GOGC back as it
// was. With floor 0, with GOGC=off, or while another floor is set, it does nothing.
func Start(floor uint64) (stop func()) {
	if floor == 0 || !active.CompareAndSwap(false, true) {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		active.Store(false)
		return func() {}
	}
	t := &tuner{floor: floor, base: base, sample: []metrics.Sample{{Name: liveMetric}}}
	t.adjust()
	t.arm()
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			t.stopped = true
			debug.SetGCPercent(t.base)
			t.mu.Unlock()
			active.Store(false)
		})
	}
}

type tuner struct {
	floor uint64
	base  int

	mu      sync.Mutex // adjust against stop
	stopped bool
	sample  []metrics.Sample
	percent int
}

// sentinel is allocated unreachable: its cleanup runs after the next collection. It holds a
// pointer so that it is not a tiny allocation, whose cleanups may be batched.
type sentinel struct{ _ *byte }

func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

// adjust sets GOGC for the heap the last collection left live; false once stopped.
func (t *tuner) adjust() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := Percent(live, t.floor, t.base); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
	return true
}

// Percent is the GOGC that lets a heap with live bytes live grow to floor before the next
// collection, and never less than base.
func Percent(live, floor uint64, base int) int {
	if base < 0 || floor == 0 {
		return base
	}
	// GOGC p makes the goal live*(100+p)/100, and the runtime's own minimum heap
	// minHeap*p/100, which must stay under floor too.
	limit := min(floor/minHeap, 1<<20) * 100
	grow := limit + 100
	if live > 0 {
		grow = min(floor*100/live, grow)
	}
	if grow <= 100 {
		return base
	}
	return max(int(grow-100), base)
}
