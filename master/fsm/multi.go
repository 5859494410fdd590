package fsm

import (
	"github.com/haspcell/hasp/fsapi"
)

// Multi applies Ops in order, all or none, as one entry: every op sees the
// namespace as the ops before it left it, and if any op fails nothing is
// applied and Result.FailedOp names the first that failed.
type Multi struct {
	Meta WriteMeta
	Ops  []MultiOp
}

// MultiOp kinds. Never renumber: they are in the log.
const (
	MultiCreate uint8 = 1 // as Open with CreateMust
	MultiSet    uint8 = 2 // as SetContents, IfGeneration = Generation
	MultiDelete uint8 = 3 // as Delete, IfGeneration = Generation
	MultiCheck  uint8 = 4 // the node exists (at content generation Generation, if not 0)
)

// MultiOp is one op of a Multi. Data is a created file's contents or a
// set's new contents. Directory, Ephemeral and Sequential apply to creates
// only.
type MultiOp struct {
	Kind       uint8
	Path       string
	Data       []byte `codec:",omitempty"`
	Generation uint64 `codec:",omitempty"`
	Directory  bool   `codec:",omitempty"`
	Ephemeral  bool   `codec:",omitempty"`
	Sequential bool   `codec:",omitempty"`
}

// MultiResult is what one applied op did: the node's path (as created, for
// a sequential create) and its stat after the op (a deleted node's last).
type MultiResult struct {
	Path string
	Stat fsapi.Stat
}

// multiEffects holds, while a Multi's ops run, the changes they make
// outside the copy-on-write tree (sessions' ephemeral sets, the lock
// table), so that a failed Multi can be dropped by dropping the tree.
type multiEffects struct {
	later []func()
	// unlocked: paths whose lock an op deleted (with the node); a later op
	// must not see that lock.
	unlocked map[string]bool
}

// later runs fn now, or, while a Multi's ops run, once all have succeeded.
func (t *txn) later(fn func()) {
	if t.multi != nil {
		t.multi.later = append(t.multi.later, fn)
		return
	}
	fn()
}

func (t *txn) applyMulti(c *Multi, s *session) Result {
	if r, ok := t.checkMulti(c); !ok {
		return r
	}
	saved, nEvents := t.tree, len(t.events)
	t.tree = t.tree.Commit().Txn()
	t.multi = &multiEffects{unlocked: map[string]bool{}}
	defer func() { t.multi = nil }()
	results := make([]MultiResult, 0, len(c.Ops))
	for i := range c.Ops {
		r := t.multiOp(c.Meta, &c.Ops[i], s)
		if r.ErrKind != ErrKindOK {
			t.tree, t.events = saved, t.events[:nEvents]
			return Result{ErrKind: r.ErrKind, ErrMsg: r.ErrMsg, FailedOp: i + 1}
		}
		path := c.Ops[i].Path
		if r.Path != "" {
			path = r.Path
		}
		results = append(results, MultiResult{Path: path, Stat: r.Stat})
	}
	for _, fn := range t.multi.later {
		fn()
	}
	return Result{Multi: results}
}

// checkMulti checks the Multi as a whole: 1 to fsapi.MaxMultiOps ops whose
// data together fits the content limit.
func (t *txn) checkMulti(c *Multi) (Result, bool) {
	if len(c.Ops) == 0 || len(c.Ops) > fsapi.MaxMultiOps {
		return fail(ErrKindBadRequest, "multi-op with %d ops: want 1 to %d", len(c.Ops), fsapi.MaxMultiOps), false
	}
	total := 0
	for _, op := range c.Ops {
		total += len(op.Data)
	}
	if total > t.f.cfg.ContentLimit {
		return fail(ErrKindTooLarge, "multi-op contents total %d bytes; the limit is %d bytes", total, t.f.cfg.ContentLimit), false
	}
	return Result{}, true
}

func (t *txn) multiOp(meta WriteMeta, op *MultiOp, s *session) Result {
	if op.Kind != MultiCreate && (op.Directory || op.Ephemeral || op.Sequential) {
		return fail(ErrKindBadRequest, "%s: directory, ephemeral and sequential apply to creates only", op.Path)
	}
	switch op.Kind {
	case MultiCreate:
		if op.Generation != 0 {
			return fail(ErrKindBadRequest, "%s: a create has no generation", op.Path)
		}
		return t.open(&Open{Meta: meta, Path: op.Path, Create: uint8(fsapi.CreateMust), Ephemeral: op.Ephemeral,
			Directory: op.Directory, Contents: op.Data, Sequential: op.Sequential}, s)
	case MultiSet:
		return t.setContents(&SetContents{Meta: meta, Path: op.Path, Data: op.Data, IfGeneration: op.Generation})
	case MultiDelete:
		if len(op.Data) > 0 {
			return fail(ErrKindBadRequest, "%s: a delete has no data", op.Path)
		}
		return t.delete(&Delete{Meta: meta, Path: op.Path, IfGeneration: op.Generation})
	case MultiCheck:
		if len(op.Data) > 0 {
			return fail(ErrKindBadRequest, "%s: a check has no data", op.Path)
		}
		return t.check(op.Path, op.Generation)
	}
	return fail(ErrKindBadRequest, "%s: unknown multi-op kind %d", op.Path, op.Kind)
}

// check fails unless path exists, at content generation gen if gen != 0.
func (t *txn) check(path string, gen uint64) Result {
	n, r, ok := t.lookup(path, 0)
	if !ok {
		return r
	}
	if r, ok := checkGeneration(path, n, gen); !ok {
		return r
	}
	return Result{Stat: n.Stat}
}

// checkGeneration fails unless gen is 0 or n's content generation.
func checkGeneration(path string, n *Node, gen uint64) (Result, bool) {
	if gen != 0 && gen != n.Stat.ContentGeneration {
		return fail(ErrKindGenerationMismatch, "%s: expected generation %d, actual %d",
			path, gen, n.Stat.ContentGeneration), false
	}
	return Result{}, true
}
