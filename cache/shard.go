package cache

import (
	"container/list"
	"sync"
	"unsafe"

	"github.com/haspcell/hasp/fsapi"
)

// kind is what an entry caches about its path. A path has at most one entry
// of each kind.
type kind uint8

const (
	kindContents kind = iota // file contents and the stat read with them
	kindStat                 // stat alone
	kindAbsent               // no node has that name
	kindDir                  // directory listing
	kindHandle               // what reopening the node needs
	numKinds
)

// dirEntrySize is what one listed child costs beyond its name.
const dirEntrySize = int64(unsafe.Sizeof(fsapi.DirEntry{}))

// entry is one cached reply. Its slices are never written after Put.
type entry struct {
	path     string
	kind     kind
	rev      uint64
	size     int64
	data     []byte           // kindContents
	stat     fsapi.Stat       // kindContents, kindStat, kindHandle
	instance uint64           // kindHandle
	dir      []fsapi.DirEntry // kindDir
}

func (e *entry) setSize() {
	e.size = EntryOverhead + int64(len(e.path)) + int64(len(e.data))
	for _, d := range e.dir {
		e.size += dirEntrySize + int64(len(d.Name))
	}
}

// mark remembers the newest invalidations received for one path.
type mark struct {
	path  string
	node  uint64 // newest Invalidate(path)
	child uint64 // newest Invalidate of a child of path: refuses listings
}

// shard is one independently locked part of a Cache: a path's entries and
// marks all live in the shard its hash picks.
type shard struct {
	mu       sync.Mutex                         // protects following fields
	entries  [numKinds]map[string]*list.Element // of *entry
	lru      list.List                          // of *entry, most recently used first
	bytes    int64
	maxBytes int64
	marks    map[string]*list.Element // of *mark
	marked   list.List                // of *mark, least recently marked first
	maxMarks int
	floor    uint64 // Puts at or below it are refused
	disabled bool
	stats    Stats

	_ [64]byte // keeps the next shard's mutex off this shard's last cache line
}

func (s *shard) init(maxBytes int64, maxMarks int) {
	s.maxBytes, s.maxMarks = maxBytes, maxMarks
	s.marks = make(map[string]*list.Element)
	s.clearEntries()
}

// get returns the entry of kind k for path, moving it to the front of the
// LRU, or nil. It counts nothing.
func (s *shard) get(path string, k kind) *entry {
	el := s.entries[k][path]
	if el == nil || s.disabled {
		return nil
	}
	s.lru.MoveToFront(el)
	return el.Value.(*entry)
}

// count counts a Get as a hit or a miss and passes its answer through.
func (s *shard) count(e *entry) *entry {
	if e == nil {
		s.stats.Misses++
	} else {
		s.stats.Hits++
	}
	return e
}

// put caches e unless that is refused, and says whether it cached it.
func (s *shard) put(e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.disabled || e.size > s.maxBytes:
		s.stats.Refused++
		return false
	case s.stale(e):
		s.stats.Stale++
		return false
	}
	if old := s.entries[e.kind][e.path]; old != nil {
		if old.Value.(*entry).rev > e.rev {
			s.stats.Stale++
			return false
		}
		s.remove(old)
	}
	s.entries[e.kind][e.path] = s.lru.PushFront(e)
	s.bytes += e.size
	s.stats.Puts++
	s.evict()
	return true
}

// stale says whether e was read no later than the floor or an invalidation
// of its path (or, for a listing, of one of its children).
func (s *shard) stale(e *entry) bool {
	if e.rev <= s.floor {
		return true
	}
	el := s.marks[e.path]
	if el == nil {
		return false
	}
	m := el.Value.(*mark)
	return e.rev <= m.node || e.kind == kindDir && e.rev <= m.child
}

// evict drops least recently used entries until the shard fits.
func (s *shard) evict() {
	for s.bytes > s.maxBytes {
		s.remove(s.lru.Back())
		s.stats.Evictions++
	}
}

func (s *shard) remove(el *list.Element) {
	e := s.lru.Remove(el).(*entry)
	delete(s.entries[e.kind], e.path)
	s.bytes -= e.size
}

// drop removes path's entry of kind k, if any.
func (s *shard) drop(path string, k kind) {
	if el := s.entries[k][path]; el != nil {
		s.remove(el)
	}
}

// invalidate drops path's entries and marks it invalidated at rev.
func (s *shard) invalidate(path string, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range numKinds {
		s.drop(path, k)
	}
	s.stats.Invalidations++
	if m := s.mark(path, rev); m != nil {
		m.node = max(m.node, rev)
	}
}

// invalidateChild drops the listing of dir, one of whose children was
// invalidated at rev, and marks dir so.
func (s *shard) invalidateChild(dir string, rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(dir, kindDir)
	if m := s.mark(dir, rev); m != nil {
		m.child = max(m.child, rev)
	}
}

// mark returns path's mark, created if need be and moved to the back of
// the forgetting order, or nil when the floor already refuses rev.
func (s *shard) mark(path string, rev uint64) *mark {
	if rev <= s.floor {
		return nil
	}
	if el := s.marks[path]; el != nil {
		s.marked.MoveToBack(el)
		return el.Value.(*mark)
	}
	m := &mark{path: path}
	s.marks[path] = s.marked.PushBack(m)
	for len(s.marks) > s.maxMarks {
		s.forget(s.marked.Front())
	}
	return m
}

// forget drops a mark, raising the floor so that what it refused stays
// refused.
func (s *shard) forget(el *list.Element) {
	m := s.marked.Remove(el).(*mark)
	delete(s.marks, m.path)
	s.floor = max(s.floor, m.node, m.child)
	s.stats.MarksForgotten++
}

// flush drops every entry and raises the floor to rev; marks at or below the
// floor are dropped too, since the floor refuses all they did.
func (s *shard) flush(rev uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clearEntries()
	s.floor = max(s.floor, rev)
	for el := s.marked.Front(); el != nil; {
		next := el.Next()
		if m := el.Value.(*mark); max(m.node, m.child) <= s.floor {
			s.marked.Remove(el)
			delete(s.marks, m.path)
		}
		el = next
	}
}

func (s *shard) setDisabled(disabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disabled = disabled
	if disabled {
		s.clearEntries()
	}
}

// clearEntries drops every entry, releasing the maps' memory.
func (s *shard) clearEntries() {
	for k := range s.entries {
		s.entries[k] = make(map[string]*list.Element)
	}
	s.lru.Init()
	s.bytes = 0
}

func (s *shard) sizes() (n int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len(), s.bytes
}

func (s *shard) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}
