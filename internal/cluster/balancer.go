//go:build unix

package cluster

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Balancer is a TCP load balancer: each connection goes to the next bridge in turn that
// accepts it. It stands in for the load balancer (a Kubernetes Service, an ingress) of a
// real deployment; unlike one it does not watch /readyz, so a client may meet a draining
// bridge's 503 and retry, as clients must anyway.
type Balancer struct {
	ln    net.Listener
	addrs []string
	next  atomic.Uint32
	wg    sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewBalancer listens on addr and spreads connections over backends.
func NewBalancer(addr string, backends []string) (*Balancer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Balancer{ln: ln, addrs: backends, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.serve()
	return b, nil
}

// Addr is the address clients connect to.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// URL is the WebSocket URL through the balancer.
func (b *Balancer) URL() string { return "ws://" + b.Addr() + "/ws" }

func (b *Balancer) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			c.Close()
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer b.untrack(c)
			b.proxy(c)
		}()
	}
}

// proxy connects c to the first bridge, starting with the next in turn, that accepts.
func (b *Balancer) proxy(c net.Conn) {
	start := b.next.Add(1)
	var up net.Conn
	for i := range len(b.addrs) {
		addr := b.addrs[(int(start)+i)%len(b.addrs)]
		var err error
		if up, err = net.Dial("tcp", addr); err == nil {
			break
		}
	}
	if up == nil {
		return // every bridge refused: the client sees the connection close
	}
	if !b.track(up) {
		up.Close()
		return
	}
	defer b.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends both: a bridge that died resets its client's connection.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

func (b *Balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *Balancer) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
	c.Close()
}

// Close stops accepting, closes every proxied connection and waits for them.
func (b *Balancer) Close() error {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	err := b.ln.Close()
	b.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
