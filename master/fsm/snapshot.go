package fsm

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"github.com/haspcell/hasp/locks"
)

// Snapshot stream: msgpack values, encoded with the command codec.
//
//	snapHeader
//	recNode,    snapNode     — every node in key order, root first
//	recSession, snapSession  — every session by id
//	recLocks,   locks.State  — the lock table; only if it is not empty
//	recEnd,     snapEnd
//
// Identical state always gives identical bytes. A state without locks
// gives the same bytes as before locks existed, and a snapshot without a
// recLocks record restores as "no locks".

const snapshotVersion = 1

type recKind uint8

const (
	recNode    recKind = 1
	recSession recKind = 2
	recEnd     recKind = 3
	recLocks   recKind = 4
)

type snapHeader struct {
	Version      int
	Index        uint64
	ContentLimit int
}

type snapNode struct {
	Path string
	Node Node
}

type snapSession struct {
	ID          uint64
	Created     int64
	LeaseMillis int64
	ClientName  string
	Caching     bool `codec:",omitempty"`
	AckBelow    uint64
	Ephemerals  []string // sorted
	Replies     []snapReply
}

type snapReply struct {
	Seq    uint64
	Result Result
}

type snapEnd struct {
	Nodes    int
	Sessions int
}

// fsmSnapshot is a point-in-time copy: the immutable tree (O(1)) and a
// deep copy of the sessions. Persist runs concurrently with Apply.
type fsmSnapshot struct {
	view     *View
	limit    int
	sessions []*session // sorted by id
	locks    locks.State
}

// Snapshot captures the state for raft. The namespace is captured in O(1);
// the sessions are copied.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ss := make([]*session, 0, len(f.sessions))
	for _, s := range f.sessions {
		ss = append(ss, s.clone())
	}
	slices.SortFunc(ss, func(a, b *session) int { return cmpU64(a.id, b.id) })
	return &fsmSnapshot{view: f.view.Load(), limit: f.cfg.ContentLimit, sessions: ss, locks: f.locks.State()}, nil
}

// Persist writes the snapshot to sink and closes it (cancels it on error).
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release is a no-op: the snapshot holds only garbage-collected memory.
func (s *fsmSnapshot) Release() {}

func (s *fsmSnapshot) writeTo(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := codec.NewEncoder(bw, handle)
	hdr := snapHeader{Version: snapshotVersion, Index: s.view.rev, ContentLimit: s.limit}
	if err := enc.Encode(&hdr); err != nil {
		return err
	}
	it := s.view.tree.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		if err := encodeRecord(enc, recNode, &snapNode{Path: keyPath(k), Node: *n}); err != nil {
			return err
		}
	}
	for _, ss := range s.sessions {
		if err := encodeRecord(enc, recSession, ss.record()); err != nil {
			return err
		}
	}
	if s.locks.LastWaiter != 0 || len(s.locks.Locks) > 0 {
		if err := encodeRecord(enc, recLocks, &s.locks); err != nil {
			return err
		}
	}
	end := &snapEnd{Nodes: s.view.tree.Len(), Sessions: len(s.sessions)}
	if err := encodeRecord(enc, recEnd, end); err != nil {
		return err
	}
	return bw.Flush()
}

func encodeRecord(enc *codec.Encoder, k recKind, v any) error {
	if err := enc.Encode(k); err != nil {
		return err
	}
	return enc.Encode(v)
}

func (s *session) record() *snapSession {
	r := &snapSession{
		ID:          s.id,
		Created:     s.created,
		LeaseMillis: s.leaseMillis,
		ClientName:  s.clientName,
		Caching:     s.caching,
		AckBelow:    s.ackBelow,
		Ephemerals:  slices.Sorted(maps.Keys(s.ephemerals)),
	}
	for _, seq := range slices.Sorted(maps.Keys(s.replies)) {
		r.Replies = append(r.Replies, snapReply{Seq: seq, Result: s.replies[seq]})
	}
	return r
}

// Restore replaces the whole state with a snapshot. On any error it
// returns it and leaves the current state untouched.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc, f.cfg.ContentLimit)
	if err != nil {
		return fmt.Errorf("fsm: restore snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions = st.sessions
	f.locks = st.locks
	f.locks.ReportReleases() // lock-released events (granted)
	f.publish(&View{tree: st.tree.Commit(), rev: st.index})
	// The event history is not in snapshots: it starts again, empty, at
	// the snapshot's index.
	f.events.reset(st.index)
	return nil
}
