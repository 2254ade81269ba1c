//go:build unix

// Package proc holds what the load tools (soak, bench-fanout, bench, cluster) share to
// run the bridge and the backends as child processes: starting one with its output in a
// log file, stopping it with a signal and then SIGKILL, waiting for a condition while
// watching it exit, and reading its CPU time and memory from /proc.
package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Proc is one started child process.
type Proc struct {
	Name string
	Addr string // where it serves, for its owner's use
	Log  string // its log file; "" when its output goes elsewhere

	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited, or failed to start
	err  error         // Wait's (or Start's) error, once done is closed
}

// New wraps cmd, not yet started.
func New(name string, cmd *exec.Cmd) *Proc {
	return &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
}

// Start starts the process. If it cannot start, the Proc counts as exited with that
// error, so that Done, Err and Stop never block on it.
func (p *Proc) Start() error {
	if err := p.cmd.Start(); err != nil {
		p.err = err
		close(p.done)
		return err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

// StartLogged starts bin with args, its output in dir/name.log and env added to this
// process's environment.
func StartLogged(dir, name string, env []string, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The child writes to its own copy of the file descriptor.
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// Its own process group: a Ctrl-C on the terminal reaches only the tool, which stops
	// its children itself; and killed with the tool, so none is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := New(name, cmd)
	p.Log = logPath
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err waits for the process to exit and returns its exit status (nil for 0).
func (p *Proc) Err() error { <-p.done; return p.err }

// Signal sends sig to the process, unless it has exited.
func (p *Proc) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Kill kills the process at once (a crash) and waits for it.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends sig and waits up to timeout for the process to exit, then kills it. It
// reports whether the process exited in time; Err has its status. A nil Proc is stopped.
func (p *Proc) Stop(sig os.Signal, timeout time.Duration) (inTime bool) {
	if p == nil {
		return true
	}
	p.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		p.Kill()
		return false
	}
}

// ErrExited is Until's error when the process exits before the condition holds.
var ErrExited = errors.New("process exited")

// Until calls cond every interval until it holds. It fails with ErrExited once the
// process has exited (and cond still does not hold), or with ctx's error.
func (p *Proc) Until(ctx context.Context, every time.Duration, cond func() bool) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for !cond() {
		select {
		case <-p.done:
			if cond() {
				return nil
			}
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// WaitFor is Until every 50 ms with a timeout, its error naming the process, what it
// waited for and the process's log.
func (p *Proc) WaitFor(timeout time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	switch err := p.Until(ctx, 50*time.Millisecond, cond); {
	case err == nil:
		return nil
	case errors.Is(err, ErrExited):
		return fmt.Errorf("%s exited before %s: %v (log %s)", p.Name, what, p.err, p.Log)
	default:
		return fmt.Errorf("%s: no %s after %s (log %s)", p.Name, what, timeout, p.Log)
	}
}
