package bridge

import (
	"testing"
	"time"
)

// TestRefusalLogBucket checks the rate limit of the refused-handshake log with a clock the
// test moves: a burst, then one line per interval, each kind on its own, and the count of
// the lines left out carried by the next one.
func TestRefusalLogBucket(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := refusalLog{now: func() time.Time { return now }}
	for i := range refusalBurst {
		if ok, n := l.allow(refusedOrigin); !ok || n != 0 {
			t.Fatalf("refusal %d of the burst: logged %v, suppressed %d", i, ok, n)
		}
	}
	for range 25 {
		if ok, _ := l.allow(refusedOrigin); ok {
			t.Fatal("logged past the burst")
		}
	}
	// Another kind has its own bucket.
	if ok, _ := l.allow(refusedCredentials); !ok {
		t.Fatal("a flood of one kind hid another")
	}
	now = now.Add(refusalInterval)
	if ok, n := l.allow(refusedOrigin); !ok || n != 25 {
		t.Fatalf("after an interval: logged %v, suppressed %d, want true, 25", ok, n)
	}
	if ok, _ := l.allow(refusedOrigin); ok {
		t.Fatal("two lines in one interval")
	}
	now = now.Add(time.Hour) // refills to the burst, not beyond
	for range refusalBurst {
		if ok, _ := l.allow(refusedOrigin); !ok {
			t.Fatal("the bucket did not refill")
		}
	}
	if ok, _ := l.allow(refusedOrigin); ok {
		t.Fatal("the bucket refilled past the burst")
	}
}
