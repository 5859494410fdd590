package cache_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
)

// The property test drives a Cache with random histories against a
// simulated server and a naive reference cache.
//
// The server follows the protocol the cache relies on (see doc.go): before
// a change it invalidates every node whose metadata the change alters (the
// node; on create or delete also its parent, whose Stat.Children changes),
// at v, the revision it has applied so far, and makes those nodes and their
// parents uncachable; it applies the change later, at a new revision, and
// meanwhile reads of those paths are served but not cached. Read replies are held "in flight"
// and delivered (Put) in random order, so they cross invalidations. Other
// commits (ticks) raise the revision in between. A fail-over applies a
// change the cache is never told about and then flushes it.
//
// Checks, on every Get that hits:
//   - the value equals the server's current value (so a hit is never
//     older than the newest invalidation the cache has been told about:
//     invalidations precede changes);
//   - its revision is above every invalidation mark and the floor the
//     reference has recorded for that path.
//
// With unbounded size and marks the cache must also agree exactly with the
// reference: the same Put answers, hits and revisions, and the same counts.

var (
	modelPaths = []string{"/", "/a", "/b", "/a/x", "/a/y", "/b/x", "/a/x/q"}
	kindNames  = []string{"contents", "stat", "absent", "dir", "handle"}
)

const (
	kContents = iota
	kStat
	kAbsent
	kDir
	kHandle
)

// seed returns HASP_SEED if set, else a fresh seed, and logs it.
func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if env := os.Getenv("HASP_SEED"); env != "" {
		v, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatalf("HASP_SEED=%q: %v", env, err)
		}
		s = v
	}
	t.Logf("seed %d (rerun with HASP_SEED=%d)", s, s)
	return s
}

type srvNode struct {
	dir                              bool
	data                             string
	instance, gen, created, modified uint64
}

// server is the simulated master's namespace.
type server struct {
	rev     uint64
	nodes   map[string]*srvNode
	pending func()          // the change whose invalidations were sent, not yet applied
	busy    map[string]bool // paths uncachable until pending is applied
}

func newServer() *server {
	return &server{nodes: map[string]*srvNode{"/": {dir: true, instance: 0, gen: 1}}}
}

func (s *server) stat(p string) fsapi.Stat {
	n := s.nodes[p]
	st := fsapi.Stat{Instance: n.instance, ContentGeneration: n.gen, CreatedRevision: n.created,
		ModifiedRevision: n.modified, Size: uint64(len(n.data)), IsDir: n.dir}
	for q := range s.nodes {
		if q != "/" && fsapi.Parent(q) == p {
			st.Children++
		}
	}
	return st
}

func (s *server) list(p string) []fsapi.DirEntry {
	var ls []fsapi.DirEntry
	for _, q := range slices.Sorted(maps.Keys(s.nodes)) {
		if q != "/" && fsapi.Parent(q) == p {
			ls = append(ls, fsapi.DirEntry{Name: fsapi.Base(q), Stat: s.stat(q)})
		}
	}
	return ls
}

// reply is a read answer: what the server held for path at rev.
type reply struct {
	path string
	kind int
	rev  uint64
	val  value
}

// value is what a Get returns, comparable with reflect.DeepEqual.
type value struct {
	data   string
	stat   fsapi.Stat
	dir    []fsapi.DirEntry
	handle cache.Handle
}

// truth returns the server's current value of kind for p, or false if p
// has no such value (absent, or not a file, ...).
func (s *server) truth(p string, k int) (value, bool) {
	n := s.nodes[p]
	switch {
	case k == kAbsent:
		return value{}, n == nil
	case n == nil, k == kContents && n.dir, k == kDir && !n.dir:
		return value{}, false
	case k == kContents:
		return value{data: n.data, stat: s.stat(p)}, true
	case k == kDir:
		return value{dir: s.list(p)}, true
	case k == kHandle:
		return value{handle: cache.Handle{Instance: n.instance, Stat: s.stat(p)}}, true
	}
	return value{stat: s.stat(p)}, true
}

// change picks a change to p the tree allows, or returns nil. It also
// returns the nodes whose metadata the change alters.
func (s *server) change(rng *rand.Rand, p string) (apply func(), changed []string) {
	n, parent := s.nodes[p], s.nodes[fsapi.Parent(p)]
	data := fmt.Sprintf("v%d", rng.IntN(1000))
	switch {
	case n == nil && parent != nil && parent.dir:
		dir := rng.IntN(3) == 0
		return func() {
			s.nodes[p] = &srvNode{dir: dir, data: map[bool]string{false: data}[dir], instance: s.rev, gen: 1,
				created: s.rev, modified: s.rev}
		}, []string{p, fsapi.Parent(p)}
	case n != nil && !n.dir && rng.IntN(3) > 0:
		return func() { n.data, n.gen, n.modified = data, n.gen+1, s.rev }, []string{p}
	case n != nil && s.stat(p).Children == 0:
		return func() { delete(s.nodes, p) }, []string{p, fsapi.Parent(p)}
	}
	return nil, nil
}

