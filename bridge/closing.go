package bridge

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// The end of a connection the bridge closes. Closing a socket whose peer is still sending
// (or that has input nobody read) makes the kernel send a reset, and a reset throws away
// whatever the socket had not yet delivered: the close frame too, when a slow client's
// receive window was full. The client then sees 1006 instead of the code it was sent. So
// after the close frame the bridge only half-closes (FIN after the close frame) and reads
// and discards the client's input until the client closes too, for a bounded time.

// closeGrace is how long a closing connection waits for the client's close frame before it
// half-closes. The half-close does not end the handshake: the client can still read the
// close frame and answer within the linger (closeLinger).
const closeGrace = time.Second

// closeLinger is how long, after the half-close, the bridge keeps reading for the client to
// close its end: the write timeout, as long as a client may go without reading any frame.
func (c *conn) closeLinger() time.Duration { return c.srv.opts.writeTimeout }

// sendClose writes the close frame and gives the client closeGrace to answer it.
func (c *conn) sendClose(code int, reason string) {
	c.srv.metrics.closed(code) // metrics.go

	err := c.writeControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), c.srv.opts.writeTimeout) // conn.go
	if err == nil {
		c.closeSent.Store(true)
	} else if !errors.Is(err, websocket.ErrCloseSent) {
		// No close frame can reach the client: it will see 1006. Say why.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.logger().Warn("connection lost: the client read nothing for the write timeout; no close frame sent", "code", code, "write_timeout", c.srv.opts.writeTimeout, "remote", c.nc.RemoteAddr().String())
		} else {
			c.logger().Info("connection lost: writing the close frame failed", "code", code, "err", err, "remote", c.nc.RemoteAddr().String())
		}
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
}

// closeSocket closes the network connection once the read loop has ended. After a close
// frame it half-closes and discards input until the client's EOF or closeLinger, so that
// the close frame is never lost to a reset.
func (c *conn) closeSocket() {
	nc := c.nc
	hc, ok := nc.(interface{ CloseWrite() error })
	if !c.closeSent.Load() || !ok {
		_ = nc.Close()
		return
	}
	linger := c.closeLinger()
	if hc.CloseWrite() == nil && nc.SetReadDeadline(time.Now().Add(linger)) == nil {
		_, err := io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Closing now may still reset the connection if the client sends more.
			c.logger().Info("close handshake cut short: the client did not close its end within the linger", "linger", linger, "remote", c.nc.RemoteAddr().String())
		}
	}
	_ = nc.Close()
}
