package cellclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestKeepAliveNotExpiredBeforeExpiryCommits reproduces bug 37 on purpose
// (docs/testing.md). A session's lease ends at the master, whose expiry of
// it must first invalidate another session's cached copy of its ephemeral
// node. That other session keeps its lease but never acknowledges, so the
// expiry waits, uncommitted. The first client comes back meanwhile: it
// must not be told "expired", because the expiry can still fail. Then the
// master crashes, the expiry is lost, and the next master keeps the
// session: the client, which kept trying, is safe again with its node.
//
// Before the fix the master answered "session expired" here, and the
// client gave up a session the cell went on keeping.
func TestKeepAliveNotExpiredBeforeExpiryCommits(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m := cell.WaitMaster(t)
	a, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := a.Open(ctx, "/ls/local/a-eph", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	_, eph, err := fsapi.ParseName(h.Name()) // the path inside the cell, as the wire carries it
	if err != nil {
		t.Fatal(err)
	}

	// The holdout: a caching session that caches the node, then renews
	// its lease without ever acknowledging an invalidation.
	b := dialRaw(t, cell.Replica(m).Addr)
	var cs wire.CreateSessionResponse
	if err := b.call(wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion,
		ClientName: "holdout", Caching: true}, &cs); err != nil {
		t.Fatal(err)
	}
	hdr := wire.Header{Session: cs.Session, Epoch: cs.Epoch}
	var gc wire.GetContentsResponse
	if err := b.call(wire.MsgGetContents, &wire.GetContentsRequest{Header: hdr, NodeRef: wire.NodeRef{Path: eph}}, &gc); err != nil {
		t.Fatal(err)
	}
	if !gc.Cacheable {
		t.Fatal("the holdout's read was not cacheable")
	}
	invalidated := make(chan string, 1)
	holdoutDone := make(chan struct{})
	go func() {
		defer close(holdoutDone)
		for ctx.Err() == nil {
			var ka wire.KeepAliveResponse
			if err := b.call(wire.MsgKeepAlive, &wire.KeepAliveRequest{Header: hdr}, &ka); err != nil {
				return // the master crashed, or the test ended
			}
			for _, inv := range ka.Invalidations {
				select {
				case invalidated <- inv.Path:
				default:
				}
			}
			if len(ka.Invalidations) > 0 {
				// Unacknowledged invalidations come back at once: do not spin.
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()

	// a's KeepAlives stop; once its lease ends, the master's expiry of it
	// invalidates the holdout's copy of its node, and waits.
	a.CutOffForTest()
	select {
	case p := <-invalidated:
		if p != eph {
			t.Fatalf("holdout told to forget %s, want %s", p, eph)
		}
	case <-ctx.Done():
		t.Fatal("a's expiry never began")
	}
	a.SetAddrsForTest(cell.Addrs())
	// a's KeepAlives (retried every 50 ms after an error) reach the master
	// while the expiry waits.
	time.Sleep(2 * time.Second)
	select {
	case <-a.Done():
		t.Fatalf("the client was told its session ended (%v) while the expiry was not committed", a.Err())
	default:
	}

	cell.Crash(m)
	b.close()
	<-holdoutDone
	cell.WaitMaster(t)
	// The expiry was never committed: the new master keeps the session,
	// and a hears so.
	if _, err := a.Open(ctx, h.Name(), nil); err != nil {
		t.Fatalf("the session's ephemeral node at the new master: %v", err)
	}
	select {
	case <-a.Done():
		t.Fatalf("session ended: %v", a.Err())
	default:
	}
}

// rawClient speaks the client protocol without cellclient: one call per
// yamux stream, nothing retried, no KeepAlives of its own.
type rawClient struct {
	nc   net.Conn
	sess *yamux.Session
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte{wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	sess, err := yamux.Client(nc, yc)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawClient{nc: nc, sess: sess}
	t.Cleanup(r.close)
	return r
}

func (r *rawClient) close() {
	r.sess.Close()
	r.nc.Close()
}

// call sends req and decodes the answer into resp, returning the answer's
// error, if any.
func (r *rawClient) call(typ wire.MsgType, req any, resp interface{ Header() *wire.RespHeader }) error {
	st, err := r.sess.OpenStream()
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(30 * time.Second))
	if err := wire.WriteFrame(st, typ, req); err != nil {
		return err
	}
	rt, body, err := wire.ReadFrame(wire.NewReader(st), wire.MaxFrame)
	if err != nil {
		return err
	}
	if rt == wire.MsgError {
		var er wire.ErrorResponse
		if err := wire.Decode(body, &er); err != nil {
			return err
		}
		return errors.Join(errors.New("error frame"), er.Err.Err())
	}
	if err := wire.Decode(body, resp); err != nil {
		return err
	}
	if e := resp.Header().Err; e != nil {
		return e.Err()
	}
	return nil
}
