package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// fullStat has every field set to a distinct, mostly large value, so a field
// that is lost or swapped in a round trip shows.
var fullStat = fsapi.Stat{
	Instance: 1, ContentGeneration: 2, LockGeneration: 3, ACLGeneration: 4,
	Checksum: math.MaxUint64, CreatedRevision: 1 << 40, ModifiedRevision: 1<<40 + 7,
	EphemeralOwner: 1 << 63, Children: 9, Size: 10, IsDir: true,
}

var (
	hdr  = wire.Header{Session: 1<<63 + 5, Epoch: 77}
	whdr = wire.WriteHeader{Seq: math.MaxUint64, AckBelow: 1 << 33}
	rhdr = wire.RespHeader{Epoch: 12, Revision: 1 << 50}
	eh   = wire.RespHeader{Err: &wire.Error{Code: wire.CodeNotMaster, Message: "fsapi: not master; master is 10.0.0.1:7001",
		Leader: "10.0.0.1:7001"}, Epoch: 3, Revision: 4}
)

// message is one value of every type on the wire, with the frame type it
// travels under and a constructor of an empty value to decode into.
type message struct {
	name string
	typ  wire.MsgType
	v    any
	zero func() any
}

// requests returns one populated value of every request type.
func requests() []message {
	return []message{
		{"CreateSession", wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion, ClientName: "host:pid ü", Cell: "proc"},
			func() any { return new(wire.CreateSessionRequest) }},
		{"KeepAlive", wire.MsgKeepAlive, &wire.KeepAliveRequest{Header: hdr}, func() any { return new(wire.KeepAliveRequest) }},
		{"CloseSession", wire.MsgCloseSession, &wire.CloseSessionRequest{Header: hdr, WriteHeader: whdr},
			func() any { return new(wire.CloseSessionRequest) }},
		{"Open", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: whdr, Path: "/a/b.c", Create: fsapi.CreateMust,
			Ephemeral: true, Directory: false, Contents: []byte("\x00\xffcontents")}, func() any { return new(wire.OpenRequest) }},
		{"OpenDir", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: whdr, Path: "/d", Create: fsapi.CreateMay, Directory: true},
			func() any { return new(wire.OpenRequest) }},
		{"OpenSequential", wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: whdr, Path: "/q/job-", Create: fsapi.CreateMust,
			Ephemeral: true, Sequential: true}, func() any { return new(wire.OpenRequest) }},
		{"GetContents", wire.MsgGetContents, &wire.GetContentsRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/x", Instance: 99}},
			func() any { return new(wire.GetContentsRequest) }},
		{"GetStat", wire.MsgGetStat, &wire.GetStatRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/", Instance: 0}},
			func() any { return new(wire.GetStatRequest) }},
		{"ReadDir", wire.MsgReadDir, &wire.ReadDirRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/dir", Instance: 1}},
			func() any { return new(wire.ReadDirRequest) }},
		// Follower reads (ReadOptions).
		{"OpenFollower", wire.MsgOpen, &wire.OpenRequest{Header: hdr, ReadOptions: wire.ReadOptions{Follower: true, MinRevision: 1<<40 + 3},
			Path: "/a"}, func() any { return new(wire.OpenRequest) }},
		{"GetContentsFollower", wire.MsgGetContents, &wire.GetContentsRequest{Header: hdr,
			ReadOptions: wire.ReadOptions{Follower: true, MinRevision: 1<<64 - 1}, NodeRef: wire.NodeRef{Path: "/x", Instance: 99}},
			func() any { return new(wire.GetContentsRequest) }},
		{"GetStatMinRevision", wire.MsgGetStat, &wire.GetStatRequest{Header: hdr, ReadOptions: wire.ReadOptions{MinRevision: 7},
			NodeRef: wire.NodeRef{Path: "/"}}, func() any { return new(wire.GetStatRequest) }},
		{"ReadDirFollower", wire.MsgReadDir, &wire.ReadDirRequest{Header: hdr, ReadOptions: wire.ReadOptions{Follower: true},
			NodeRef: wire.NodeRef{Path: "/dir", Instance: 1}}, func() any { return new(wire.ReadDirRequest) }},
		{"SetContents", wire.MsgSetContents, &wire.SetContentsRequest{Header: hdr, WriteHeader: whdr, NodeRef: wire.NodeRef{Path: "/f", Instance: 3},
			Data: bytes.Repeat([]byte{0xc1}, 70000), IfGeneration: math.MaxUint64}, func() any { return new(wire.SetContentsRequest) }},
		{"Delete", wire.MsgDelete, &wire.DeleteRequest{Header: hdr, WriteHeader: whdr, NodeRef: wire.NodeRef{Path: "/f", Instance: 3}},
			func() any { return new(wire.DeleteRequest) }},
		{"Status", wire.MsgStatus, &wire.StatusRequest{}, func() any { return new(wire.StatusRequest) }},
		{"Acquire", wire.MsgAcquire, &wire.AcquireRequest{Header: hdr, WriteHeader: whdr, NodeRef: wire.NodeRef{Path: "/l", Instance: 3},
			Handle: 7, Mode: 1, LockDelayMillis: 10000, Wait: true, HoldMillis: 4000}, func() any { return new(wire.AcquireRequest) }},
		{"LockWait", wire.MsgLockWait, &wire.LockWaitRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/l", Instance: 3}, Handle: 7,
			Waiter: 12, HoldMillis: 4000}, func() any { return new(wire.LockWaitRequest) }},
		{"Release", wire.MsgRelease, &wire.ReleaseRequest{Header: hdr, WriteHeader: whdr, NodeRef: wire.NodeRef{Path: "/l", Instance: 3,
			Sequencer: []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9, '/', 'l'}}, Handle: 7},
			func() any { return new(wire.ReleaseRequest) }},
		{"CancelWait", wire.MsgCancelWait, &wire.CancelWaitRequest{Header: hdr, WriteHeader: whdr, Path: "/l", Waiter: 12},
			func() any { return new(wire.CancelWaitRequest) }},
		{"CheckSequencer", wire.MsgCheckSequencer, &wire.CheckSequencerRequest{Header: hdr, Sequencer: []byte("\x01\x01")},
			func() any { return new(wire.CheckSequencerRequest) }},
		{"GetLock", wire.MsgGetLock, &wire.GetLockRequest{Header: hdr, NodeRef: wire.NodeRef{Path: "/l"}}, func() any { return new(wire.GetLockRequest) }},
		{"Watch", wire.MsgWatch, &wire.WatchRequest{Header: hdr, Path: "/svc", Recursive: true, FromRevision: 1234, FromIndex: 2,
			HoldMillis: 15000, MaxEvents: 100}, func() any { return new(wire.WatchRequest) }},
		{"WatchChildren", wire.MsgWatch, &wire.WatchRequest{Header: hdr, Path: "/", Children: true}, func() any { return new(wire.WatchRequest) }},
		{"Multi", wire.MsgMulti, &wire.MultiRequest{Header: hdr, WriteHeader: whdr, Ops: []wire.MultiOp{
			{Kind: wire.MultiCreate, Path: "/q/job-", Data: []byte("\x00j"), Ephemeral: true, Sequential: true},
			{Kind: wire.MultiCreate, Path: "/d", Directory: true},
			{Kind: wire.MultiSet, Path: "/f", Data: []byte("new"), Generation: math.MaxUint64},
			{Kind: wire.MultiDelete, Path: "/g", Generation: 3},
			{Kind: wire.MultiCheck, Path: "/h"}}}, func() any { return new(wire.MultiRequest) }},
	}
}

