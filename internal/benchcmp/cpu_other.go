//go:build !unix

package main

import "time"

// cpuTime is unknown here: the CPU column stays empty.
func cpuTime() time.Duration { return 0 }