// reference is the naive cache: plain maps, no bound, no shards.
type reference struct {
	entries     map[[2]string]reply
	node, child map[string]uint64
	floor       uint64
	disabled    bool
	stats       cache.Stats
}

func newReference() *reference {
	return &reference{entries: map[[2]string]reply{}, node: map[string]uint64{}, child: map[string]uint64{}}
}

func (m *reference) put(r reply) bool {
	key := [2]string{r.path, kindNames[r.kind]}
	switch {
	case m.disabled:
		m.stats.Refused++
		return false
	case r.rev <= m.newestInvalidation(r.path, r.kind):
		m.stats.Stale++
		return false
	case m.entries[key].path != "" && m.entries[key].rev > r.rev:
		m.stats.Stale++
		return false
	}
	m.entries[key] = r
	m.stats.Puts++
	return true
}

// newestInvalidation is the revision a reply about p must exceed.
func (m *reference) newestInvalidation(p string, k int) uint64 {
	if k == kDir {
		return max(m.floor, m.node[p], m.child[p])
	}
	return max(m.floor, m.node[p])
}

func (m *reference) get(p string, k int) (reply, bool) {
	if m.disabled {
		m.stats.Misses++
		return reply{}, false
	}
	r, ok := m.entries[[2]string{p, kindNames[k]}]
	if c, cok := m.entries[[2]string{p, "contents"}]; k == kStat && cok && (!ok || c.rev > r.rev) {
		r, ok = c, true
	}
	if ok {
		m.stats.Hits++
	} else {
		m.stats.Misses++
	}
	return r, ok
}

func (m *reference) invalidate(p string, rev uint64) {
	m.stats.Invalidations++
	for _, k := range kindNames {
		delete(m.entries, [2]string{p, k})
	}
	m.node[p] = max(m.node[p], rev)
	if p == "/" {
		return
	}
	dir := fsapi.Parent(p)
	delete(m.entries, [2]string{dir, "dir"})
	m.child[dir] = max(m.child[dir], rev)
}

func (m *reference) flush(rev uint64) {
	clear(m.entries)
	m.floor = max(m.floor, rev)
}

// get asks the cache for kind k of p, in the reference's shape.
func get(c *cache.Cache, p string, k int) (reply, bool) {
	r := reply{path: p, kind: k}
	var ok bool
	switch k {
	case kContents:
		var data []byte
		data, r.val.stat, r.rev, ok = c.GetContents(p)
		r.val.data = string(data)
	case kStat:
		r.val.stat, r.rev, ok = c.GetStat(p)
	case kAbsent:
		r.rev, ok = c.GetAbsent(p)
	case kDir:
		r.val.dir, r.rev, ok = c.GetDir(p)
	case kHandle:
		r.val.handle, r.rev, ok = c.GetHandle(p)
	}
	return r, ok
}

func put(c *cache.Cache, r reply) bool {
	switch r.kind {
	case kContents:
		return c.PutContents(r.path, r.rev, []byte(r.val.data), r.val.stat)
	case kStat:
		return c.PutStat(r.path, r.rev, r.val.stat)
	case kAbsent:
		return c.PutAbsent(r.path, r.rev)
	case kDir:
		return c.PutDir(r.path, r.rev, r.val.dir)
	}
	return c.PutHandle(r.path, r.rev, r.val.handle)
}