// responses returns one populated value of every response type, some with
// an error in their header.
func responses() []message {
	return []message{
		{"CreateSession", wire.MsgCreateSession, &wire.CreateSessionResponse{RespHeader: rhdr, Session: 42, Cell: "proc",
			ContentLimit: fsapi.DefaultContentLimit, LeaseMillis: 12000}, func() any { return new(wire.CreateSessionResponse) }},
		{"KeepAlive", wire.MsgKeepAlive, &wire.KeepAliveResponse{RespHeader: rhdr, LeaseMillis: 5000, HeldMillis: 3750},
			func() any { return new(wire.KeepAliveResponse) }},
		{"KeepAliveErr", wire.MsgKeepAlive, &wire.KeepAliveResponse{RespHeader: eh}, func() any { return new(wire.KeepAliveResponse) }},
		{"CloseSession", wire.MsgCloseSession, &wire.CloseSessionResponse{RespHeader: rhdr}, func() any { return new(wire.CloseSessionResponse) }},
		{"Open", wire.MsgOpen, &wire.OpenResponse{RespHeader: rhdr, Stat: fullStat, Created: true}, func() any { return new(wire.OpenResponse) }},
		{"OpenSequential", wire.MsgOpen, &wire.OpenResponse{RespHeader: rhdr, Stat: fullStat, Created: true, Path: "/q/job-0000000007"},
			func() any { return new(wire.OpenResponse) }},
		{"GetContents", wire.MsgGetContents, &wire.GetContentsResponse{RespHeader: rhdr, Data: []byte("data"), Stat: fullStat},
			func() any { return new(wire.GetContentsResponse) }},
		{"GetStat", wire.MsgGetStat, &wire.GetStatResponse{RespHeader: rhdr, Stat: fullStat}, func() any { return new(wire.GetStatResponse) }},
		{"ReadDir", wire.MsgReadDir, &wire.ReadDirResponse{RespHeader: rhdr, Stat: fullStat, Entries: []fsapi.DirEntry{
			{Name: "a", Stat: fullStat}, {Name: "b-2.x_y", Stat: fsapi.Stat{Instance: 5}}}}, func() any { return new(wire.ReadDirResponse) }},
		{"SetContents", wire.MsgSetContents, &wire.SetContentsResponse{RespHeader: rhdr, Stat: fullStat}, func() any { return new(wire.SetContentsResponse) }},
		{"GetContentsBehind", wire.MsgGetContents, &wire.GetContentsResponse{RespHeader: wire.RespHeader{Err: &wire.Error{
			Code: wire.CodeBehind, Message: "fsapi: replica is behind the client's revision: applied 10, want 12"}}},
			func() any { return new(wire.GetContentsResponse) }},
		{"SetContentsErr", wire.MsgSetContents, &wire.SetContentsResponse{RespHeader: wire.RespHeader{
			Err: &wire.Error{Code: wire.CodeGenerationMismatch, Message: "expected 3, actual 4"}}}, func() any { return new(wire.SetContentsResponse) }},
		{"Delete", wire.MsgDelete, &wire.DeleteResponse{RespHeader: rhdr}, func() any { return new(wire.DeleteResponse) }},
		{"Status", wire.MsgStatus, &wire.StatusResponse{RespHeader: rhdr, ID: "r1", Address: "127.0.0.1:1", Cell: "proc", State: "master",
			Term: 4, LastIndex: 100, CommitIndex: 99, AppliedIndex: 98, LeaderID: "r1", LeaderAddr: "127.0.0.1:1", Sessions: 3, Nodes: 10,
			Servers: []wire.Server{{ID: "r1", Address: "127.0.0.1:1", Voter: true}, {ID: "r2", Address: "127.0.0.1:2"}}},
			func() any { return new(wire.StatusResponse) }},
		{"StatusFollower", wire.MsgStatus, &wire.StatusResponse{RespHeader: rhdr, ID: "r2", State: "replica", FollowerReads: 1 << 40,
			FollowerBehind: 7}, func() any { return new(wire.StatusResponse) }},
		{"Acquire", wire.MsgAcquire, &wire.AcquireResponse{RespHeader: rhdr, Granted: true, Generation: 9, Mode: 1, Stat: fullStat},
			func() any { return new(wire.AcquireResponse) }},
		{"AcquireHeld", wire.MsgAcquire, &wire.AcquireResponse{RespHeader: wire.RespHeader{Err: &wire.Error{Code: wire.CodeHeld,
			Message: "fsapi: lock is held: /l is held exclusive by s1/h2"}}}, func() any { return new(wire.AcquireResponse) }},
		{"LockWait", wire.MsgLockWait, &wire.AcquireResponse{RespHeader: rhdr, Waiter: 12}, func() any { return new(wire.AcquireResponse) }},
		{"Release", wire.MsgRelease, &wire.ReleaseResponse{RespHeader: rhdr}, func() any { return new(wire.ReleaseResponse) }},
		{"CancelWait", wire.MsgCancelWait, &wire.CancelWaitResponse{RespHeader: rhdr}, func() any { return new(wire.CancelWaitResponse) }},
		{"CheckSequencer", wire.MsgCheckSequencer, &wire.CheckSequencerResponse{RespHeader: wire.RespHeader{Err: &wire.Error{
			Code: wire.CodeStaleSequencer, Message: "stale"}}}, func() any { return new(wire.CheckSequencerResponse) }},
		{"GetLock", wire.MsgGetLock, &wire.GetLockResponse{RespHeader: rhdr, Stat: fullStat, Mode: 2, Generation: 4, DelayUntilMillis: 1,
			Holders: []wire.LockOwner{{Session: 1, Handle: 2, Mode: 2}, {Session: 3, Handle: 1, Mode: 2, Waiter: 5}},
			Waiters: []wire.LockOwner{{Session: 9, Handle: 1, Mode: 1, Waiter: 6}}, WaiterCount: 1},
			func() any { return new(wire.GetLockResponse) }},
		{"Watch", wire.MsgWatch, &wire.WatchResponse{RespHeader: rhdr, Events: []fsapi.Event{
			{Revision: 7, Kind: fsapi.ChangeCreated, Path: "/svc/a", Stat: fullStat},
			{Revision: 8, Index: 1, Kind: fsapi.ChangeLockAcquired, Path: "/svc", Stat: fullStat, Session: 3, Mode: 2}}, More: true},
			func() any { return new(wire.WatchResponse) }},
		{"WatchCompacted", wire.MsgWatch, &wire.WatchResponse{RespHeader: wire.RespHeader{Err: &wire.Error{Code: wire.CodeCompacted,
			Message: "fsapi: events compacted"}, Revision: 900}, Compacted: true, Floor: 500}, func() any { return new(wire.WatchResponse) }},
		{"Multi", wire.MsgMulti, &wire.MultiResponse{RespHeader: rhdr, Results: []wire.MultiResult{
			{Path: "/q/job-0000000042", Stat: fullStat}, {Path: "/d", Stat: fsapi.Stat{Instance: 5, IsDir: true}}}},
			func() any { return new(wire.MultiResponse) }},
		{"MultiErr", wire.MsgMulti, &wire.MultiResponse{RespHeader: wire.RespHeader{Err: &wire.Error{Code: wire.CodeGenerationMismatch,
			Message: "fsapi: content generation mismatch: /f: expected generation 3, actual 4", Op: 3}, Epoch: 2, Revision: 9}},
			func() any { return new(wire.MultiResponse) }},
		{"Error", wire.MsgError, &wire.ErrorResponse{RespHeader: wire.RespHeader{Err: &wire.Error{Code: wire.CodeWrongEpoch,
			Message: "fsapi: wrong epoch; master epoch is 9", Epoch: 9}, Epoch: 9}}, func() any { return new(wire.ErrorResponse) }},
	}
}

