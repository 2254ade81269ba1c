package bridge

import (
	"bufio"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzFrameReader writes arbitrary bytes after a real handshake, then ends its side of the
// connection: whatever they are, the bridge must not panic, must end the connection, and
// must send only well-formed server frames (unmasked, a close frame last if any).
func FuzzFrameReader(f *testing.F) {
	mask := func(fin bool, op byte, p string) []byte {
		b0 := op
		if fin {
			b0 |= 0x80
		}
		b := []byte{b0, 0x80 | byte(len(p)), 1, 2, 3, 4}
		for i := range len(p) {
			b = append(b, p[i]^byte(i%4+1))
		}
		return b
	}
	req := `{"stream":"questions","payload":{"action":"list","request_id":"r"}}`
	f.Add(mask(true, 1, req))
	f.Add(append(mask(false, 1, req[:9]), append(mask(true, 9, "p"), mask(true, 0, req[9:])...)...))
	f.Add(mask(true, 8, "\x03\xe8bye"))
	f.Add(mask(true, 2, "bin"))
	f.Add([]byte{0x81, 0x7e, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x89, 0x05, 'h', 'e', 'l', 'l', 'o'})

	srv, err := New(WithBackend(Backend{Target: "127.0.0.1:1"}), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		WithMaxFrameSize(4096))
	if err != nil {
		f.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	f.Cleanup(func() {
		hs.Close()
		_ = srv.Shutdown(f.Context())
	})
	addr := strings.TrimPrefix(hs.URL, "http://")

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if line == "\r\n" {
				break
			}
		}
		// The bridge may close before reading it all: a write error is no failure.
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite()
		closed := false
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				if err == io.EOF {
					return // the bridge ended the connection
				}
				t.Fatalf("the bridge did not end the connection: %v", err)
			}
			if closed {
				t.Fatalf("a frame after the close frame: % x", h)
			}
			if h[1]&0x80 != 0 || h[0]&0x70 != 0 {
				t.Fatalf("malformed server frame header % x", h)
			}
			n := int64(h[1] & 0x7f)
			switch n {
			case 126:
				var e [2]byte
				if _, err := io.ReadFull(br, e[:]); err != nil {
					t.Fatal(err)
				}
				n = int64(binary.BigEndian.Uint16(e[:]))
			case 127:
				var e [8]byte
				if _, err := io.ReadFull(br, e[:]); err != nil {
					t.Fatal(err)
				}
				n = int64(binary.BigEndian.Uint64(e[:]))
			}
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				t.Fatalf("frame payload: %v", err)
			}
			closed = h[0]&0x0f == 8
		}
	})
}
