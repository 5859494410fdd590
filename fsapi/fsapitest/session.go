package fsapitest

import (
	"fmt"
	"sort"
	"sync"
	"testing"
)

// Session guarantees (follower reads; docs/consistency.md).
//
// A follower read is not linearizable, so porcupine's check does not apply
// to it. What it promises is per client: read-your-writes (a read reflects
// every write the client had seen acknowledged) and monotonic reads (it
// reflects every state the client had read before). CheckSessions checks
// exactly that, from what each client saw and nothing else: the checker
// trusts no revision the library reports except the stats of the answers
// it checks, and it cross-checks those against the data.
//
// Every write stores a value no other write stores, and each acknowledged
// write's answer gives the revision (Stat.ModifiedRevision) at which it was
// applied. Those revisions order each file's versions. A client's floor is
// the highest revision it has observed: its own acknowledged writes and
// the ModifiedRevision of every read it made. A read of file p that
// returns the version at revision m is wrong when
//
//   - some write to p applied at a revision in (m, floor] is known: the
//     client had already seen a state that includes it (its own write:
//     read-your-writes broken; an earlier read: monotonic reads broken);
//   - or its data and revision disagree with the write that made that
//     version (a value from one write reported at another's revision), or
//     no write (acknowledged or not) wrote its data.
//
// Writes whose outcome is unknown count only once a read shows them. Each
// client's operations must be recorded in the order it made them, one at
// a time.

// SessionOp is one operation as a client saw it.
type SessionOp struct {
	Client int
	Kind   Kind // Read or Write
	Path   string
	// Data is the value written, or read.
	Data string
	// Revision is the file's Stat.ModifiedRevision in the answer: for a
	// read, the version it returned; for a write, where it was applied.
	// 0 for a write with Result Unknown.
	Revision uint64
	Result   Result // OK, or Unknown for a write
	// At is when the call started (for messages), on the recorder's clock.
	At int64
}

// SessionRecorder collects SessionOps. It is safe for concurrent use; the
// operations of one client must come from one goroutine, in order.
type SessionRecorder struct {
	clock *Recorder // only its clock and annotations

	mu  sync.Mutex // protects following fields
	ops []SessionOp
}

// NewSessionRecorder returns an empty recorder whose clock starts now.
func NewSessionRecorder() *SessionRecorder { return &SessionRecorder{clock: NewRecorder()} }

// Clock is the recorder whose clock stamps operations; faults may be
// annotated on it.
func (r *SessionRecorder) Clock() *Recorder { return r.clock }

// Add records op, stamping it with the time if At is 0.
func (r *SessionRecorder) Add(op SessionOp) {
	if op.At == 0 {
		op.At = r.clock.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

// Ops returns the operations recorded so far, in the order they were added.
func (r *SessionRecorder) Ops() []SessionOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]SessionOp(nil), r.ops...)
}

// Count counts the recorded operations of one kind and result.
func (r *SessionRecorder) Count(k Kind, res Result) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, op := range r.ops {
		if op.Kind == k && op.Result == res {
			n++
		}
	}
	return n
}

// Version is a file's state at a revision.
type Version struct {
	Path     string
	Revision uint64
	Data     string
}

