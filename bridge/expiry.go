package bridge

import (
	"container/heap"
	"sync"
	"time"
)

// expiryQueue closes connections with 4001 when their token expires. One timer serves the
// whole Server, set to the earliest expiry, so a signed-in connection costs a heap slot, not
// a timer, a closure and a channel of its own (issue 11 §4).
type expiryQueue struct {
	mu    sync.Mutex
	conns expiryHeap
	timer *time.Timer // fires at the root's expiry; nil until the first connection
	// fireMu is held while expired connections are being closed, so that stop can wait for
	// a close of its connection already under way.
	fireMu sync.Mutex
}

// add queues c to be closed at its expiry (c.expiresAt).
func (q *expiryQueue) add(c *conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	heap.Push(&q.conns, c)
	if q.conns[0] == c {
		q.arm()
	}
}

// arm sets the timer to the root's expiry. Caller holds mu.
func (q *expiryQueue) arm() {
	d := time.Until(time.Unix(0, q.conns[0].expiresAt))
	if q.timer == nil {
		q.timer = time.AfterFunc(d, q.fire)
		return
	}
	q.timer.Reset(d)
}

// fire closes every connection whose token has expired.
func (q *expiryQueue) fire() {
	q.fireMu.Lock()
	defer q.fireMu.Unlock()
	now := time.Now().UnixNano()
	var due []*conn
	q.mu.Lock()
	for len(q.conns) > 0 && q.conns[0].expiresAt <= now {
		due = append(due, heap.Pop(&q.conns).(*conn))
	}
	if len(q.conns) > 0 {
		q.arm()
	}
	q.mu.Unlock()
	for _, c := range due {
		c.closeAsync(CloseTokenExpired, "token expired") // writes nothing here: a slow client holds up no one
	}
}

// remove takes c out of the queue, waiting for its close if it is under way: once remove
// returns, the queue does nothing more with c.
func (q *expiryQueue) remove(c *conn) {
	q.mu.Lock()
	if c.expiryIdx >= 0 {
		heap.Remove(&q.conns, c.expiryIdx)
		q.mu.Unlock()
		return
	}
	q.mu.Unlock()
	q.waitFire()
}

// waitFire waits for a firing under way, if any.
func (q *expiryQueue) waitFire() {
	q.fireMu.Lock()
	//lint:ignore SA2001 an empty critical section: waiting for fire to finish is the point
	q.fireMu.Unlock()
}

// stop stops the timer and waits for a firing under way (Shutdown, once the connections
// are gone).
func (q *expiryQueue) stop() {
	q.mu.Lock()
	if q.timer != nil {
		q.timer.Stop()
	}
	q.mu.Unlock()
	q.waitFire()
}

// expiryHeap orders connections by expiresAt; each knows its index (expiryIdx, -1 when out).
type expiryHeap []*conn

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expiresAt < h[j].expiresAt }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expiryIdx, h[j].expiryIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	c := x.(*conn)
	c.expiryIdx = len(*h)
	*h = append(*h, c)
}
func (h *expiryHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.expiryIdx = -1
	return c
}
