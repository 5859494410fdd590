package fsm

import (
	"hash/crc64"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/haspcell/hasp/fsapi"
)

var crcTable = crc64.MakeTable(crc64.ECMA)

// txn applies one command: it edits a copy-on-write transaction over the
// published tree and the FSM's sessions (the caller holds f.mu).
type txn struct {
	f     *FSM
	index uint64
	term  uint64 // the term the entry was appended in
	tree  *iradix.Txn[*Node]
	// What the master must tell waiting lock requests once the command is
	// applied (see FSM.SetLockNotify): every grant made, and the waiters
	// dropped without a grant because their node was deleted.
	grants  []GrantInfo
	dropped []uint64
	// events are the change events the command caused, in order (events.go).
	events []fsapi.Event
	// multi is set while a Multi's ops run (multi.go).
	multi *multiEffects
}

func (t *txn) apply(cmd any) Result {
	switch c := cmd.(type) {
	case *CreateSession:
		return t.createSession(c)
	case *CloseSession:
		if c.Expired {
			if r, stale := t.staleTerm(c.Meta); stale {
				return r
			}
			return t.closeSession(c.Meta.Session, c.Meta.Time, true)
		}
		return t.write(c.Meta, func(*session) Result { return t.closeSession(c.Meta.Session, c.Meta.Time, false) })
	case *Open:
		return t.write(c.Meta, func(s *session) Result { return t.open(c, s) })
	case *SetContents:
		return t.write(c.Meta, func(*session) Result { return t.setContents(c) })
	case *Delete:
		return t.write(c.Meta, func(*session) Result { return t.delete(c) })
	case *Noop:
		return Result{}
	case *Acquire:
		return t.write(c.Meta, func(s *session) Result { return t.acquire(c, s) })
	case *Release:
		return t.write(c.Meta, func(s *session) Result { return t.release(c, s) })
	case *CancelWait:
		return t.write(c.Meta, func(s *session) Result { return t.cancelWait(c, s) })
	case *LockTick:
		return t.lockTick(c)
	case *Multi:
		return t.write(c.Meta, func(s *session) Result { return t.applyMulti(c, s) })
	}
	// Unreachable: Decode returns only the types above.
	return fail(ErrKindBadRequest, "unknown command %T", cmd)
}

func (t *txn) get(path string) (*Node, bool) { return t.tree.Get(nodeKey(path)) }
func (t *txn) put(path string, n *Node)      { t.tree.Insert(nodeKey(path), n) }

func (t *txn) open(c *Open, s *session) Result {
	if r, ok := t.checkOpen(c, s); !ok {
		return r
	}
	if c.Sequential {
		return t.openSequential(c, s)
	}
	if n, ok := t.get(c.Path); ok {
		if fsapi.CreateMode(c.Create) == fsapi.CreateMust {
			return fail(ErrKindExist, "%s", c.Path)
		}
		return Result{Stat: n.Stat}
	}
	return t.create(c, c.Path, s)
}

// checkOpen validates an Open without looking at the namespace.
func (t *txn) checkOpen(c *Open, s *session) (Result, bool) {
	check := fsapi.CheckPath
	if c.Sequential {
		check = fsapi.CheckSequentialPath
	}
	if err := check(c.Path); err != nil {
		return failErr(err), false
	}
	mode := fsapi.CreateMode(c.Create)
	switch {
	case mode != fsapi.CreateMay && mode != fsapi.CreateMust:
		return fail(ErrKindBadRequest, "open %s: create mode %v: want may or must", c.Path, mode), false
	case c.Directory && len(c.Contents) > 0:
		return fail(ErrKindBadRequest, "open %s: a directory cannot have contents", c.Path), false
	case len(c.Contents) > t.f.cfg.ContentLimit:
		return t.tooLarge(c.Path, len(c.Contents)), false
	case c.Ephemeral && s == nil:
		return fail(ErrKindBadRequest, "open %s: an ephemeral node needs a session", c.Path), false
	}
	return Result{}, true
}

// openSequential creates c.Path followed by the parent's next sequence
// number, and advances the parent's counter past it. A number whose name
// is taken (a node created by name, not sequentially) is skipped, so the
// create always makes a new node; the counter never goes back, so no
// name is handed out twice.
func (t *txn) openSequential(c *Open, s *session) Result {
	parent := fsapi.Parent(c.Path)
	p, r, ok := t.parentDir(parent, c.Path)
	if !ok {
		return r
	}
	n := p.NextSequence
	for ; n <= fsapi.MaxSequence; n++ {
		if _, taken := t.get(fsapi.SequentialName(c.Path, n)); !taken {
			break
		}
	}
	if n > fsapi.MaxSequence {
		return fail(ErrKindSequenceExhausted, "%s: every number up to %d is used; create a new directory",
			parent, fsapi.MaxSequence)
	}
	cp := *p
	cp.NextSequence = n + 1
	t.put(parent, &cp)
	path := fsapi.SequentialName(c.Path, n)
	r = t.create(c, path, s)
	r.Path = path
	return r
}

// parentDir returns the directory parent that path is to be created in.
func (t *txn) parentDir(parent, path string) (*Node, Result, bool) {
	p, ok := t.get(parent)
	if !ok {
		return nil, fail(ErrKindNotExist, "%s (parent of %s)", parent, path), false
	}
	if !p.Stat.IsDir {
		return nil, fail(ErrKindNotDir, "%s (parent of %s)", parent, path), false
	}
	return p, Result{}, true
}

