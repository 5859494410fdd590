package mastertest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/fsapi/wire"
)

// RawConn speaks the client protocol to a replica without cellclient: a
// yamux client session on which each call opens a stream. Nothing is
// retried and no KeepAlives are sent, so tests can send hand-made frames
// or act as a client that misbehaves.
type RawConn struct {
	nc   net.Conn
	sess *yamux.Session
}

// DialRaw connects to a replica's client address; t's cleanup closes it.
func DialRaw(t testing.TB, addr string) *RawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte{wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	yc.EnableKeepAlive = false
	sess, err := yamux.Client(nc, yc)
	if err != nil {
		t.Fatal(err)
	}
	rc := &RawConn{nc: nc, sess: sess}
	t.Cleanup(rc.Close)
	return rc
}

// OpenStream opens a stream for a test to write on as it likes.
func (rc *RawConn) OpenStream() (*yamux.Stream, error) { return rc.sess.OpenStream() }

// Drop closes the TCP connection under the session, as a client that
// vanishes does: no yamux GoAway, no stream closed.
func (rc *RawConn) Drop() { rc.nc.Close() }

// Close ends the session and the connection.
func (rc *RawConn) Close() {
	rc.sess.Close()
	rc.nc.Close()
}

// Send writes raw bytes on a new stream, closes the stream's write side
// if closeWrite (a yamux half-close: the response can still be read), and
// reads one response frame, all within timeout.
func (rc *RawConn) Send(raw []byte, closeWrite bool, timeout time.Duration) (wire.MsgType, []byte, error) {
	st, err := rc.sess.OpenStream()
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(timeout))
	if _, err := st.Write(raw); err != nil {
		return 0, nil, err
	}
	if closeWrite {
		st.Close()
	}
	return wire.ReadFrame(st, wire.MaxFrame)
}

// Call sends req as a frame of type typ and decodes the answer into resp.
// It returns the answer's error, if any, or the error of an error frame.
func (rc *RawConn) Call(typ wire.MsgType, req any, resp interface{ Header() *wire.RespHeader }, timeout time.Duration) error {
	var frame bytes.Buffer
	if err := wire.WriteFrame(&frame, typ, req); err != nil {
		return err
	}
	rt, body, err := rc.Send(frame.Bytes(), false, timeout)
	if err != nil {
		return err
	}
	if rt == wire.MsgError {
		var er wire.ErrorResponse
		if err := wire.Decode(body, &er); err != nil {
			return err
		}
		return errors.Join(errors.New("mastertest: error frame"), er.Err.Err())
	}
	if err := wire.Decode(body, resp); err != nil {
		return err
	}
	if e := resp.Header().Err; e != nil {
		return e.Err()
	}
	return nil
}
