package gcfloor_test

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsbridge/wsbridge/internal/gcfloor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live, floor uint64
		base, want  int
	}{
		{0, 64 * mib, 100, 1600},        // nothing live yet: the runtime's minimum heap is the floor
		{2 * mib, 64 * mib, 100, 1600},  // 2 MiB live: 17× would be 34 MiB; the minimum heap, 64 MiB, wins
		{8 * mib, 64 * mib, 100, 700},   // 8 MiB × 8 = 64 MiB
		{40 * mib, 64 * mib, 100, 100},  // twice the live heap is past the floor: GOGC as it is
		{500 * mib, 64 * mib, 100, 100}, // far past it
		{8 * mib, 64 * mib, 900, 900},   // never below the GOGC set
		{8 * mib, 0, 100, 100},          // no floor
		{8 * mib, 64 * mib, -1, -1},     // GOGC=off stays off
		{1 * mib, 2 * mib, 100, 100},    // a floor under the runtime's minimum heap changes nothing
	} {
		if got := gcfloor.Percent(tc.live, tc.floor, tc.base); got != tc.want {
			t.Errorf("Percent(live %d MiB, floor %d MiB, base %d) = %d, want %d", tc.live/mib, tc.floor/mib, tc.base, got, tc.want)
		}
	}
}

// collections counts the collections while 256 MiB of short-lived garbage is allocated.
func collections() uint32 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var keep []byte
	for range 256 * mib / (4 << 10) {
		keep = make([]byte, 4<<10)
		keep[0] = 1
	}
	runtime.KeepAlive(keep)
	runtime.ReadMemStats(&after)
	return after.NumGC - before.NumGC
}

func TestFloorCutsCollections(t *testing.T) {
	without := collections()
	stop := gcfloor.Start(64 * mib)
	with := collections()
	stop()
	restored := collections()
	t.Logf("collections while 256 MiB is allocated: %d without a floor, %d with a 64 MiB floor, %d after stop", without, with, restored)
	// With GOGC=100 and little live, the heap goal is the runtime's 4 MiB minimum: about 64
	// collections. With the floor, about 4.
	if without < 32 || restored < 32 {
		t.Fatalf("without a floor: %d and %d collections, want at least 32", without, restored)
	}
	if with > 16 {
		t.Fatalf("with a 64 MiB floor: %d collections, want at most 16", with)
	}
}

// gogc is the GOGC in force, read without setting it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitGOGC collects until GOGC is want (the floor adjusts after each collection, on the
// runtime's cleanup goroutine), for up to 30 s.
func waitGOGC(t *testing.T, want uint64, why string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); gogc() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%s: GOGC %d, want %d", why, gogc(), want)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestFloorFollowsTheLiveHeap: after each collection the floor sets GOGC for what is live.
func TestFloorFollowsTheLiveHeap(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	stop := gcfloor.Start(64 * mib)
	defer stop()
	waitGOGC(t, 1600, "little live")
	func() {
		live := make([]byte, 48*mib) // twice this is past the floor
		for i := range live {
			live[i] = 1
		}
		waitGOGC(t, 100, "48 MiB live")
		runtime.KeepAlive(live)
	}()
	waitGOGC(t, 1600, "the 48 MiB gone again")
}

func TestStopPutsGOGCBack(t *testing.T) {
	old := debug.SetGCPercent(150)
	defer debug.SetGCPercent(old)
	stop := gcfloor.Start(64 * mib)
	runtime.GC() // the floor adjusts after a collection too
	if got := debug.SetGCPercent(150); got != 1600 {
		t.Errorf("GOGC under a 64 MiB floor with little live: %d, want 1600", got)
	}
	stop()
	stop() // twice is harmless
	if got := debug.SetGCPercent(150); got != 150 {
		t.Errorf("GOGC after stop: %d, want 150 as before", got)
	}
}

func TestOffAndZero(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	gcfloor.Start(64 * mib)() // GOGC=off: nothing to do
	if got := debug.SetGCPercent(100); got != -1 {
		t.Errorf("GOGC=off became %d", got)
	}
	gcfloor.Start(0)()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("floor 0 changed GOGC to %d", got)
	}
}

func TestSecondStartDoesNothing(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	stop := gcfloor.Start(64 * mib)
	gcfloor.Start(256 * mib)() // ignored, and so is its stop
	runtime.GC()
	if got := debug.SetGCPercent(100); got != 1600 {
		t.Errorf("GOGC after a second Start and its stop: %d, want the first floor's 1600", got)
	}
	stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after stop: %d, want 100", got)
	}
}