func allMessages() []message {
	var out []message
	for _, m := range requests() {
		m.name = "req/" + m.name
		out = append(out, m)
	}
	for _, m := range responses() {
		m.name = "resp/" + m.name
		out = append(out, m)
	}
	return out
}

// writeCounter counts Write calls.
type writeCounter struct {
	bytes.Buffer
	calls int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.calls++
	return w.Buffer.Write(p)
}

func TestFrameRoundTripEveryType(t *testing.T) {
	for _, m := range allMessages() {
		t.Run(m.name, func(t *testing.T) {
			var w writeCounter
			if err := wire.WriteFrame(&w, m.typ, m.v); err != nil {
				t.Fatal(err)
			}
			if w.calls != 1 {
				t.Errorf("WriteFrame made %d Write calls, want 1 (a frame must not interleave with another)", w.calls)
			}
			raw := append([]byte(nil), w.Bytes()...)
			if raw[0] != byte(m.typ) {
				t.Errorf("type byte %d, want %d", raw[0], m.typ)
			}
			if n := binary.BigEndian.Uint32(raw[1:5]); int(n) != len(raw)-5 {
				t.Errorf("length prefix %d, body is %d bytes", n, len(raw)-5)
			}
			enc, err := wire.Encode(m.v)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, raw[5:]) {
				t.Errorf("WriteFrame body differs from Encode")
			}
			typ, body, err := wire.ReadFrame(bytes.NewReader(raw), wire.MaxFrame)
			if err != nil {
				t.Fatal(err)
			}
			if typ != m.typ {
				t.Errorf("read type %v, want %v", typ, m.typ)
			}
			got := m.zero()
			if err := wire.Decode(body, got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m.v) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, m.v)
			}
			// Through the buffered reader a client uses, with the exact limit.
			typ, body2, err := wire.ReadFrame(wire.NewReader(bytes.NewReader(raw)), len(raw)-5)
			if err != nil || typ != m.typ || !bytes.Equal(body, body2) {
				t.Errorf("ReadFrame(NewReader, exact limit) = %v, %d bytes, %v", typ, len(body2), err)
			}
		})
	}
}

