package cellclient

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/fsapi/wire"
)

// serveFake answers every Status call on the connections ln accepts. With
// oneShot it closes each stream after one call, as replicas did before
// streams were reused.
func serveFake(t *testing.T, ln net.Listener, oneShot bool, streams *atomic.Int64) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			var b [1]byte
			if _, err := nc.Read(b[:]); err != nil || b[0] != wire.ConnClient {
				nc.Close()
				return
			}
			sess, err := yamux.Server(nc, yamuxConfig())
			if err != nil {
				return
			}
			defer sess.Close()
			for {
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				streams.Add(1)
				go func() {
					defer st.Close()
					r := wire.NewReader(st)
					for {
						typ, _, err := wire.ReadFrame(r, wire.MaxFrame)
						if err != nil {
							return
						}
						if err := wire.WriteFrame(st, typ, &wire.StatusResponse{Cell: "fake"}); err != nil || oneShot {
							return
						}
					}
				}()
			}
		}()
	}
}

// TestConnReusesStreams: calls one after another share one stream; against
// a replica that serves one call per stream, every call still succeeds and
// the connection stops keeping streams.
func TestConnReusesStreams(t *testing.T) {
	for _, oneShot := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var streams atomic.Int64
		go serveFake(t, ln, oneShot, &streams)
		cn, err := dial(context.Background(), ln.Addr().String(), 5*time.Second, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			var resp wire.StatusResponse
			if err := cn.roundTrip(context.Background(), 5*time.Second, wire.MsgStatus, &wire.StatusRequest{}, &resp); err != nil || resp.Cell != "fake" {
				t.Fatalf("oneShot %v: call %d: %v %+v", oneShot, i, err, resp)
			}
		}
		want := int64(1)
		if oneShot {
			want = 10 // the second call found its stream closed and was sent again on a new one; then a stream per call
		}
		if got := streams.Load(); got != want || cn.oneShot.Load() != oneShot {
			t.Errorf("oneShot %v: %d streams (want %d), oneShot seen %v", oneShot, got, want, cn.oneShot.Load())
		}
		cn.close()
	}
}

// TestConnDropsStreamAfterTimeout: a call that times out leaves its stream
// (which may still receive the late answer) out of the pool.
func TestConnDropsStreamAfterTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		var b [1]byte
		nc.Read(b[:])
		sess, _ := yamux.Server(nc, yamuxConfig())
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				r := wire.NewReader(st)
				for {
					typ, _, err := wire.ReadFrame(r, wire.MaxFrame)
					if err != nil {
						return
					}
					time.Sleep(300 * time.Millisecond) // late for a 100 ms call
					wire.WriteFrame(st, typ, &wire.StatusResponse{Cell: "late"})
				}
			}()
		}
	}()
	cn, err := dial(context.Background(), ln.Addr().String(), 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close()
	var resp wire.StatusResponse
	if err := cn.roundTrip(context.Background(), 100*time.Millisecond, wire.MsgStatus, &wire.StatusRequest{}, &resp); err == nil {
		t.Fatal("a 100 ms call to a 300 ms replica succeeded")
	}
	cn.mu.Lock()
	n := len(cn.idle)
	cn.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d streams kept after a timed-out call", n)
	}
}
