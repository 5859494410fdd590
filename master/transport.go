package master

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/fsapi/wire"
)

// protocolByteTimeout bounds how long an accepted connection may take to
// send its first byte; a silent peer cannot hold an accept slot longer.
const protocolByteTimeout = 5 * time.Second

// errListenerClosed is returned by streamLayer.Accept after Close.
var errListenerClosed = errors.New("master: listener closed")

// advertiseAddr is the address a replica gives Raft as its own: the
// advertised one, not the bound one (which may be 0.0.0.0), because Raft
// hands it to clients as the master's address.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// streamLayer hands raft's NetworkTransport the connections whose first
// byte is wire.ConnRaft, and dials peers with that byte, so Raft and clients
// share one port while Raft heartbeats never queue behind client traffic
// (each has its own TCP connections).
type streamLayer struct {
	addr    net.Addr
	connCh  chan net.Conn
	closeCh chan struct{}
	once    sync.Once
}

func newStreamLayer(addr net.Addr) *streamLayer {
	return &streamLayer{addr: addr, connCh: make(chan net.Conn, 16), closeCh: make(chan struct{})}
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (l *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.connCh:
		return c, nil
	case <-l.closeCh:
		return nil, errListenerClosed
	}
}

func (l *streamLayer) Close() error {
	l.once.Do(func() { close(l.closeCh) })
	return nil
}

func (l *streamLayer) Addr() net.Addr { return l.addr }

func (l *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	if err := writeByte(conn, wire.ConnRaft, timeout); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// hand gives an accepted raft connection to the transport, or closes it if
// the layer is shut.
func (l *streamLayer) hand(c net.Conn) {
	select {
	case l.connCh <- c:
	case <-l.closeCh:
		c.Close()
	}
}

func writeByte(c net.Conn, b byte, timeout time.Duration) error {
	if timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(timeout))
		defer c.SetWriteDeadline(time.Time{})
	}
	_, err := c.Write([]byte{b})
	return err
}

// readByte reads the protocol byte of a fresh connection.
func readByte(c net.Conn) (byte, error) {
	c.SetReadDeadline(time.Now().Add(protocolByteTimeout))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := c.Read(b[:])
	return b[0], err
}

// serveListener accepts connections and routes each by its first byte. It
// returns only when the listener is closed: any other accept error (out of
// file descriptors, say) is logged and retried with back-off, because a
// replica that stopped accepting would be alive but deaf for good.
func (s *Server) serveListener(ln net.Listener) {
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.stopping() {
				return
			}
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", tempDelay)
			select {
			case <-time.After(tempDelay):
			case <-s.stopCh:
				return
			}
			continue
		}
		tempDelay = 0
		s.track(func() { s.route(conn) })
	}
}

func (s *Server) route(conn net.Conn) {
	b, err := readByte(conn)
	if err != nil {
		s.log.Debug("connection closed before its protocol byte", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	switch b {
	case wire.ConnRaft:
		if s.raftLayer == nil {
			s.log.Warn("raft connection refused: this replica uses another raft transport", "remote", conn.RemoteAddr())
			conn.Close()
			return
		}
		s.raftLayer.hand(conn)
	case wire.ConnClient:
		select { // Raft starts after the listener (a restart waits first)
		case <-s.readyCh:
			s.serveClientConn(conn)
		case <-s.stopCh:
			conn.Close()
		}
	default:
		s.log.Info("closing connection with an unknown protocol byte", "remote", conn.RemoteAddr(), "byte", b)
		conn.Close()
	}
}
