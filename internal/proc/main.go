package proc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main is a load tool's main: parse reads the flags (usage and its errors go to
// stderr), run runs until done or until SIGINT or SIGTERM cancels its context. The exit
// status is 2 when the tool could not run (the error on stderr, prefixed with tool), 1
// when run reports a failed check, 0 otherwise; -h exits 0.
func Main[C any](tool string, parse func(args []string, stderr io.Writer) (C, error), run func(ctx context.Context, c C, stdout io.Writer) (bool, error)) {
	c, err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ok, err := run(ctx, c, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
