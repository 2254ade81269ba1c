//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bridge

import "syscall"

const canWaitReadable = true

// waitReadable blocks until the socket has input (or EOF, an error, a passed deadline or a
// close) without reading it. The runtime's poller parks the goroutine a few frames deep, so
// an idle connection's goroutine needs no more than the smallest stack.
func waitReadable(raw syscall.RawConn) {
	_ = raw.Read(func(fd uintptr) bool {
		// The poller only reports new input, so look first: input that arrived before the
		// wait began would otherwise wait for more.
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN
	})
}
