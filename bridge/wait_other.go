//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bridge

import "syscall"

const canWaitReadable = false

// waitReadable is not used here: the read loop waits in its read.
func waitReadable(syscall.RawConn) {}