// create creates the node path (absent) as c says.
func (t *txn) create(c *Open, path string, s *session) Result {
	parent := fsapi.Parent(path)
	p, r, ok := t.parentDir(parent, path)
	if !ok {
		return r
	}
	n := t.newNode(c)
	if c.Ephemeral {
		n.Stat.EphemeralOwner = s.id
		t.later(func() { s.ephemerals[path] = struct{}{} })
	}
	t.put(path, n)
	t.addChildren(parent, p, 1)
	t.emit(fsapi.ChangeCreated, path, n.Stat)
	return Result{Stat: n.Stat, Created: true}
}

func (t *txn) newNode(c *Open) *Node {
	n := &Node{Stat: fsapi.Stat{
		Instance:          t.index,
		ContentGeneration: 1,
		CreatedRevision:   t.index,
		ModifiedRevision:  t.index,
		IsDir:             c.Directory,
	}}
	setData(n, c.Contents)
	return n
}

// setData sets a node's contents with their size and checksum. Empty
// contents are stored as nil so that snapshots are canonical.
func setData(n *Node, data []byte) {
	if len(data) == 0 {
		data = nil
	}
	n.Data = data
	n.Stat.Size = uint64(len(data))
	n.Stat.Checksum = crc64.Checksum(data, crcTable)
}

// addChildren replaces the directory p at path with a copy whose child
// count is changed by delta, and returns the copy.
func (t *txn) addChildren(path string, p *Node, delta int) *Node {
	cp := *p
	cp.Stat.Children = uint64(int64(cp.Stat.Children) + int64(delta))
	t.put(path, &cp)
	return &cp
}

func (t *txn) tooLarge(path string, size int) Result {
	return fail(ErrKindTooLarge, "contents of %s are %d bytes; the limit is %d bytes",
		path, size, t.f.cfg.ContentLimit)
}

// lookup finds the node a SetContents or Delete names and checks the
// handle's instance.
func (t *txn) lookup(path string, instance uint64) (*Node, Result, bool) {
	if err := fsapi.CheckPath(path); err != nil {
		return nil, failErr(err), false
	}
	n, ok := t.get(path)
	if !ok {
		return nil, fail(ErrKindNotExist, "%s", path), false
	}
	if instance != 0 && instance != n.Stat.Instance {
		return nil, fail(ErrKindHandleInvalid, "%s: handle is for instance %d, node is instance %d",
			path, instance, n.Stat.Instance), false
	}
	return n, Result{}, true
}

func (t *txn) setContents(c *SetContents) Result {
	n, r, ok := t.lookup(c.Path, c.Instance)
	switch {
	case !ok:
		return r
	case len(c.Sequencer) > 0:
		if r, ok := t.checkSequencer(c.Sequencer); !ok {
			return r
		}
	}
	switch {
	case n.Stat.IsDir:
		return fail(ErrKindIsDir, "%s", c.Path)
	case c.IfGeneration != 0 && c.IfGeneration != n.Stat.ContentGeneration:
		return fail(ErrKindGenerationMismatch, "%s: expected generation %d, actual %d",
			c.Path, c.IfGeneration, n.Stat.ContentGeneration)
	case len(c.Data) > t.f.cfg.ContentLimit:
		return t.tooLarge(c.Path, len(c.Data))
	}
	cp := *n
	cp.Stat.ContentGeneration++
	cp.Stat.ModifiedRevision = t.index
	setData(&cp, c.Data)
	t.put(c.Path, &cp)
	t.emit(fsapi.ChangeModified, c.Path, cp.Stat)
	return Result{Stat: cp.Stat}
}

func (t *txn) delete(c *Delete) Result {
	if c.Path == fsapi.Root {
		return fail(ErrKindBadRequest, "cannot delete root")
	}
	n, r, ok := t.lookup(c.Path, c.Instance)
	if !ok {
		return r
	}
	if len(c.Sequencer) > 0 {
		if r, ok := t.checkSequencer(c.Sequencer); !ok {
			return r
		}
	}
	if r, ok := checkGeneration(c.Path, n, c.IfGeneration); !ok {
		return r
	}
	if n.Stat.Children > 0 {
		return fail(ErrKindNotEmpty, "%s has %d children", c.Path, n.Stat.Children)
	}
	if r, ok := t.lockedByOther(c.Path, c.Meta.Session); !ok {
		return r
	}
	t.remove(c.Path, n)
	return Result{Stat: n.Stat}
}

// remove deletes the childless node n at path, then every ephemeral
// ancestor directory that this leaves empty. Each deleted node's lock is
// forgotten (locks.Table.Delete): its holders and waiters are dropped
// without a grant or an error here; they learn of it from the node's
// deletion (their handles are for an instance that no longer exists), and a
// node created later on the path starts a fresh lock.
func (t *txn) remove(path string, n *Node) {
	for {
		t.tree.Delete(nodeKey(path))
		t.forget(path, n.Stat.EphemeralOwner)
		t.emit(fsapi.ChangeDeleted, path, n.Stat)
		parent := fsapi.Parent(path)
		p, _ := t.get(parent) // a node's parent always exists
		p = t.addChildren(parent, p, -1)
		if parent == fsapi.Root || p.Stat.EphemeralOwner == 0 || p.Stat.Children > 0 {
			return
		}
		path, n = parent, p
	}
}

// forget drops a deleted node's lock (its waiters are dropped without a
// grant) and its place in its owner's ephemeral set.
func (t *txn) forget(path string, owner uint64) {
	if t.multi != nil {
		t.multi.unlocked[path] = true
	}
	t.later(func() {
		if l, ok := t.f.locks.Delete(path); ok {
			for _, w := range l.Waiters {
				t.dropped = append(t.dropped, w.ID)
			}
		}
		if s := t.f.sessions[owner]; s != nil {
			delete(s.ephemerals, path)
		}
	})
}
