package cellclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// TestFaultWriteAnsweredTryElsewhereIsAmbiguous: a master that loses its
// leadership while it commits a write answers "not master" (master's
// raftErr maps raft.ErrLeadershipLost to *fsapi.NotMasterError), and one
// whose own deadline ends while the write may still commit answers
// fsapi.ErrUnavailable (callErr). Either way the write may have been
// committed by the next master: raft.ErrLeadershipLost "There is no way to
// guarantee whether the write succeeded or failed". If the client then
// runs out of time before it reaches a master, the write's outcome is
// unknown and it must fail with *fsapi.AmbiguousError, not a plain
// context error, which says the write never happened.
//
// The fault workload found this with porcupine's history: a write that
// failed with "context deadline exceeded (last error: fsapi: not master;
// master unknown)" was read back later. Here a fake replica reproduces it
// deterministically: it "applies" the first SetContents and answers it as
// a deposed master would, then answers every retry "master unknown".
func TestFaultWriteAnsweredTryElsewhereIsAmbiguous(t *testing.T) {
	for _, tt := range []struct {
		name   string
		answer error
	}{
		{"leadership lost", &fsapi.NotMasterError{}},
		{"master deadline", errors.Join(fsapi.ErrUnavailable, context.DeadlineExceeded)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fr := startFakeReplica(t, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: []string{fr.addr}, AttemptTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			h, err := c.Open(ctx, "/ls/local/f", nil)
			if err != nil {
				t.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer wcancel()
			_, err = h.SetContents(wctx, []byte("v"), fsapi.AnyGeneration)
			if fr.writes.Load() == 0 {
				t.Fatalf("the write never reached the replica (err %v)", err)
			}
			var amb *fsapi.AmbiguousError
			if !errors.As(err, &amb) {
				t.Errorf("write that the replica may have committed failed with %q; want *fsapi.AmbiguousError", err)
			}
		})
	}
}

// fakeReplica speaks the client protocol: it creates sessions, holds
// KeepAlives, opens any file, and answers every SetContents with answer.
type fakeReplica struct {
	addr   string
	answer error
	writes atomic.Int64
	ln     net.Listener
	doneCh chan struct{}
	wg     sync.WaitGroup
}

func startFakeReplica(t *testing.T, answer error) *fakeReplica {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fr := &fakeReplica{addr: ln.Addr().String(), answer: answer, ln: ln, doneCh: make(chan struct{})}
	fr.wg.Add(1)
	go fr.accept()
	t.Cleanup(func() {
		close(fr.doneCh)
		ln.Close()
		fr.wg.Wait()
	})
	return fr
}

func (fr *fakeReplica) accept() {
	defer fr.wg.Done()
	for {
		nc, err := fr.ln.Accept()
		if err != nil {
			return
		}
		fr.wg.Add(1)
		go fr.serve(nc)
	}
}

func (fr *fakeReplica) serve(nc net.Conn) {
	defer fr.wg.Done()
	defer nc.Close()
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != wire.ConnClient {
		return
	}
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	sess, err := yamux.Server(nc, yc)
	if err != nil {
		return
	}
	defer sess.Close()
	go func() {
		<-fr.doneCh
		sess.Close()
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		fr.wg.Add(1)
		go fr.call(st)
	}
}

func (fr *fakeReplica) call(st *yamux.Stream) {
	defer fr.wg.Done()
	defer st.Close()
	typ, _, err := wire.ReadFrame(wire.NewReader(st), wire.MaxFrame)
	if err != nil {
		return
	}
	const epoch = 1
	var resp any
	switch typ {
	case wire.MsgCreateSession:
		resp = &wire.CreateSessionResponse{RespHeader: wire.RespHeader{Epoch: epoch}, Session: 1, Cell: "fake",
			ContentLimit: 1 << 10, LeaseMillis: 60_000}
	case wire.MsgKeepAlive: // hold it until the client gives up on it
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, st)
			close(closed)
		}()
		select {
		case <-fr.doneCh:
		case <-closed:
		}
		return
	case wire.MsgOpen:
		resp = &wire.OpenResponse{RespHeader: wire.RespHeader{Epoch: epoch}, Stat: fsapi.Stat{Instance: 1, ContentGeneration: 1}}
	case wire.MsgSetContents:
		// The first try is the one that was (maybe) committed; the retries
		// find a replica that no longer knows any master.
		answer := fr.answer
		if fr.writes.Add(1) > 1 {
			answer = &fsapi.NotMasterError{}
		}
		resp = &wire.SetContentsResponse{RespHeader: wire.RespHeader{Epoch: epoch, Err: wire.ToWire(answer)}}
	case wire.MsgCloseSession:
		resp = &wire.CloseSessionResponse{RespHeader: wire.RespHeader{Epoch: epoch}}
	default:
		resp = &wire.ErrorResponse{RespHeader: wire.RespHeader{Err: wire.ToWire(fsapi.ErrBadRequest)}}
		typ = wire.MsgError
	}
	wire.WriteFrame(st, typ, resp)
}
