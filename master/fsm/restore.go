package fsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc64"
	"io"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
)

// restorer rebuilds and validates the state from a snapshot stream.
type restorer struct {
	dec      *codec.Decoder
	limit    int
	index    uint64
	tree     *iradix.Txn[*Node]
	lastKey  []byte
	nodes    int
	children map[string]uint64 // counted children by directory path
	owned    map[uint64]int    // ephemeral nodes by owner session
	sessions map[uint64]*session
	lastID   uint64
	locks    *locks.Table // nil until a recLocks record (none: no locks)
}

func readSnapshot(r io.Reader, limit int) (*restorer, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	st := &restorer{
		dec:      codec.NewDecoder(br, handle),
		limit:    limit,
		tree:     iradix.New[*Node]().Txn(),
		children: map[string]uint64{},
		owned:    map[uint64]int{},
		sessions: map[uint64]*session{},
	}
	if err := st.readAll(); err != nil {
		return nil, err
	}
	if st.locks == nil {
		st.locks = locks.NewTable()
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, errors.New("trailing data after end record")
	}
	return st, nil
}

func (st *restorer) decode(v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode %T: %v", v, r)
		}
	}()
	if err := st.dec.Decode(v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

func (st *restorer) readAll() error {
	var hdr snapHeader
	if err := st.decode(&hdr); err != nil {
		return err
	}
	if hdr.Version != snapshotVersion {
		return fmt.Errorf("unsupported snapshot version %d", hdr.Version)
	}
	if hdr.ContentLimit != st.limit {
		return fmt.Errorf("snapshot content limit %d differs from configured %d", hdr.ContentLimit, st.limit)
	}
	st.index = hdr.Index
	for {
		var k recKind
		if err := st.decode(&k); err != nil {
			return err
		}
		done, err := st.record(k)
		if err != nil || done {
			return err
		}
	}
}

func (st *restorer) record(k recKind) (done bool, err error) {
	switch k {
	case recNode:
		var sn snapNode
		if err := st.decode(&sn); err != nil {
			return false, err
		}
		return false, st.addNode(&sn)
	case recSession:
		var ss snapSession
		if err := st.decode(&ss); err != nil {
			return false, err
		}
		return false, st.addSession(&ss)
	case recLocks:
		var ls locks.State
		if err := st.decode(&ls); err != nil {
			return false, err
		}
		return false, st.addLocks(&ls)
	case recEnd:
		var end snapEnd
		if err := st.decode(&end); err != nil {
			return false, err
		}
		return true, st.finish(&end)
	}
	return false, fmt.Errorf("unknown record kind %d", k)
}

func (st *restorer) addNode(sn *snapNode) error {
	if len(st.sessions) > 0 || st.locks != nil {
		return fmt.Errorf("node %q after sessions", sn.Path)
	}
	if err := fsapi.CheckPath(sn.Path); err != nil {
		return err
	}
	key := nodeKey(sn.Path)
	if st.lastKey != nil && bytes.Compare(key, st.lastKey) <= 0 {
		return fmt.Errorf("node %q out of order", sn.Path)
	}
	n := sn.Node
	if err := st.checkNode(sn.Path, &n); err != nil {
		return fmt.Errorf("node %q: %w", sn.Path, err)
	}
	if n.Stat.EphemeralOwner != 0 {
		st.owned[n.Stat.EphemeralOwner]++
	}
	st.tree.Insert(key, &n)
	st.lastKey, st.nodes = key, st.nodes+1
	return nil
}

func (st *restorer) checkNode(path string, n *Node) error {
	if len(n.Data) == 0 {
		n.Data = nil
	}
	switch {
	case st.nodes == 0 && (path != fsapi.Root || !n.Stat.IsDir || n.Stat.EphemeralOwner != 0):
		return errors.New("the first node must be the root directory")
	case n.Stat.IsDir && n.Data != nil:
		return errors.New("directory with contents")
	case len(n.Data) > st.limit:
		return fmt.Errorf("contents of %d bytes exceed the limit", len(n.Data))
	case n.Stat.Size != uint64(len(n.Data)):
		return fmt.Errorf("size %d, contents %d bytes", n.Stat.Size, len(n.Data))
	case n.Stat.Checksum != crc64.Checksum(n.Data, crcTable):
		return errors.New("checksum mismatch")
	case n.NextSequence != 0 && !n.Stat.IsDir:
		return errors.New("file with a sequence counter")
	case n.NextSequence > fsapi.MaxSequence+1:
		return fmt.Errorf("sequence counter %d past the last number %d", n.NextSequence, fsapi.MaxSequence)
	}
	if path == fsapi.Root {
		return nil
	}
	parent := fsapi.Parent(path)
	p, ok := st.tree.Get(nodeKey(parent))
	if !ok || !p.Stat.IsDir {
		return errors.New("parent is missing or not a directory")
	}
	st.children[parent]++
	return nil
}

func (st *restorer) addSession(ss *snapSession) error {
	if st.locks != nil {
		return fmt.Errorf("session %d after locks", ss.ID)
	}
	if ss.ID == 0 || ss.ID <= st.lastID {
		return fmt.Errorf("session %d out of order", ss.ID)
	}
	s := newSession(ss.ID)
	s.created, s.leaseMillis, s.clientName, s.ackBelow, s.caching = ss.Created, ss.LeaseMillis, ss.ClientName, ss.AckBelow, ss.Caching
	if err := st.addEphemerals(s, ss.Ephemerals); err != nil {
		return err
	}
	if len(ss.Replies) > MaxUnacked {
		return fmt.Errorf("session %d: %d replies", ss.ID, len(ss.Replies))
	}
	for i, r := range ss.Replies {
		if r.Seq < s.ackBelow || i > 0 && r.Seq <= ss.Replies[i-1].Seq {
			return fmt.Errorf("session %d: reply %d out of order or acknowledged", ss.ID, r.Seq)
		}
		s.replies[r.Seq] = r.Result
	}
	st.sessions[s.id], st.lastID = s, s.id
	return nil
}

func (st *restorer) addEphemerals(s *session, paths []string) error {
	if len(paths) != st.owned[s.id] {
		return fmt.Errorf("session %d: %d ephemerals listed, %d nodes owned", s.id, len(paths), st.owned[s.id])
	}
	for i, p := range paths {
		n, ok := st.tree.Get(nodeKey(p))
		if !ok || n.Stat.EphemeralOwner != s.id || i > 0 && p <= paths[i-1] {
			return fmt.Errorf("session %d: bad ephemeral %q", s.id, p)
		}
		s.ephemerals[p] = struct{}{}
	}
	return nil
}

// addLocks rebuilds the lock table (locks.Restore checks its own
// invariants) and checks it against the namespace and the sessions: every
// lock is on an existing node whose LockGeneration is the lock's, and every
// holder and waiter belongs to a live session. That nodes never locked
// have LockGeneration 0 is checked by finish.
func (st *restorer) addLocks(ls *locks.State) error {
	if st.locks != nil {
		return errors.New("second locks record")
	}
	t, err := locks.Restore(*ls)
	if err != nil {
		return err
	}
	for _, l := range ls.Locks {
		n, ok := st.tree.Get(nodeKey(l.Path))
		switch {
		case !ok:
			return fmt.Errorf("lock %s: no such node", l.Path)
		case n.Stat.LockGeneration != l.Generation:
			return fmt.Errorf("lock %s: node lock generation %d, lock at %d", l.Path, n.Stat.LockGeneration, l.Generation)
		}
		for _, h := range l.Holders {
			if st.sessions[h.Holder.Session] == nil {
				return fmt.Errorf("lock %s: holder %v has no session", l.Path, h.Holder)
			}
		}
		for _, w := range l.Waiters {
			if st.sessions[w.Holder.Session] == nil {
				return fmt.Errorf("lock %s: waiter %v has no session", l.Path, w.Holder)
			}
		}
	}
	st.locks = t
	return nil
}

func (st *restorer) finish(end *snapEnd) error {
	if end.Nodes != st.nodes || end.Sessions != len(st.sessions) {
		return fmt.Errorf("end record counts %d nodes and %d sessions; read %d and %d",
			end.Nodes, end.Sessions, st.nodes, len(st.sessions))
	}
	if st.nodes == 0 {
		return errors.New("no root directory")
	}
	var err error
	st.tree.Root().Walk(func(k []byte, n *Node) bool {
		p := keyPath(k)
		if n.Stat.Children != st.children[p] {
			err = fmt.Errorf("node %q: child count %d, has %d", p, n.Stat.Children, st.children[p])
		} else if n.Stat.LockGeneration != 0 && (st.locks == nil || st.locks.Generation(p) != n.Stat.LockGeneration) {
			err = fmt.Errorf("node %q: lock generation %d without a matching lock", p, n.Stat.LockGeneration)
		}
		return err != nil
	})
	return err
}
