//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bridge

import "syscall"

// canReadWhenReady: the read loop waits for input through syscall.RawConn.Read, whose wait
// the runtime's poller parks a few frames deep, so an idle connection's goroutine needs no
// more than the smallest stack (wsread.go).
const canReadWhenReady = true

// readNonBlocking reads from a non-blocking socket; again reports that it has nothing yet.
func readNonBlocking(fd int, b []byte) (n int, again bool) {
	for {
		n, err := syscall.Read(fd, b)
		switch err {
		case nil:
			return n, false
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, true
		default:
			return 0, false // the read that follows reports the error
		}
	}
}

// writeNonBlocking writes as much of b as a non-blocking socket takes now, without waiting.
func writeNonBlocking(fd int, b []byte) int {
	n := 0
	for n < len(b) {
		m, err := syscall.Write(fd, b[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			break // EAGAIN, or an error the write that follows reports
		}
		n += m
	}
	return n
}
