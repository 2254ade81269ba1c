//go:build unix

package proc

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports (the kernel's HZ may differ; USER_HZ does not).
const clockTick = 10 * time.Millisecond

// CPU is the CPU time (user + system) a process has used, from /proc/PID/stat; pid 0
// is this process.
func CPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(b)
}

// ParseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so fields count from
// the last ')'.
func ParseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat: %.80q", b)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %.80q", b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc stat times: %q %q", f[11], f[12])
	}
	return time.Duration(ut+st) * clockTick, nil
}

// Syscalls is how many read and write system calls a process has made, from /proc/PID/io
// (syscr, syscw; every call of the read and write families, files and sockets alike).
func Syscalls(pid int) (reads, writes int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	return ParseIOSyscalls(b)
}

// ParseIOSyscalls reads syscr and syscw of a /proc/PID/io file.
func ParseIOSyscalls(b []byte) (reads, writes int64, err error) {
	m := procInts(b, "syscr", "syscw")
	reads, okR := m["syscr"]
	writes, okW := m["syscw"]
	if !okR || !okW {
		return 0, 0, fmt.Errorf("no syscr and syscw in /proc io: %.80q", b)
	}
	return reads, writes, nil
}

// procInts reads the "key: value …" lines of a /proc file (status, io): the number that
// starts the value of each of keys, for those whose line has one.
func procInts(b []byte, keys ...string) map[string]int64 {
	m := make(map[string]int64, len(keys))
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		if f := strings.Fields(v); len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m
}

// Status reads VmRSS (in KiB) and Threads from /proc/PID/status. A process without
// VmRSS (a zombie) is an error; threads is still read.
func Status(pid int) (rssKiB, threads int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	m := procInts(b, "VmRSS", "Threads")
	rssKiB, hasRSS := m["VmRSS"]
	threads = m["Threads"]
	if !hasRSS {
		return 0, threads, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return rssKiB, threads, nil
}

// RaiseFileLimit lifts the soft open-file limit to the hard one (each connection is a
// file) and returns the limit now in force, 0 if unknown.
func RaiseFileLimit() uint64 {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return 0
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}
