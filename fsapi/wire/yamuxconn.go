package wire

import (
	"encoding/binary"
	"net"
)

// yamux's frame header (github.com/hashicorp/yamux, spec.md): version,
// type, flags (2 bytes), stream ID (4), length (4). A data frame's body of
// length bytes follows its header; other types carry no body.
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
	// coalesceMax bounds the bodies copied to go out with their header;
	// larger ones are written as yamux writes them, in two calls.
	coalesceMax = 64 << 10
)

// CoalesceFrames wraps the connection a yamux session runs on so that a
// data frame goes out in one write instead of two. yamux's send loop
// writes a frame's 12-byte header and then its body with separate calls:
// on loopback each is a system call, and the peer often wakes for the
// header alone and again for the body. Every call and reply is one data
// frame, so this halves the writes of a call.
//
// It relies on yamux's send loop being the only writer and writing each
// header and its body back to back, which yamux v0.1.x does; a write that
// is not a data frame's header passes straight through.
func CoalesceFrames(c net.Conn) net.Conn {
	return &coalescingConn{Conn: c}
}

type coalescingConn struct {
	net.Conn
	held bool // hdr holds a data frame's header whose body comes next
	hdr  [yamuxHeaderLen]byte
	buf  []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	if c.held {
		c.held = false
		if len(p) > coalesceMax {
			if _, err := c.Conn.Write(c.hdr[:]); err != nil {
				return 0, err
			}
			return c.Conn.Write(p)
		}
		c.buf = append(append(c.buf[:0], c.hdr[:]...), p...)
		n, err := c.Conn.Write(c.buf)
		if len(c.buf) > 2*coalesceMax {
			c.buf = nil
		}
		return max(n-yamuxHeaderLen, 0), err
	}
	if len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		copy(c.hdr[:], p)
		c.held = true
		return len(p), nil
	}
	return c.Conn.Write(p)
}
