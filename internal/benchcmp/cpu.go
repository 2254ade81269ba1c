package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuOf is the CPU time (user + system) process pid has used so far (0: this process),
// from /proc/PID/stat; 0 where there is no /proc.
func cpuOf(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	d, _ := parseStatCPU(b)
	return d
}

// parseStatCPU reads utime and stime (fields 14 and 15) of a /proc/PID/stat line; fields
// count from the last ')', since the command name may hold spaces.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat: %.80q", b)
	}
	f := strings.Fields(string(b[i+1:]))
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
