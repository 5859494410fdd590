package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/haspcell/hasp/fsapi"
)

// Every test FSM starts with two sessions, created at indexes 1 and 2.
const (
	s1 uint64 = 1
	s2 uint64 = 2
)

type tester struct {
	t     testing.TB
	f     *FSM
	index uint64
	term  uint64 // the Raft term entries are appended in
}

func newTester(t testing.TB, cfg Config) *tester {
	t.Helper()
	h := &tester{t: t, f: New(cfg)}
	h.must(&CreateSession{Time: 100, LeaseMillis: 12000, ClientName: "one"})
	h.must(&CreateSession{Time: 200, LeaseMillis: 12000, ClientName: "two"})
	return h
}

func cmdType(cmd any) CmdType {
	switch cmd.(type) {
	case *CreateSession:
		return CmdCreateSession
	case *CloseSession:
		return CmdCloseSession
	case *Open:
		return CmdOpen
	case *SetContents:
		return CmdSetContents
	case *Delete:
		return CmdDelete
	case *Noop:
		return CmdNoop
	case *Acquire:
		return CmdAcquire
	case *Release:
		return CmdRelease
	case *CancelWait:
		return CmdCancelWait
	case *LockTick:
		return CmdLockTick
	case *Multi:
		return CmdMulti
	}
	panic("unknown command")
}

func encode(t testing.TB, cmd any) []byte {
	t.Helper()
	data, err := Encode(cmdType(cmd), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// apply encodes cmd and applies it at the next index.
func (h *tester) apply(cmd any) *Result {
	h.t.Helper()
	h.index++
	out := h.f.Apply(&raft.Log{Index: h.index, Term: h.term, Type: raft.LogCommand, Data: encode(h.t, cmd)})
	r, ok := out.(*Result)
	if !ok {
		h.t.Fatalf("index %d: Apply returned %T, want *Result", h.index, out)
	}
	checkResult(h.t, r)
	return r
}

// must applies cmd and fails the test if its Result is an error.
func (h *tester) must(cmd any) *Result {
	h.t.Helper()
	r := h.apply(cmd)
	if r.ErrKind != ErrKindOK {
		h.t.Fatalf("index %d: %T: %s", h.index, cmd, r.ErrMsg)
	}
	return r
}

// checkResult checks that a Result's error agrees with its kind.
func checkResult(t testing.TB, r *Result) {
	t.Helper()
	err := r.Err()
	if r.ErrKind == ErrKindOK {
		if err != nil || r.ErrMsg != "" {
			t.Fatalf("ok result with error %v / %q", err, r.ErrMsg)
		}
		return
	}
	s := r.ErrKind.sentinel()
	if me := (*fsapi.MultiOpError)(nil); errors.As(err, &me) {
		if me.Op != r.FailedOp-1 {
			t.Fatalf("result %+v: Err() = %v names op %d", r, err, me.Op)
		}
		err = me.Err
	} else if r.FailedOp != 0 {
		t.Fatalf("result %+v: Err() = %v is not a MultiOpError", r, err)
	}
	if !errors.Is(err, s) || err.Error() != r.ErrMsg || !strings.HasPrefix(r.ErrMsg, s.Error()) {
		t.Fatalf("result %+v: Err() = %v, want wrapping %v with the message", r, err, s)
	}
}

// step is one command and the ErrKind it must produce.
type step struct {
	cmd  any
	want ErrKind
}

func (h *tester) run(steps []step) []*Result {
	h.t.Helper()
	var out []*Result
	for i, s := range steps {
		r := h.apply(s.cmd)
		if r.ErrKind != s.want {
			h.t.Fatalf("step %d (%T %+v): got %v (%q), want %v", i, s.cmd, s.cmd, r.ErrKind, r.ErrMsg, s.want)
		}
		out = append(out, r)
	}
	checkInvariants(h.t, h.f)
	return out
}

func (h *tester) node(path string) *Node {
	h.t.Helper()
	n, ok := h.f.View().Get(path)
	if !ok {
		h.t.Fatalf("%s does not exist", path)
	}
	return n
}

func (h *tester) absent(paths ...string) {
	h.t.Helper()
	for _, p := range paths {
		if _, ok := h.f.View().Get(p); ok {
			h.t.Fatalf("%s exists", p)
		}
	}
}

// Command constructors. Session 0 is an internal write.

func mkfile(sess uint64, path, data string) *Open {
	return &Open{Meta: WriteMeta{Session: sess}, Path: path, Create: uint8(fsapi.CreateMust), Contents: []byte(data)}
}

func mkdir(sess uint64, path string) *Open {
	return &Open{Meta: WriteMeta{Session: sess}, Path: path, Create: uint8(fsapi.CreateMust), Directory: true}
}

func ephFile(sess uint64, path string) *Open {
	o := mkfile(sess, path, "")
	o.Ephemeral = true
	return o
}

func ephDir(sess uint64, path string) *Open {
	o := mkdir(sess, path)
	o.Ephemeral = true
	return o
}

func set(sess uint64, path, data string) *SetContents {
	return &SetContents{Meta: WriteMeta{Session: sess}, Path: path, Data: []byte(data)}
}

func del(sess uint64, path string) *Delete {
	return &Delete{Meta: WriteMeta{Session: sess}, Path: path}
}

func seq(m WriteMeta, seq, ackBelow uint64) WriteMeta {
	m.Seq, m.AckBelow = seq, ackBelow
	return m
}

// snapshotBytes persists a snapshot of f into memory.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkInvariants validates the whole state the way Restore validates a
// snapshot: parents, child counts, sizes, checksums, ephemeral ownership
// and dedup tables.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	if _, err := readSnapshot(bytes.NewReader(snapshotBytes(t, f)), f.cfg.ContentLimit); err != nil {
		t.Fatalf("invariants: %v", err)
	}
}
