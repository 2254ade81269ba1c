//go:build unix

package main

import (
	"io"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBadFlags: a bad flag stops the program before it starts anything, with one line
// naming the flag.
func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bridge-ports", "8081,x"}, `invalid -bridge-ports "8081,x"`},
		{[]string{"-backend-ports", "70000"}, `invalid -backend-ports "70000"`},
		{[]string{"-backend-ports", ""}, `invalid -backend-ports ""`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		err := run(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run(%q) = %v, want one line starting %s", tc.args, err, tc.want)
		}
	}
}