// CheckSessions returns every violation of read-your-writes or monotonic
// reads in ops (see the comment above), given the versions the files had
// before ops began. An empty result means the history is fine.
func CheckSessions(initial []Version, ops []SessionOp) []string {
	v := newVersions(initial)
	var bad []string
	written := map[string]bool{}
	for _, in := range initial {
		written[in.Data] = true
	}
	for _, op := range ops {
		if op.Kind != Read {
			written[op.Data] = true // acknowledged or not
		}
	}
	for _, op := range ops { // learn every version first: a read may show a write whose ack came later, or never
		if op.Result != OK {
			continue
		}
		if op.Kind == Read && !written[op.Data] {
			bad = append(bad, fmt.Sprintf("client %d read %s at %.3fs and got %q (revision %d), which no write wrote",
				op.Client, op.Path, float64(op.At)/1e9, op.Data, op.Revision))
			continue
		}
		bad = append(bad, v.learn(op)...)
	}
	type floor struct {
		rev uint64
		why string
	}
	floors := map[int]floor{}
	for i, op := range ops {
		if op.Result != OK {
			continue
		}
		f := floors[op.Client]
		if w, ok := v.missing(op.Path, op.Revision, f.rev); ok && op.Kind == Read {
			bad = append(bad, fmt.Sprintf("op %d: client %d read %s at %.3fs and got %q (revision %d), but the write of %q at revision %d "+
				"is missing although the client had seen revision %d (%s)", i, op.Client, op.Path, float64(op.At)/1e9, op.Data,
				op.Revision, w.Data, w.Revision, f.rev, f.why))
		}
		if op.Revision > f.rev {
			floors[op.Client] = floor{op.Revision, fmt.Sprintf("its %s of %q, %s, at %.3fs", op.Kind, op.Data, op.Path, float64(op.At)/1e9)}
		}
	}
	return bad
}

// versions is every known version of every file, by revision.
type versions struct {
	byPath map[string]map[uint64]string // path → revision → data
	byData map[string]Version           // value → the version it made
	sorted map[string][]uint64          // path → revisions, ascending (built on first use)
}

func newVersions(initial []Version) *versions {
	v := &versions{byPath: map[string]map[uint64]string{}, byData: map[string]Version{}, sorted: map[string][]uint64{}}
	for _, in := range initial {
		v.put(in)
	}
	return v
}

func (v *versions) put(x Version) {
	m := v.byPath[x.Path]
	if m == nil {
		m = map[uint64]string{}
		v.byPath[x.Path] = m
	}
	m[x.Revision] = x.Data
	if x.Data != "" {
		v.byData[x.Data] = x
	}
	delete(v.sorted, x.Path)
}

// learn adds the version op shows, reporting any disagreement with what
// is already known of it.
func (v *versions) learn(op SessionOp) []string {
	x := Version{Path: op.Path, Revision: op.Revision, Data: op.Data}
	if d, ok := v.byPath[op.Path][op.Revision]; ok && d != op.Data {
		return []string{fmt.Sprintf("client %d's %s of %s at %.3fs: revision %d holds %q, but another answer said %q",
			op.Client, op.Kind, op.Path, float64(op.At)/1e9, op.Revision, op.Data, d)}
	}
	if w, ok := v.byData[op.Data]; ok && op.Data != "" && (w.Revision != op.Revision || w.Path != op.Path) {
		return []string{fmt.Sprintf("client %d's %s of %s at %.3fs: value %q at revision %d, but it was written to %s at revision %d",
			op.Client, op.Kind, op.Path, float64(op.At)/1e9, op.Data, op.Revision, w.Path, w.Revision)}
	}
	v.put(x)
	return nil
}

// missing returns a known version of path with a revision in (rev, floor]:
// a version a reader at rev lacks though it had seen floor.
func (v *versions) missing(path string, rev, floor uint64) (Version, bool) {
	if floor <= rev {
		return Version{}, false
	}
	revs, ok := v.sorted[path]
	if !ok {
		for r := range v.byPath[path] {
			revs = append(revs, r)
		}
		sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
		v.sorted[path] = revs
	}
	i := sort.Search(len(revs), func(i int) bool { return revs[i] > rev })
	if i < len(revs) && revs[i] <= floor {
		return Version{Path: path, Revision: revs[i], Data: v.byPath[path][revs[i]]}, true
	}
	return Version{}, false
}

// RequireSessions fails t with every violation CheckSessions finds (at
// most 20 are printed).
func RequireSessions(t testing.TB, initial []Version, ops []SessionOp) {
	t.Helper()
	bad := CheckSessions(initial, ops)
	for i, b := range bad {
		if i == 20 {
			t.Errorf("... and %d more", len(bad)-20)
			break
		}
		t.Errorf("session guarantee violated: %s", b)
	}
}