// sameValue compares values, treating nil and empty listings alike.
func sameValue(a, b value) bool {
	if len(a.dir) == 0 && len(b.dir) == 0 {
		a.dir, b.dir = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

// history runs one random history.
type history struct {
	t        *testing.T
	rng      *rand.Rand
	c        *cache.Cache
	srv      *server
	ref      *reference
	inflight []reply
	exact    bool
	log      []string // recent steps, printed on failure
}

func (h *history) logf(format string, args ...any) {
	h.log = append(h.log, fmt.Sprintf(format, args...))
	if len(h.log) > 40 {
		h.log = h.log[1:]
	}
}

func (h *history) fail(format string, args ...any) {
	h.t.Helper()
	for _, l := range h.log {
		h.t.Log(l)
	}
	h.t.Fatalf(format, args...)
}

func (h *history) step() {
	if h.ref.disabled && h.rng.IntN(20) == 0 {
		h.setDisabled(false)
		return
	}
	switch n := h.rng.IntN(1000); {
	case n < 250:
		h.read()
	case n < 500 || len(h.inflight) > 8:
		h.deliver()
	case n < 850:
		h.get()
	case n < 920:
		h.change()
	case n < 980:
		h.srv.rev++
		h.logf("tick to %d", h.srv.rev)
	case n < 985:
		h.failover()
	case n < 990:
		h.ref.flush(h.srv.rev)
		h.c.Flush(h.srv.rev)
		h.logf("flush at %d", h.srv.rev)
	default:
		h.setDisabled(true)
	}
}

func (h *history) setDisabled(disabled bool) {
	h.ref.disabled = disabled
	if disabled {
		clear(h.ref.entries)
		h.c.Disable()
	} else {
		h.c.Enable()
	}
	h.logf("disabled=%v", disabled)
}

// read serves a read of a random path, if it is cachable now.
func (h *history) read() {
	p := modelPaths[h.rng.IntN(len(modelPaths))]
	if h.srv.busy[p] {
		return // uncachable while its change is pending
	}
	for _, k := range h.rng.Perm(len(kindNames)) {
		if v, ok := h.srv.truth(p, k); ok {
			h.inflight = append(h.inflight, reply{path: p, kind: k, rev: h.srv.rev, val: v})
			return
		}
	}
}

// deliver Puts a random in-flight reply.
func (h *history) deliver() {
	if len(h.inflight) == 0 {
		return
	}
	i := h.rng.IntN(len(h.inflight))
	r := h.inflight[i]
	h.inflight = slices.Delete(h.inflight, i, i+1)
	got, want := put(h.c, r), h.ref.put(r)
	h.logf("put %s %s @%d = %v (reference %v)", kindNames[r.kind], r.path, r.rev, got, want)
	if h.exact && got != want {
		h.fail("Put %s of %s at %d = %v, reference says %v", kindNames[r.kind], r.path, r.rev, got, want)
	}
}

func (h *history) get() {
	p, k := modelPaths[h.rng.IntN(len(modelPaths))], h.rng.IntN(len(kindNames))
	got, ok := get(h.c, p, k)
	want, wok := h.ref.get(p, k)
	h.logf("get %s %s = %v @%d", kindNames[k], p, ok, got.rev)
	if h.exact && (ok != wok || ok && got.rev != want.rev) {
		h.fail("Get %s of %s = rev %d, %v; reference has rev %d, %v", kindNames[k], p, got.rev, ok, want.rev, wok)
	}
	if !ok {
		return
	}
	if truth, tok := h.srv.truth(p, k); !tok || !sameValue(got.val, truth) {
		h.fail("Get %s of %s at rev %d = %+v; the server has %+v (exists %v)", kindNames[k], p, got.rev, got.val, truth, tok)
	}
	if inv := h.ref.newestInvalidation(p, k); got.rev <= inv {
		h.fail("Get %s of %s returned rev %d, not newer than invalidation/floor %d", kindNames[k], p, got.rev, inv)
	}
}

// change applies the pending change, or starts one: it invalidates the
// nodes it alters (the cache is told at the revision applied so far) and
// makes them and their parents uncachable until the change is applied.
func (h *history) change() {
	if h.srv.pending != nil {
		h.srv.rev++
		h.srv.pending()
		h.srv.pending, h.srv.busy = nil, nil
		h.logf("applied change at %d", h.srv.rev)
		return
	}
	p := modelPaths[1+h.rng.IntN(len(modelPaths)-1)]
	apply, changed := h.srv.change(h.rng, p)
	if apply == nil {
		return
	}
	h.srv.pending, h.srv.busy = apply, map[string]bool{}
	for _, q := range changed {
		h.srv.busy[q], h.srv.busy[fsapi.Parent(q)] = true, true
		h.ref.invalidate(q, h.srv.rev)
		h.c.Invalidate(q, h.srv.rev)
		h.logf("invalidate %s @%d", q, h.srv.rev)
	}
}

// failover applies a change the cache is not told about, then flushes it
// at the newest revision, as after a master fail-over.
func (h *history) failover() {
	if h.srv.pending != nil {
		h.change()
	}
	p := modelPaths[1+h.rng.IntN(len(modelPaths)-1)]
	if apply, _ := h.srv.change(h.rng, p); apply != nil {
		h.srv.rev++
		apply()
	}
	h.ref.flush(h.srv.rev)
	h.c.Flush(h.srv.rev)
	h.logf("fail-over: silent change of %s, flush at %d", p, h.srv.rev)
}

func TestModel(t *testing.T) {
	s := seed(t)
	tests := []struct {
		name  string
		cfg   cache.Config
		exact bool
	}{
		{"exact, one shard", cache.Config{Shards: 1}, true},
		{"exact, sharded", cache.Config{Shards: 8}, true},
		{"small, one shard", cache.Config{Shards: 1, MaxBytes: 4 * (cache.EntryOverhead + 8), MaxMarks: 2}, false},
		{"small, sharded", cache.Config{Shards: 4, MaxBytes: 16 * cache.EntryOverhead, MaxMarks: 4}, false},
	}
	steps := 10000
	if testing.Short() {
		steps = 1000
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for run := range 10 {
				rs := s + uint64(i*1000+run)
				h := &history{t: t, rng: rand.New(rand.NewPCG(rs, rs^0x9e3779b97f4a7c15)), c: newCache(t, &tt.cfg),
					srv: newServer(), ref: newReference(), exact: tt.exact}
				for range steps {
					h.step()
				}
				got := h.c.Stats()
				got.Evictions, got.MarksForgotten = 0, 0
				if tt.exact && got != h.ref.stats {
					t.Fatalf("run %d: Stats = %+v\nreference %+v", run, got, h.ref.stats)
				}
				if !tt.exact && got.Hits == 0 {
					t.Fatalf("run %d: no hits; the history does not exercise the cache", run)
				}
				t.Logf("run %d: %+v", run, h.c.Stats())
			}
		})
	}
}
