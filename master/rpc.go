package master

import (
	"bufio"
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

const (
	// requestReadTimeout bounds how long a client may take to send one
	// request frame once it opened a stream.
	requestReadTimeout = 30 * time.Second
	// replyWriteTimeout bounds writing one response.
	replyWriteTimeout = 10 * time.Second
	// maxCallTime bounds one call other than KeepAlive at the replica.
	maxCallTime = 30 * time.Second
)

func yamuxConfig() *yamux.Config {
	yc := yamux.DefaultConfig()
	// The backlog is a buffered channel of that many stream pointers per
	// connection: 1,024 cost 8 KiB per client session, a fifth of the
	// master's live heap at 1,000 sessions. A client's own backlog
	// (cellclient uses yamux's default, 256) bounds the streams it has
	// opened that the replica has not accepted yet, so 256 here never
	// refuses one; the accept loop takes each at once anyway.
	yc.AcceptBacklog = 256
	// The replica's own pings reap connections of vanished clients and of
	// peers that stall mid-frame (a 2 GiB frame announced and never sent):
	// within 20 s (interval plus write timeout). Each costs a write and a
	// read per connection, so not more often: clients ping every 3 s.
	yc.EnableKeepAlive = true
	yc.KeepAliveInterval = 10 * time.Second
	yc.ConnectionWriteTimeout = 10 * time.Second
	yc.StreamOpenTimeout = 10 * time.Second
	yc.LogOutput = io.Discard
	return yc
}

// serveClientConn runs one client's yamux session: every stream is one call.
// The session's context ends when the connection does, so a call whose
// client vanished stops waiting.
func (s *Server) serveClientConn(conn net.Conn) {
	if !s.addConn(conn) {
		conn.Close()
		return
	}
	defer s.removeConn(conn)
	sess, err := yamux.Server(wire.CoalesceFrames(conn), yamuxConfig())
	if err != nil {
		conn.Close()
		return
	}
	defer sess.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-sess.CloseChan():
		case <-s.stopCh:
		}
		cancel()
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if !errors.Is(err, io.EOF) && !sess.IsClosed() {
				s.log.Debug("client session ended", "remote", conn.RemoteAddr(), "err", err)
			}
			return
		}
		s.track(func() { s.serveStream(ctx, st) })
	}
}

// serveStream answers the calls of one stream, one after another:
//
//  1. Read one frame (bounded in size and time).
//  2. Decode and dispatch it by type.
//  3. Write one response frame.
//  4. Wait, as long as the client likes, for the stream's next call; end
//     when the client closes the stream (or at any error).
//
// Clients reuse a stream for call after call rather than open one per call:
// opening and closing a yamux stream costs four frames, each a system call
// or two on both sides, which doubled the cost of the KeepAlive round trips
// that acknowledge cache invalidations. A client that sends one call and
// closes the stream is served the same way.
//
// A frame that cannot be read or decoded gets an error response when the
// stream still works; the connection and the replica go on.
func (s *Server) serveStream(ctx context.Context, st *yamux.Stream) {
	defer st.Close()
	// A small buffer: a master holds one stream per session (the KeepAlive's)
	// and most requests are a few hundred bytes; larger bodies are read
	// straight through.
	br := bufio.NewReaderSize(st, 512)
	for first := true; ; first = false {
		if !first {
			// Idle between calls: wait for the next call's first byte with no
			// deadline (the client closes idle streams it no longer wants).
			st.SetReadDeadline(time.Time{})
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		if !s.serveCall(ctx, st, br) {
			return
		}
	}
}

// serveCall reads one call from the stream and answers it. It reports
// whether the stream can carry another.
func (s *Server) serveCall(ctx context.Context, st *yamux.Stream, br io.Reader) bool {
	st.SetReadDeadline(time.Now().Add(requestReadTimeout))
	typ, body, err := wire.ReadFrame(br, wire.MaxFrame)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.log.Debug("bad request frame", "err", err)
			if !errors.Is(err, fsapi.ErrTooLarge) {
				err = fmt.Errorf("%w: %v", fsapi.ErrBadRequest, err)
			}
			s.reply(st, wire.MsgError, &wire.ErrorResponse{RespHeader: wire.RespHeader{Err: wire.ToWire(err)}})
		}
		return false // the rest of the stream cannot be trusted to be framed
	}
	st.SetReadDeadline(time.Time{})
	h, ok := s.handlerTable[typ]
	if !ok {
		err := errors.New("wire: unknown message type " + typ.String())
		return s.reply(st, wire.MsgError, &wire.ErrorResponse{RespHeader: wire.RespHeader{Err: wire.ToWire(errors.Join(fsapi.ErrBadRequest, err))}})
	}
	return s.reply(st, typ, h(ctx, body))
}

// reply writes a response frame; it reports whether it was written.
func (s *Server) reply(st *yamux.Stream, typ wire.MsgType, resp any) bool {
	st.SetWriteDeadline(time.Now().Add(replyWriteTimeout))
	if err := wire.WriteFrame(st, typ, resp); err != nil {
		s.log.Debug("reply not sent", "type", typ, "err", err)
		return false
	}
	return true
}

type handlerFunc func(ctx context.Context, body []byte) any

type responder interface{ Header() *wire.RespHeader }

// rpc adapts a typed handler: decode the request, call it, and put any
// error and the epoch in the response header.
func rpc[Req any, Resp any, PResp interface {
	*Resp
	responder
}](s *Server, timeout time.Duration, f func(context.Context, *Req) (PResp, error)) handlerFunc {
	return func(ctx context.Context, body []byte) any {
		var req Req
		var resp PResp
		err := wire.Decode(body, &req)
		if err == nil {
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			resp, err = f(ctx, &req)
		}
		if resp == nil {
			resp = PResp(new(Resp))
		}
		hdr := resp.Header()
		if err != nil {
			hdr.Err = wire.ToWire(s.callErr(err))
		}
		if ls := s.leading.Load(); ls != nil && hdr.Epoch == 0 {
			// Only a master speaks for the epoch. A handler whose answer
			// belongs to one term (keepAlive) has set it already.
			hdr.Epoch = ls.term
		}
		return resp
	}
}

// callErr turns context and Raft failures into the errors clients retry on.
func (s *Server) callErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errors.Join(fsapi.ErrUnavailable, err)
	}
	return err
}
