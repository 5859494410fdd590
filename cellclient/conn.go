package cellclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// conn is one yamux session to one replica. Every call is its own stream.
type conn struct {
	addr string
	nc   net.Conn
	sess *yamux.Session
}

// yamuxConfig pings the replica every second and gives up on the
// connection when a ping or write takes 2 s: a paused or partitioned master
// keeps its TCP connection open, and TCP's own timeouts are minutes (Chubby
// found TCP back-off ignores lease deadlines). A spurious reconnect costs
// only a retry.
func yamuxConfig() *yamux.Config {
	yc := yamux.DefaultConfig()
	yc.EnableKeepAlive = true
	yc.KeepAliveInterval = time.Second
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
	sess, err := yamux.Client(nc, yamuxConfig())
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

// roundTrip sends one request on a new stream and reads its response,
// within the earlier of ctx's deadline and timeout. Every read and write
// has a deadline: a stuck replica costs one timeout, never a hang.
func (c *conn) roundTrip(ctx context.Context, timeout time.Duration, typ wire.MsgType, req any, resp any) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	st, err := c.sess.OpenStream()
	if err != nil {
		return fmt.Errorf("%w: %v", errNotSent, err)
	}
	defer st.Close()
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Now()) })
	defer stop()
	if err := wire.WriteFrame(st, typ, req); err != nil {
		return err
	}
	rtyp, body, err := wire.ReadFrame(wire.NewReader(st), wire.MaxFrame)
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
