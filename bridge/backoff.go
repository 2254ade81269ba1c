package bridge

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// newBackoff is the bridge's one retry schedule, for upstream reconnects and discovery:
// exponential, doubling, each wait drawn uniformly between half and all of the current step,
// which starts at first and stops growing at max.
func newBackoff(first, max time.Duration) *backoff.ExponentialBackOff {
	// The library draws from step·(1±factor): a step of ¾·n with a factor of ⅓ draws from [n/2, n].
	b := &backoff.ExponentialBackOff{
		InitialInterval:     first * 3 / 4,
		RandomizationFactor: 1.0 / 3,
		Multiplier:          2,
		MaxInterval:         max * 3 / 4,
	}
	b.Reset()
	return b
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
