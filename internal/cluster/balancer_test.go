//go:build unix

package cluster

import (
	"bufio"
	"net"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpServer answers each connection with its name and closes it.
func tcpServer(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln
}

func via(t *testing.T, b *Balancer) string {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}

// TestBalancer: connections alternate between the bridges; one that refuses connections is
// skipped; with none left the client's connection is closed.
func TestBalancer(t *testing.T) {
	a, b := tcpServer(t, "a"), tcpServer(t, "b")
	lb, err := NewBalancer("127.0.0.1:0", []string{a.Addr().String(), b.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	got := map[string]int{}
	for range 4 {
		got[via(t, lb)]++
	}
	if got["a\n"] != 2 || got["b\n"] != 2 {
		t.Fatalf("connections per server %v, want 2 each", got)
	}
	a.Close()
	for range 3 {
		if s := via(t, lb); s != "b\n" {
			t.Fatalf("got %q with a down, want b", s)
		}
	}
	b.Close()
	if s := via(t, lb); s != "" {
		t.Fatalf("got %q with every server down, want a closed connection", s)
	}
}
