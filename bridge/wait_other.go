//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bridge

// canReadWhenReady is false here: the read loop waits in its read.
const canReadWhenReady = false

func readNonBlocking(int, []byte) (int, bool) { return 0, false }

func writeNonBlocking(int, []byte) int { return 0 }
