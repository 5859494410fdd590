//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestProcessBadInput feeds hostile and broken input to the replicas of
// one running cell: garbage connections, broken yamux, broken frames,
// clients that vanish mid-call, malformed names and oversize contents.
// After each case every replica process must still run, a normal client
// must still write and read, and data committed before must be intact.
// Where the protocol allows an answer (an error inside a working yamux
// stream) the sender must get an error frame, not silence.
func TestProcessBadInput(t *testing.T) {
	rng := newRand(t)
	cell := startProcCell(t, procOptions{})
	cl := cell.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := cl.Open(ctx, "/ls/proc/bad", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	canary := make([]byte, 4096)
	for i := range canary {
		canary[i] = byte(rng.Uint32())
	}
	if _, err := cl.Open(ctx, "/ls/proc/bad/canary", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: canary}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let connections settle before counting descriptors
	baseFDs := make([]int, cell.N())
	for i := range cell.N() {
		baseFDs[i] = cell.fdCount(i)
	}

	// healthy checks, after a case: every replica process runs, a client
	// can write a new file and read it back, and every file written before
	// (the canary and each earlier check's file) is intact.
	type written struct {
		name string
		data []byte
	}
	committed := []written{{"/ls/proc/bad/canary", canary}}
	healthy := func(t *testing.T, after string) {
		t.Helper()
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > time.Second {
				t.Logf("health check after %s took %v", after, d.Round(time.Millisecond))
			}
		}()
		cell.CheckAlive(t)
		name := fmt.Sprintf("/ls/proc/bad/ok-%d", len(committed))
		want := fmt.Appendf(nil, "written after %s", after)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		h, err := cl.Open(cctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: want})
		if err != nil {
			t.Fatalf("cell cannot take a write after %s: %v", after, err)
		}
		h.Close()
		committed = append(committed, written{name, want})
		for _, w := range committed {
			h, err := cl.Open(cctx, w.name, nil)
			if err != nil {
				t.Fatalf("after %s: open %s: %v", after, w.name, err)
			}
			got, st, err := h.GetContentsAndStat(cctx)
			h.Close()
			if err != nil || !bytes.Equal(got, w.data) || st.ContentGeneration != 1 {
				t.Fatalf("after %s: %s damaged: %d bytes, %+v, %v", after, w.name, len(got), st, err)
			}
		}
		cell.CheckAlive(t)
	}
	// runCase runs one case as a subtest, then checks the cell's health.
	runCase := func(t *testing.T, name string, f func(t *testing.T)) {
		t.Helper()
		t.Run(name, f)
		healthy(t, t.Name()+"/"+name)
	}
	// eachReplica runs f against every replica in parallel.
	eachReplica := func(t *testing.T, f func(t *testing.T, addr string)) {
		t.Helper()
		for i := range cell.N() {
			addr := cell.Addr(i)
			t.Run(cell.ID(i), func(t *testing.T) {
				t.Parallel()
				f(t, addr)
			})
		}
	}

	// ---- malformed names and oversize contents through cellclient ----

	t.Run("client/names", func(t *testing.T) {
		long := strings.Repeat("a", 256)
		bad := []string{
			"", "/", "ls/proc/x", "/ls", "/ls/", "/ls/proc/", "/ls//x", "/LS/proc/x", "/ls/pr oc/x", "/ls/local/",
			"/ls/proc//x", "/ls/proc/a/", "/ls/proc/./x", "/ls/proc/../x", "/ls/proc/x/..", "/ls/proc/.",
			"/ls/proc/a b", "/ls/proc/a\x00b", "/ls/proc/a\nb", "/ls/proc/ü", "/ls/proc/%2e%2e", "/ls/proc/a:b",
			"/ls/proc/a\\b", "/ls/proc/" + long, "/ls/proc/" + strings.Repeat("abcdefgh/", 114) + "x",
			"/ls/" + long + "/x", "/ls/proc/bad/\xff",
		}
		for _, name := range bad {
			for _, opts := range []*cellclient.OpenOptions{nil, {Create: fsapi.CreateMay}, {Create: fsapi.CreateMust, Directory: true}} {
				if _, err := cl.Open(ctx, name, opts); !errors.Is(err, fsapi.ErrBadName) {
					t.Errorf("Open(%.60q, %+v) = %v, want fsapi.ErrBadName", name, opts, err)
				}
			}
		}
		// Valid edge cases stay valid.
		for _, name := range []string{"/ls/proc/bad/...", "/ls/local/bad/" + strings.Repeat("z", 255), "/ls/proc/bad/-_.A9"} {
			if _, err := cl.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
				t.Errorf("Open(%.60q): %v", name, err)
			}
		}
		healthy(t, t.Name())
	})

	t.Run("client/oversize", func(t *testing.T) {
		limit := cl.ContentLimit()
		if limit != fsapi.DefaultContentLimit {
			t.Errorf("content limit %d, want the default %d", limit, fsapi.DefaultContentLimit)
		}
		over := bytes.Repeat([]byte{'o'}, limit+1)
		if _, err := cl.Open(ctx, "/ls/proc/bad/big", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: over}); !errors.Is(err, fsapi.ErrTooLarge) {
			t.Errorf("Open with %d bytes: %v, want fsapi.ErrTooLarge", len(over), err)
		}
		h, err := cl.Open(ctx, "/ls/proc/bad/exact", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: over[:limit]})
		if err != nil {
			t.Fatalf("Open with exactly the limit: %v", err)
		}
		for _, n := range []int{limit + 1, 2 * limit, wire.MaxFrame + 1} {
			if _, err := h.SetContents(ctx, bytes.Repeat([]byte{'p'}, n), fsapi.AnyGeneration); !errors.Is(err, fsapi.ErrTooLarge) {
				t.Errorf("SetContents of %d bytes: %v, want fsapi.ErrTooLarge", n, err)
			}
		}
		if data, st, err := h.GetContentsAndStat(ctx); err != nil || !bytes.Equal(data, over[:limit]) || st.ContentGeneration != 1 {
			t.Errorf("file at the limit after rejected writes: %d bytes, %+v, %v", len(data), st, err)
		}
		healthy(t, t.Name())
	})

	// ---- the same, bypassing the client's checks: the replica must refuse ----

	t.Run("raw/names-and-oversize", func(t *testing.T) {
		m := cell.waitMaster(10 * time.Second)
		rc := mastertest.DialRaw(t, cell.Addr(m))
		typ, body, err := rc.Send(frame(t, wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: "raw"}), false, 10*time.Second)
		var cs wire.CreateSessionResponse
		if err != nil || typ != wire.MsgCreateSession || wire.Decode(body, &cs) != nil || cs.Err != nil {
			t.Fatalf("raw CreateSession: %v %v %+v", typ, err, cs.Err)
		}
		hdr := wire.Header{Session: cs.Session}
		seq := uint64(0)
		wh := func() wire.WriteHeader { seq++; return wire.WriteHeader{Seq: seq, AckBelow: seq} }
		big := bytes.Repeat([]byte{'x'}, cs.ContentLimit+1)
		cases := []struct {
			name string
			typ  wire.MsgType
			req  any
			code wire.Code
		}{
			{"open ..", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/../x", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open empty", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open relative", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "bad/x", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open //", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad//x", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open trailing /", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open NUL", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/a\x00b", Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open long", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/" + strings.Repeat("b", 256), Create: fsapi.CreateMay}, wire.CodeBadName},
			{"open read ..", wire.MsgOpen, &wire.OpenRequest{Header: hdr, Path: "/.."}, wire.CodeBadName},
			{"get contents bad", wire.MsgGetContents, &wire.GetContentsRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/bad/./canary"}}, wire.CodeBadName},
			{"stat bad", wire.MsgGetStat, &wire.GetStatRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/bad/canary/"}}, wire.CodeBadName},
			{"readdir bad", wire.MsgReadDir, &wire.ReadDirRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "//"}}, wire.CodeBadName},
			{"set bad", wire.MsgSetContents, &wire.SetContentsRequest{Header: hdr, WriteHeader: wh(), NodeRef: wire.NodeRef{Path: "/bad/../bad/canary"}, Data: []byte("x")}, wire.CodeBadName},
			{"delete bad", wire.MsgDelete, &wire.DeleteRequest{Header: hdr, WriteHeader: wh(), NodeRef: wire.NodeRef{Path: "/bad/c anary"}}, wire.CodeBadName},
			{"open oversize", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/big", Create: fsapi.CreateMay, Contents: big}, wire.CodeTooLarge},
			{"open 1MiB", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/big", Create: fsapi.CreateMay, Contents: make([]byte, 1<<20)}, wire.CodeTooLarge},
			{"set oversize", wire.MsgSetContents, &wire.SetContentsRequest{Header: hdr, WriteHeader: wh(), NodeRef: wire.NodeRef{Path: "/bad/canary"}, Data: big}, wire.CodeTooLarge},
			{"bad version", wire.MsgCreateSession, &wire.CreateSessionRequest{Version: 99}, wire.CodeBadRequest},
			{"wrong cell", wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion, Cell: "other"}, wire.CodeWrongCell},
			{"no session", wire.MsgGetStat, &wire.GetStatRequest{Header: wire.Header{Session: 1 << 60}, NodeRef: wire.NodeRef{Path: "/bad"}}, wire.CodeSessionExpired},
		}
		for _, c := range cases {
			typ, body, err := rc.Send(frame(t, c.typ, c.req), false, 10*time.Second)
			if err != nil {
				t.Errorf("%s: no answer: %v", c.name, err)
				continue
			}
			var er wire.ErrorResponse
			if derr := wire.Decode(body, &er); derr != nil || (typ != c.typ && typ != wire.MsgError) {
				t.Errorf("%s: answer of type %v: %v", c.name, typ, derr)
				continue
			}
			if er.Err == nil || er.Err.Code != c.code {
				t.Errorf("%s: answered %+v, want code %d", c.name, er.Err, c.code)
			}
		}
		// (compareReplicaStates checks at the end that none of these reached
		// the Raft log.)
		// Contradictory requests the state machine refuses (they do go
		// through Raft, as failed results).
		for _, c := range []struct {
			name string
			typ  wire.MsgType
			req  any
		}{
			{"dir with contents", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/d", Create: fsapi.CreateMay, Directory: true, Contents: []byte("x")}},
			{"create mode 9", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wh(), Path: "/bad/m", Create: 9}},
			{"delete root", wire.MsgDelete, &wire.DeleteRequest{Header: hdr, WriteHeader: wh(), NodeRef: wire.NodeRef{Path: "/"}}},
		} {
			typ, body, err := rc.Send(frame(t, c.typ, c.req), false, 10*time.Second)
			var er wire.ErrorResponse
			if err != nil || typ != c.typ || wire.Decode(body, &er) != nil || er.Err == nil || er.Err.Code != wire.CodeBadRequest {
				t.Errorf("%s: %v %v %+v; want CodeBadRequest", c.name, typ, err, er.Err)
			}
		}
		healthy(t, t.Name())
	})

	// ---- garbage on the port ----

	// waitClosed reads until the replica closes the connection; it fails if
	// the replica keeps it open past within. Bytes it sends are allowed (a
	// yamux GoAway, say) unless silent is set. Safe in any goroutine.
	waitClosed := func(nc net.Conn, within time.Duration, silent bool) error {
		nc.SetReadDeadline(time.Now().Add(within))
		var got []byte
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return fmt.Errorf("replica kept the connection open for %v", within)
				}
				break
			}
		}
		if silent && len(got) > 0 {
			return fmt.Errorf("replica answered %d bytes: %q", len(got), got)
		}
		return nil
	}
	expectClosed := func(t *testing.T, nc net.Conn, within time.Duration, silent bool) {
		t.Helper()
		if err := waitClosed(nc, within, silent); err != nil {
			t.Fatal(err)
		}
	}
	sendGarbage := func(t *testing.T, addr string, data []byte) net.Conn {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		nc.Write(data) // the replica may close early; that is fine
		return nc
	}
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var rngMu sync.Mutex
	garbage := func(n int, first byte) []byte {
		rngMu.Lock()
		defer rngMu.Unlock()
		b := randBytes(n)
		b[0] = first
		return b
	}

	t.Run("conn", func(t *testing.T) {
		runCase(t, "random", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				first := byte('C')
				for first == 'C' || first == 'R' {
					rngMu.Lock()
					first = byte(rng.Uint32())
					rngMu.Unlock()
				}
				expectClosed(t, sendGarbage(t, addr, garbage(64<<10, first)), 10*time.Second, true)
			})
		})
		runCase(t, "http", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				nc := sendGarbage(t, addr, []byte("GET / HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: probe\r\n\r\n"))
				expectClosed(t, nc, 10*time.Second, true)
			})
		})
		runCase(t, "TLS-hello", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				hello := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}, garbage(512, 0)...)
				expectClosed(t, sendGarbage(t, addr, hello), 10*time.Second, true)
			})
		})
		runCase(t, "wrong-protocol-byte", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				for _, b := range []byte{0, 'X', 'c', 'r', 0xff} {
					expectClosed(t, sendGarbage(t, addr, []byte{b, 0, 1, 0, 1}), 10*time.Second, true)
				}
			})
		})
		runCase(t, "silent", func(t *testing.T) {
			// A connection that never sends its protocol byte is dropped
			// after a few seconds, not held forever; likewise a yamux data
			// frame for a stream never opened that claims 2 GiB (yamux drains
			// it, so only its keepalive, unanswered, ends the connection).
			// Slow, so all at once.
			var wg sync.WaitGroup
			for i := range cell.N() {
				id, addr := cell.ID(i), cell.Addr(i)
				for _, c := range []struct {
					what   string
					data   []byte
					within time.Duration
				}{
					{"no protocol byte", nil, 15 * time.Second},
					{"2 GiB yamux data frame for no stream", append([]byte{'C', 0, 0, 0, 0, 0, 0, 0, 3, 0x7f, 0xff, 0xff, 0xff}, garbage(1024, 0)...), 40 * time.Second},
				} {
					nc := sendGarbage(t, addr, c.data)
					wg.Add(1)
					go func() {
						defer wg.Done()
						start := time.Now()
						if err := waitClosed(nc, c.within, c.data == nil); err != nil {
							t.Errorf("%s, %s: %v", id, c.what, err)
						} else if id == "r1" {
							t.Logf("%s: closed after %v", c.what, time.Since(start).Round(time.Millisecond))
						}
					}()
				}
			}
			wg.Wait()
		})
		runCase(t, "C-then-garbage", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				expectClosed(t, sendGarbage(t, addr, append([]byte{'C'}, garbage(4096, 0xee)...)), 10*time.Second, false)
				expectClosed(t, sendGarbage(t, addr, []byte("Chello, this is not yamux\r\n\r\n")), 10*time.Second, false)
				// A valid yamux header, then an unknown frame type.
				expectClosed(t, sendGarbage(t, addr, []byte{'C', 0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}), 10*time.Second, false)
			})
		})
		runCase(t, "R-then-garbage", func(t *testing.T) {
			// Raft's transport shares the port: garbage there must not hurt.
			eachReplica(t, func(t *testing.T, addr string) {
				expectClosed(t, sendGarbage(t, addr, append([]byte{'R'}, garbage(4096, 0xee)...)), 10*time.Second, false)
				for rpc := byte(0); rpc < 4; rpc++ {
					nc := sendGarbage(t, addr, append([]byte{'R'}, garbage(4096, rpc)...))
					nc.Close()
				}
				// An AppendEntries whose Entries claim 2^32-1 elements.
				ae := []byte{'R', 0, 0x81, 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}
				sendGarbage(t, addr, ae).Close()
			})
		})
		healthy(t, t.Name())
	})

	// ---- broken frames inside a working yamux stream ----

	// expectErrorFrame checks that a call got an error frame with code.
	expectErrorFrame := func(t *testing.T, what string, typ wire.MsgType, body []byte, err error, reqTyp wire.MsgType, code wire.Code, alsoOK ...wire.Code) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: no answer (%v); want an error frame with code %d", what, err, code)
			return
		}
		if typ != wire.MsgError && typ != reqTyp {
			t.Errorf("%s: answer of type %v", what, typ)
			return
		}
		var er wire.ErrorResponse
		if err := wire.Decode(body, &er); err != nil {
			t.Errorf("%s: undecodable answer: %v", what, err)
			return
		}
		if er.Err == nil {
			t.Errorf("%s: answer carries no error", what)
			return
		}
		if er.Err.Code != code && !slices.Contains(alsoOK, er.Err.Code) {
			t.Errorf("%s: error code %d (%q), want %d", what, er.Err.Code, er.Err.Message, code)
		}
	}
	hdrBytes := func(typ wire.MsgType, n uint32) []byte {
		h := []byte{byte(typ), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(h[1:], n)
		return h
	}
	statusOK := func(t *testing.T, rc *mastertest.RawConn) {
		t.Helper()
		typ, body, err := rc.Send(frame(t, wire.MsgStatus, &wire.StatusRequest{}), false, 10*time.Second)
		var st wire.StatusResponse
		if err != nil || typ != wire.MsgStatus || wire.Decode(body, &st) != nil || st.Err != nil || st.Cell != procCellName {
			t.Errorf("session unusable after the bad stream: %v %v %+v", typ, err, st.Err)
		}
	}

	t.Run("stream", func(t *testing.T) {
		createBody, _ := wire.Encode(&wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: "truncated", Cell: procCellName})
		// A stream carries call after call (cellclient reuses streams), and
		// a broken frame ends only that stream.
		runCase(t, "reused-then-broken", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				st, err := rc.OpenStream()
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				st.SetDeadline(time.Now().Add(20 * time.Second))
				r := wire.NewReader(st)
				for i := range 3 {
					if _, err := st.Write(frame(t, wire.MsgStatus, &wire.StatusRequest{})); err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
					typ, body, err := wire.ReadFrame(r, wire.MaxFrame)
					var sr wire.StatusResponse
					if err != nil || typ != wire.MsgStatus || wire.Decode(body, &sr) != nil || sr.Cell != procCellName {
						t.Fatalf("call %d on one stream: %v %v", i, typ, err)
					}
				}
				// A well-framed body that is not msgpack: an error, and the
				// framing still holds, so the stream goes on.
				st.Write(append(hdrBytes(wire.MsgCreateSession, 3), 0xc1, 0xc1, 0xc1))
				typ, body, err := wire.ReadFrame(r, wire.MaxFrame)
				expectErrorFrame(t, "garbage body after good calls", typ, body, err, wire.MsgCreateSession, wire.CodeBadRequest)
				st.Write(frame(t, wire.MsgStatus, &wire.StatusRequest{}))
				if typ, _, err := wire.ReadFrame(r, wire.MaxFrame); err != nil || typ != wire.MsgStatus {
					t.Fatalf("call after a garbage body: %v %v", typ, err)
				}
				// A broken frame: an error, then the stream ends (what follows
				// cannot be trusted to be framed).
				st.Write(hdrBytes(wire.MsgCreateSession, wire.MaxFrame+1))
				typ, body, err = wire.ReadFrame(r, wire.MaxFrame)
				expectErrorFrame(t, "oversize frame after good calls", typ, body, err, wire.MsgCreateSession, wire.CodeTooLarge)
				st.Write(frame(t, wire.MsgStatus, &wire.StatusRequest{}))
				if _, _, err := wire.ReadFrame(r, wire.MaxFrame); err == nil {
					t.Error("a stream that carried a broken frame answered another call")
				}
				statusOK(t, rc)
			})
		})
		runCase(t, "frame-too-large", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				for _, n := range []uint32{1 << 31, wire.MaxFrame + 1, 1<<32 - 1} {
					typ, body, err := rc.Send(append(hdrBytes(wire.MsgCreateSession, n), 1, 2, 3), false, 10*time.Second)
					expectErrorFrame(t, fmt.Sprintf("frame of %d bytes", n), typ, body, err, wire.MsgCreateSession, wire.CodeTooLarge)
				}
				statusOK(t, rc)
			})
		})
		runCase(t, "truncated-msgpack", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				for _, cut := range []int{0, 1, len(createBody) / 2, len(createBody) - 1} {
					raw := append(hdrBytes(wire.MsgCreateSession, uint32(cut)), createBody[:cut]...)
					typ, body, err := rc.Send(raw, false, 10*time.Second)
					expectErrorFrame(t, fmt.Sprintf("CreateSession body cut at %d", cut), typ, body, err, wire.MsgCreateSession, wire.CodeBadRequest)
				}
				statusOK(t, rc)
			})
		})
		runCase(t, "hostile-msgpack", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				bodies := map[string][]byte{
					"deep nesting":      append(append([]byte{0x81, 0xa2, 'Z', 'z'}, bytes.Repeat([]byte{0x91}, 1<<20)...), 0xc0),
					"huge bin length":   {0x81, 0xa8, 'C', 'o', 'n', 't', 'e', 'n', 't', 's', 0xc6, 0x7f, 0xff, 0xff, 0xff, 1, 2},
					"huge str length":   {0x81, 0xa4, 'P', 'a', 't', 'h', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
					"huge map":          {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01},
					"not a map":         {0xa5, 'h', 'e', 'l', 'l', 'o'},
					"invalid byte":      {0xc1},
					"many unknown keys": bytes.Repeat([]byte{0xa1, 'q', 0x01}, 100000),
				}
				bodies["many unknown keys"] = append([]byte{0xdf, 0, 1, 0x86, 0xa0}, bodies["many unknown keys"]...)
				for name, b := range bodies {
					for _, typ := range []wire.MsgType{wire.MsgOpen, wire.MsgSetContents, wire.MsgCreateSession, wire.MsgMulti} {
						rtyp, body, err := rc.Send(append(hdrBytes(typ, uint32(len(b))), b...), false, 20*time.Second)
						// A body that decodes after all (unknown keys are skipped)
						// is refused for what it lacks: a path, a session.
						expectErrorFrame(t, fmt.Sprintf("%s as %v", name, typ), rtyp, body, err, typ, wire.CodeBadRequest,
							wire.CodeBadName, wire.CodeSessionExpired, wire.CodeNotMaster)
					}
				}
				statusOK(t, rc)
			})
		})
		runCase(t, "unknown-type", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				for _, typ := range []wire.MsgType{0, 77, 200, 254, wire.MsgError} {
					rtyp, body, err := rc.Send(frame(t, typ, &wire.StatusRequest{}), false, 10*time.Second)
					expectErrorFrame(t, fmt.Sprintf("type %d", typ), rtyp, body, err, wire.MsgError, wire.CodeBadRequest)
					if err == nil && rtyp != wire.MsgError {
						t.Errorf("type %d answered with type %v, want MsgError", typ, rtyp)
					}
				}
				statusOK(t, rc)
			})
		})
		runCase(t, "truncated-frame", func(t *testing.T) {
			// The client half-closes its stream before the frame is
			// complete: the replica sees the end of the stream mid-frame.
			// A malformed request is the client's fault: CodeBadRequest.
			// (Regression: it used to answer CodeInternal; fixed in 3c1ce14.)
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				full := append(hdrBytes(wire.MsgCreateSession, uint32(len(createBody))), createBody...)
				for _, cut := range []int{1, 4, 5, 5 + len(createBody)/2, len(full) - 1} {
					typ, body, err := rc.Send(full[:cut], true, 10*time.Second)
					expectErrorFrame(t, fmt.Sprintf("frame cut at %d of %d bytes", cut, len(full)), typ, body, err, wire.MsgError, wire.CodeBadRequest)
				}
				// A stream closed before any byte is a client that changed its
				// mind: no answer is needed, and the session goes on.
				statusOK(t, rc)
			})
		})
		healthy(t, t.Name())
	})

	// ---- clients that vanish ----

	t.Run("vanish", func(t *testing.T) {
		runCase(t, "create-session-then-close", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				full := frame(t, wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: "vanisher"})
				for _, cut := range []int{len(full), len(full) / 2} {
					rc := mastertest.DialRaw(t, addr)
					st, err := rc.OpenStream()
					if err != nil {
						t.Fatal(err)
					}
					st.Write(full[:cut])
					time.Sleep(time.Duration(cut%7) * time.Millisecond)
					rc.Drop()
				}
			})
		})
		runCase(t, "100-streams-then-vanish", func(t *testing.T) {
			eachReplica(t, func(t *testing.T, addr string) {
				rc := mastertest.DialRaw(t, addr)
				// A real session, so that its KeepAlives are held by the master.
				typ, body, err := rc.Send(frame(t, wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: "streams"}), false, 10*time.Second)
				var cs wire.CreateSessionResponse
				if err != nil || typ != wire.MsgCreateSession || wire.Decode(body, &cs) != nil {
					t.Fatalf("CreateSession: %v %v", typ, err)
				}
				hdr := wire.Header{Session: cs.Session}
				for i := range 100 {
					st, err := rc.OpenStream()
					if err != nil {
						t.Fatalf("stream %d: %v", i, err)
					}
					switch i % 5 {
					case 0: // nothing at all
					case 1: // a header promising a body that never comes
						st.Write(hdrBytes(wire.MsgGetStat, 1000))
					case 2: // a KeepAlive the master holds
						st.Write(frame(t, wire.MsgKeepAlive, &wire.KeepAliveRequest{Header: hdr}))
					case 3: // a read that is answered, never read
						st.Write(frame(t, wire.MsgGetStat, &wire.GetStatRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/bad/canary"}}))
					case 4: // a write that is applied, its answer never read
						st.Write(frame(t, wire.MsgSetContents, &wire.SetContentsRequest{Header: hdr,
							WriteHeader: wire.WriteHeader{Seq: uint64(i), AckBelow: 1}, NodeRef: wire.NodeRef{Path: fmt.Sprintf("/bad/vanish-%d", i)},
							Data: []byte("never acknowledged")}))
					}
				}
				time.Sleep(200 * time.Millisecond)
				rc.Drop()
			})
		})
		healthy(t, t.Name())
	})

	// ---- nothing leaks ----

	t.Run("cleanup", func(t *testing.T) {
		// Descriptors: every connection above is closed; the replicas must
		// have closed their ends too. Besides a little slack, raft's own
		// connection pools may have grown since the base count: up to
		// MaxPool (3) connections to each peer and as many from it (without
		// pipelined replication raft draws on its pool for every
		// AppendEntries and heartbeat).
		slack := 8 + 2*3*(cell.N()-1)
		deadline := time.Now().Add(40 * time.Second)
		for i := range cell.N() {
			id := cell.ID(i)
			for {
				n := cell.fdCount(i)
				if n <= baseFDs[i]+slack {
					t.Logf("%s: %d descriptors open (%d before the bad input)", id, n, baseFDs[i])
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: %d descriptors open, %d before the bad input: connections leak", id, n, baseFDs[i])
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		// Sessions: those of the vanished clients expire; only cl's lives.
		deadline = time.Now().Add(4*procLease + 10*time.Second)
		for {
			sts := cell.statuses()
			m := masterIndex(sts)
			if m >= 0 && sts[m].Sessions == 1 {
				break
			}
			if time.Now().After(deadline) {
				n := -1
				if m >= 0 {
					n = sts[m].Sessions
				}
				t.Errorf("master still has %d sessions; want 1 after the vanished clients' leases ran out", n)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		healthy(t, t.Name())
		for i := range cell.N() {
			rss, hwm := cell.rssKiB(i)
			t.Logf("%s: RSS %d MiB, peak %d MiB", cell.ID(i), rss>>10, hwm>>10)
		}
	})
	cell.compareReplicaStates(t)
}