// TestFrameStream reads many frames written back to back: framing must keep
// their boundaries.
func TestFrameStream(t *testing.T) {
	msgs := allMessages()
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := wire.WriteFrame(&buf, m.typ, m.v); err != nil {
			t.Fatal(err)
		}
	}
	r := wire.NewReader(&buf)
	for _, m := range msgs {
		typ, body, err := wire.ReadFrame(r, wire.MaxFrame)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		got := m.zero()
		if typ != m.typ || wire.Decode(body, got) != nil || !reflect.DeepEqual(got, m.v) {
			t.Fatalf("%s: got type %v %#v", m.name, typ, got)
		}
	}
	if _, _, err := wire.ReadFrame(r, wire.MaxFrame); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestWriteFrameConcurrent checks that the encoder's buffer pool never lets
// two concurrent WriteFrame calls share a buffer (run with -race).
func TestWriteFrameConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				want := &wire.SetContentsRequest{NodeRef: wire.NodeRef{Path: fmt.Sprintf("/g%d/%d", g, i)},
					Data: bytes.Repeat([]byte{byte(g)}, i*37)}
				var buf bytes.Buffer
				if err := wire.WriteFrame(&buf, wire.MsgSetContents, want); err != nil {
					t.Error(err)
					return
				}
				_, body, err := wire.ReadFrame(&buf, wire.MaxFrame)
				var got wire.SetContentsRequest
				if err == nil {
					err = wire.Decode(body, &got)
				}
				if err != nil || got.Path != want.Path || !bytes.Equal(got.Data, want.Data) {
					t.Errorf("goroutine %d frame %d: %v %q", g, i, err, got.Path)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestWriteFrameErrors(t *testing.T) {
	var w writeCounter
	if err := wire.WriteFrame(&w, wire.MsgStatus, complex(1, 2)); err == nil {
		t.Fatal("WriteFrame of an unencodable value succeeded")
	}
	if w.calls != 0 {
		t.Fatalf("WriteFrame wrote %d times for a value it could not encode", w.calls)
	}
	boom := errors.New("boom")
	if err := wire.WriteFrame(errWriter{boom}, wire.MsgStatus, &wire.StatusRequest{}); !errors.Is(err, boom) {
		t.Fatalf("writer error lost: %v", err)
	}
	// A failed encode must not poison the pooled buffer for the next frame.
	var buf bytes.Buffer
	if err := wire.WriteFrame(&buf, wire.MsgStatus, &wire.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, body, err := wire.ReadFrame(&buf, wire.MaxFrame); err != nil || wire.Decode(body, new(wire.StatusRequest)) != nil {
		t.Fatalf("frame after a failed encode: %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// header builds a frame header.
func header(typ wire.MsgType, n uint32) []byte {
	h := []byte{byte(typ), 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[1:], n)
	return h
}

// tripwire fails the test if anything reads from it: ReadFrame must refuse
// an oversize frame from its header alone.
type tripwire struct{ t *testing.T }

func (r tripwire) Read([]byte) (int, error) {
	r.t.Error("ReadFrame read the body of a frame it should have refused")
	return 0, io.EOF
}

func TestReadFrameLimit(t *testing.T) {
	cases := []struct {
		n     uint32
		limit int
	}{
		{11, 10},
		{wire.MaxFrame + 1, wire.MaxFrame},
		{1 << 31, wire.MaxFrame}, // 2 GiB
		{math.MaxUint32, wire.MaxFrame},
		{1, 0},
		{math.MaxUint32, math.MaxInt32},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d>%d", c.n, c.limit), func(t *testing.T) {
			r := io.MultiReader(bytes.NewReader(header(wire.MsgOpen, c.n)), tripwire{t})
			_, body, err := wire.ReadFrame(r, c.limit)
			if !errors.Is(err, fsapi.ErrTooLarge) {
				t.Fatalf("err = %v, want fsapi.ErrTooLarge", err)
			}
			if body != nil {
				t.Fatalf("body of %d bytes returned with the error", len(body))
			}
			// The error maps to CodeTooLarge on the wire, as a replica answers.
			if code := wire.ToWire(err).Code; code != wire.CodeTooLarge {
				t.Fatalf("wire code %d, want CodeTooLarge", code)
			}
		})
	}
	// At the limit is fine, including an empty body at limit 0.
	for _, n := range []int{0, 1, 10} {
		raw := append(header(wire.MsgStatus, uint32(n)), bytes.Repeat([]byte{0x90}, n)...)
		typ, body, err := wire.ReadFrame(bytes.NewReader(raw), n)
		if err != nil || typ != wire.MsgStatus || len(body) != n {
			t.Fatalf("frame of %d at limit %d: %v %d %v", n, n, typ, len(body), err)
		}
	}
}

// TestReadFrameAllocatesWhatArrives: the limit bounds one frame, but a
// replica reads many frames at once (one per yamux stream, unbounded per
// connection), so memory must follow the bytes that arrived, not the length
// a header announces. (Regression test: ReadFrame used to allocate the
// announced body up front: 1,000 streams, 5 KB of traffic, 4 GiB of heap.)
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	raw := append(header(wire.MsgOpen, wire.MaxFrame), make([]byte, 10)...)
	const n = 4
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		if _, _, err := wire.ReadFrame(bytes.NewReader(raw), wire.MaxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("header and 10 bytes of a %d-byte frame: %v", wire.MaxFrame, err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 256<<10 {
		t.Errorf("ReadFrame allocated %d KiB for a frame of which 10 body bytes arrived (the header announced %d KiB)",
			per>>10, wire.MaxFrame>>10)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	var full bytes.Buffer
	if err := wire.WriteFrame(&full, wire.MsgOpen, requests()[3].v); err != nil {
		t.Fatal(err)
	}
	raw := full.Bytes()
	// Nothing at all is a clean end of stream: io.EOF exactly, which the
	// replica uses to tell "client closed" from "client sent garbage".
	if _, _, err := wire.ReadFrame(bytes.NewReader(nil), wire.MaxFrame); err != io.EOF {
		t.Fatalf("empty input: %v, want io.EOF", err)
	}
	for cut := 1; cut < len(raw); cut++ {
		_, body, err := wire.ReadFrame(bytes.NewReader(raw[:cut]), wire.MaxFrame)
		if err == nil {
			t.Fatalf("frame cut at %d of %d bytes read without error", cut, len(raw))
		}
		if body != nil {
			t.Fatalf("cut at %d: body returned with error", cut)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
		if errors.Is(err, io.EOF) {
			t.Fatalf("cut at %d: %v matches io.EOF; a truncated frame is not a clean close", cut, err)
		}
	}
	// A header promising a body that never comes.
	if _, _, err := wire.ReadFrame(bytes.NewReader(header(wire.MsgOpen, 5)), wire.MaxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("header only: %v", err)
	}
	// Other reader errors pass through.
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(header(wire.MsgOpen, 5)), iotestErrReader{boom})
	if _, _, err := wire.ReadFrame(r, wire.MaxFrame); !errors.Is(err, boom) {
		t.Fatalf("reader error: %v", err)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestDecodeTruncatedBodies decodes every proper prefix of every message's
// encoding: each must fail with fsapi.ErrBadRequest and never panic.
func TestDecodeTruncatedBodies(t *testing.T) {
	for _, m := range allMessages() {
		enc, err := wire.Encode(m.v)
		if err != nil {
			t.Fatal(err)
		}
		step := 1
		if len(enc) > 4096 {
			step = 97 // the 70 KB SetContents: sample the cut points
		}
		for cut := 0; cut < len(enc); cut += step {
			if err := wire.Decode(enc[:cut], m.zero()); !errors.Is(err, fsapi.ErrBadRequest) {
				t.Fatalf("%s cut at %d/%d: err = %v, want fsapi.ErrBadRequest", m.name, cut, len(enc), err)
			}
		}
	}
}

func TestDecodeWrongShapes(t *testing.T) {
	bodies := map[string][]byte{
		"string":         {0xa3, 'a', 'b', 'c'},
		"int":            {0x05},
		"bad descriptor": {0xc1},
		"map of ints":    {0x81, 0x01, 0x02},
		"Path is int":    mustEncode(t, map[string]any{"Path": 5}),
		"Data is map":    mustEncode(t, map[string]any{"Data": map[string]int{"a": 1}}),
		"Seq negative":   mustEncode(t, map[string]any{"Seq": -1, "Session": -5}),
		"huge str len":   {0x81, 0xa4, 'P', 'a', 't', 'h', 0xdb, 0xff, 0xff, 0xff, 0xff},
		"huge bin len":   {0x81, 0xa4, 'D', 'a', 't', 'a', 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00},
		"huge array":     {0x81, 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"huge map":       {0xdf, 0xff, 0xff, 0xff, 0xff},
		"deep nesting":   append(append([]byte{0x81, 0xa1, 'Z'}, bytes.Repeat([]byte{0x91}, 100000)...), 0xc0),
	}
	for name, body := range bodies {
		for _, m := range allMessages() {
			v := m.zero()
			err := wire.Decode(body, v)
			if err != nil && !errors.Is(err, fsapi.ErrBadRequest) {
				t.Errorf("%s into %s: error %v does not wrap fsapi.ErrBadRequest", name, m.name, err)
			}
			if strings.HasPrefix(name, "huge") || name == "deep nesting" || name == "bad descriptor" {
				if err == nil {
					t.Errorf("%s into %s: decoded without error", name, m.name)
				}
			}
		}
	}
}

func mustEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMsgTypeString(t *testing.T) {
	seen := map[string]wire.MsgType{}
	for _, m := range allMessages() {
		s := m.typ.String()
		if strings.HasPrefix(s, "MsgType(") {
			t.Errorf("type %d has no name", m.typ)
		}
		if prev, ok := seen[s]; ok && prev != m.typ {
			t.Errorf("types %d and %d share the name %q", prev, m.typ, s)
		}
		seen[s] = m.typ
	}
	if s := wire.MsgType(77).String(); s != "MsgType(77)" {
		t.Errorf("unknown type: %q", s)
	}
}

// TestProtocolNumbersFrozen pins the numbers that are part of the protocol.
func TestProtocolNumbersFrozen(t *testing.T) {
	types := map[wire.MsgType]byte{wire.MsgCreateSession: 1, wire.MsgKeepAlive: 2, wire.MsgCloseSession: 3, wire.MsgOpen: 4,
		wire.MsgGetContents: 5, wire.MsgGetStat: 6, wire.MsgReadDir: 7, wire.MsgSetContents: 8, wire.MsgDelete: 9,
		wire.MsgStatus: 10, wire.MsgAcquire: 11, wire.MsgLockWait: 12, wire.MsgRelease: 13, wire.MsgCancelWait: 14,
		wire.MsgCheckSequencer: 15, wire.MsgGetLock: 16, wire.MsgWatch: 17, wire.MsgMulti: 18, wire.MsgError: 255}
	for typ, want := range types {
		if byte(typ) != want {
			t.Errorf("%v = %d, want %d", typ, typ, want)
		}
	}
	codes := []wire.Code{wire.CodeOK, wire.CodeInternal, wire.CodeNotExist, wire.CodeExist, wire.CodeNotEmpty,
		wire.CodeGenerationMismatch, wire.CodeTooLarge, wire.CodeBadName, wire.CodeBadRequest, wire.CodeSessionExpired,
		wire.CodeHandleClosed, wire.CodeHandleInvalid, wire.CodePermission, wire.CodeNotDir, wire.CodeIsDir,
		wire.CodeWrongCell, wire.CodeNotMaster, wire.CodeWrongEpoch, wire.CodeUnavailable, wire.CodeHeld, wire.CodeLockDelay,
		wire.CodeNotHeld, wire.CodeNoWaiter, wire.CodeStaleSequencer, wire.CodeCompacted}
	for i, c := range codes {
		if int(c) != i {
			t.Errorf("code %d at position %d", c, i)
		}
	}
	if wire.CodeSequenceExhausted != 25 {
		t.Errorf("CodeSequenceExhausted = %d, want 25", wire.CodeSequenceExhausted)
	}
	if wire.MultiCreate != 1 || wire.MultiSet != 2 || wire.MultiDelete != 3 || wire.MultiCheck != 4 {
		t.Error("multi-op kinds renumbered")
	}
	if wire.ConnClient != 'C' || wire.ConnRaft != 'R' || wire.ProtocolVersion != 1 || wire.MaxFrame != 4<<20 {
		t.Error("connection bytes, protocol version or MaxFrame changed")
	}
}
