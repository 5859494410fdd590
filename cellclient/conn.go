package cellclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// conn is one yamux session to one replica. Calls take turns on a few
// reused streams; concurrent calls each have one.
type conn struct {
	addr string
	nc   net.Conn
	sess *yamux.Session

	mu   sync.Mutex // protects idle
	idle []*stream  // streams whose last call ended cleanly, newest last
	// oneShot is set once the replica is seen to close a stream after one
	// call (a replica from before streams were reused): streams are then
	// not kept.
	oneShot atomic.Bool
}

// stream is a yamux stream that carries calls one after another (the
// replica serves a stream's calls in turn; see master.serveStream).
type stream struct {
	st   *yamux.Stream
	r    *bufio.Reader
	used bool // it carried a call before
}

// maxIdleStreams bounds the streams a connection keeps for reuse: enough
// for the KeepAlive and a few concurrent calls; a burst beyond it opens
// (and then closes) more.
const maxIdleStreams = 8

// yamuxConfig pings the replica every 3 s and gives up on the connection
// when a ping or write takes 2 s: a paused or partitioned master keeps its
// TCP connection open, and TCP's own timeouts are minutes (Chubby found TCP
// back-off ignores lease deadlines). So such a master is left within 5 s,
// no later than a call's attempt timeout, and well inside a session lease.
// Each ping costs the master a read and a write: every second, at 10,000
// sessions, they took most of its CPU and starved its Raft heartbeats. A
// spurious reconnect costs only a retry.
func yamuxConfig() *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = true
	yc.KeepAliveInterval = 3 * time.Second
	yc.ConnectionWriteTimeout = 2 * time.Second
	yc.StreamOpenTimeout = 5 * time.Second
	yc.LogOutput = io.Discard
	return yc
}

// dial connects to a replica's client protocol, from the local IP address
// local (nil: the system's choice).
func dial(ctx context.Context, addr string, timeout time.Duration, local net.IP) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	nc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := nc.Write([]byte{wire.ConnClient}); err != nil {
		nc.Close()
		return nil, err
	}
	nc.SetWriteDeadline(time.Time{})
	sess, err := yamux.Client(wire.CoalesceFrames(nc), yamuxConfig())
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &conn{addr: addr, nc: nc, sess: sess}, nil
}

func (c *conn) close() { c.sess.Close() }

func (c *conn) broken() bool { return c.sess.IsClosed() }

// errNotSent marks a failure before the request reached the replica, so a
// write that fails this way certainly did not happen.
var errNotSent = errors.New("cellclient: request not sent")

// getStream returns an idle stream, or opens one.
func (c *conn) getStream() (*stream, error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		s := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return s, nil
	}
	c.mu.Unlock()
	st, err := c.sess.OpenStream()
	if err != nil {
		return nil, err
	}
	return &stream{st: st, r: wire.NewReader(st)}, nil
}

// putStream keeps a stream whose call ended cleanly for the next call.
func (c *conn) putStream(s *stream) {
	s.used = true
	s.st.SetDeadline(time.Time{})
	c.mu.Lock()
	if len(c.idle) < maxIdleStreams && !c.oneShot.Load() {
		c.idle = append(c.idle, s)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	s.st.Close()
}

// roundTrip sends one request on a stream and reads its response, within
// the earlier of ctx's deadline and timeout. Every read and write has a
// deadline: a stuck replica costs one timeout, never a hang. A stream is
// reused only after a call that ended cleanly (its response read whole, no
// deadline hit, ctx not ended): any other stream may still receive a late
// answer, so it is closed.
func (c *conn) roundTrip(ctx context.Context, timeout time.Duration, typ wire.MsgType, req any, resp any) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	rtyp, body, err := c.call(ctx, deadline, typ, req)
	if err != nil {
		return err
	}
	switch rtyp {
	case typ:
		return wire.Decode(body, resp)
	case wire.MsgError:
		var er wire.ErrorResponse
		if err := wire.Decode(body, &er); err != nil {
			return err
		}
		return er.Err.Err()
	}
	return fmt.Errorf("%w: cellclient: reply of type %v to %v", fsapi.ErrBadRequest, rtyp, typ)
}

// call sends the request and reads the response frame on a stream.
func (c *conn) call(ctx context.Context, deadline time.Time, typ wire.MsgType, req any) (wire.MsgType, []byte, error) {
	var resent error // the first try's failure, when the call is sent again
	for {
		s, err := c.getStream()
		if err != nil {
			if resent != nil {
				return 0, nil, resent // the first try may have arrived
			}
			return 0, nil, fmt.Errorf("%w: %v", errNotSent, err)
		}
		s.st.SetDeadline(deadline)
		stop := context.AfterFunc(ctx, func() { s.st.SetDeadline(time.Now()) })
		rtyp, body, err := c.exchange(s, typ, req)
		clean := stop()
		if err == nil && clean {
			c.putStream(s)
			return rtyp, body, nil
		}
		s.st.Close()
		if resent == nil && s.used && clean && errors.Is(err, io.EOF) && !c.sess.IsClosed() {
			// The replica ended the stream after its last call, while the
			// connection lives: it serves one call per stream (it predates
			// stream reuse) and dropped this one unread. Send the call
			// again on a new stream, and keep no more streams.
			c.oneShot.Store(true)
			resent = err
			continue
		}
		return rtyp, body, err
	}
}

func (c *conn) exchange(s *stream, typ wire.MsgType, req any) (wire.MsgType, []byte, error) {
	if err := wire.WriteFrame(s.st, typ, req); err != nil {
		return 0, nil, err
	}
	return wire.ReadFrame(s.r, wire.MaxFrame)
}
