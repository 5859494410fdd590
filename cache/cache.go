package cache

import (
	"bytes"
	"hash/maphash"
	"slices"

	"github.com/haspcell/hasp/fsapi"
)

// Handle is what reopening a node needs without asking the master: the
// instance the open found and the node's metadata then.
type Handle struct {
	Instance uint64
	Stat     fsapi.Stat
}

// Stats counts what a Cache did since New. Flush, Disable and Enable leave
// the counters alone.
type Stats struct {
	// Hits and Misses count Get calls that found an entry or found none.
	// Every Get while the cache is disabled is a miss.
	Hits, Misses uint64
	// Puts counts Put calls that cached their reply.
	Puts uint64
	// Stale counts Put calls refused because the reply was read no later
	// than an invalidation the cache had received, than the floor, or than
	// the entry already cached.
	Stale uint64
	// Refused counts Put calls refused while the cache was disabled or
	// because the entry was larger than a shard's share of MaxBytes.
	Refused uint64
	// Invalidations counts Invalidate calls.
	Invalidations uint64
	// Evictions counts entries dropped to stay within MaxBytes.
	Evictions uint64
	// MarksForgotten counts invalidation marks forgotten to stay within
	// MaxMarks (each raised a shard's floor). If it grows steadily, raise
	// MaxMarks.
	MarksForgotten uint64
}

func (s *Stats) add(o Stats) {
	s.Hits += o.Hits
	s.Misses += o.Misses
	s.Puts += o.Puts
	s.Stale += o.Stale
	s.Refused += o.Refused
	s.Invalidations += o.Invalidations
	s.Evictions += o.Evictions
	s.MarksForgotten += o.MarksForgotten
}

// Cache is hasp's client-side cache. It is safe for concurrent use. Byte
// slices and listings it returns are shared with the cache and must not be
// modified.
type Cache struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
}

// New returns an empty, enabled cache. A nil cfg means DefaultConfig().
func New(cfg *Config) (*Cache, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ca := &Cache{seed: maphash.MakeSeed(), mask: uint64(c.Shards - 1), shards: make([]shard, c.Shards)}
	for i := range ca.shards {
		ca.shards[i].init(c.MaxBytes/int64(c.Shards), c.MaxMarks/c.Shards)
	}
	return ca, nil
}

func (c *Cache) shard(path string) *shard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, path)&c.mask]
}

// GetContents returns a file's cached contents, the stat read with them and
// the revision they were read at. data is shared: do not modify it.
func (c *Cache) GetContents(path string) (data []byte, stat fsapi.Stat, rev uint64, ok bool) {
	s := c.shard(path)
	s.mu.Lock()
	if e := s.count(s.get(path, kindContents)); e != nil {
		data, stat, rev, ok = e.data, e.stat, e.rev, true
	}
	s.mu.Unlock()
	return data, stat, rev, ok
}

// PutContents caches a file's contents and stat read at rev, and says
// whether it did (see the package documentation for when it refuses). It
// copies data.
func (c *Cache) PutContents(path string, rev uint64, data []byte, stat fsapi.Stat) bool {
	return c.put(&entry{path: path, kind: kindContents, rev: rev, data: bytes.Clone(data), stat: stat})
}

// GetStat returns a node's cached stat, from a stat or a contents entry
// (the newer if both exist), and the revision it was read at.
func (c *Cache) GetStat(path string) (stat fsapi.Stat, rev uint64, ok bool) {
	s := c.shard(path)
	s.mu.Lock()
	e := s.get(path, kindStat)
	if f := s.get(path, kindContents); f != nil && (e == nil || f.rev > e.rev) {
		e = f
	}
	if s.count(e) != nil {
		stat, rev, ok = e.stat, e.rev, true
	}
	s.mu.Unlock()
	return stat, rev, ok
}

// PutStat caches a node's stat read at rev, and says whether it did.
func (c *Cache) PutStat(path string, rev uint64, stat fsapi.Stat) bool {
	return c.put(&entry{path: path, kind: kindStat, rev: rev, stat: stat})
}

// GetAbsent says whether the cache knows that no node has the name path, and
// the revision at which that was read.
func (c *Cache) GetAbsent(path string) (rev uint64, ok bool) {
	s := c.shard(path)
	s.mu.Lock()
	if e := s.count(s.get(path, kindAbsent)); e != nil {
		rev, ok = e.rev, true
	}
	s.mu.Unlock()
	return rev, ok
}

// PutAbsent caches that no node had the name path at rev, and says whether
// it did.
func (c *Cache) PutAbsent(path string, rev uint64) bool {
	return c.put(&entry{path: path, kind: kindAbsent, rev: rev})
}

// GetDir returns a directory's cached listing and the revision it was read
// at. The listing is shared: do not modify it.
func (c *Cache) GetDir(path string) (children []fsapi.DirEntry, rev uint64, ok bool) {
	s := c.shard(path)
	s.mu.Lock()
	if e := s.count(s.get(path, kindDir)); e != nil {
		children, rev, ok = e.dir, e.rev, true
	}
	s.mu.Unlock()
	return children, rev, ok
}

// PutDir caches a directory's listing read at rev, and says whether it did.
// It copies children.
func (c *Cache) PutDir(path string, rev uint64, children []fsapi.DirEntry) bool {
	return c.put(&entry{path: path, kind: kindDir, rev: rev, dir: slices.Clone(children)})
}

// GetHandle returns what reopening path needs and the revision it was read
// at.
func (c *Cache) GetHandle(path string) (h Handle, rev uint64, ok bool) {
	s := c.shard(path)
	s.mu.Lock()
	if e := s.count(s.get(path, kindHandle)); e != nil {
		h, rev, ok = Handle{Instance: e.instance, Stat: e.stat}, e.rev, true
	}
	s.mu.Unlock()
	return h, rev, ok
}

// PutHandle caches what reopening path needs, read at rev, and says whether
// it did.
func (c *Cache) PutHandle(path string, rev uint64, h Handle) bool {
	return c.put(&entry{path: path, kind: kindHandle, rev: rev, instance: h.Instance, stat: h.Stat})
}

func (c *Cache) put(e *entry) bool {
	e.setSize()
	return c.shard(e.path).put(e)
}

// Invalidate applies an invalidation of path at rev: it forgets everything
// cached about path and the listing of its parent directory (which holds
// path's stat), and refuses from now on any such reply read at or below rev.
// It does not touch the parent's own stat: a change that adds or removes a
// child changes the parent's Stat.Children, so the master invalidates the
// parent too. Invalidate works while the cache is disabled too.
func (c *Cache) Invalidate(path string, rev uint64) {
	c.shard(path).invalidate(path, rev)
	if path != fsapi.Root {
		dir := fsapi.Parent(path)
		c.shard(dir).invalidateChild(dir, rev)
	}
}

// Flush forgets every entry and refuses from now on every reply read at or
// below rev: call it after a master fail-over, with the newest revision the
// client has seen, because invalidations may have been lost. Invalidation
// marks newer than rev are kept.
func (c *Cache) Flush(rev uint64) {
	for i := range c.shards {
		c.shards[i].flush(rev)
	}
}

// Disable forgets every entry; until Enable, Gets miss and Puts are refused
// (a session in jeopardy). Invalidate still records what it is told.
func (c *Cache) Disable() { c.setDisabled(true) }

// Enable lets a disabled cache cache again (the session is safe). Enabling
// an enabled cache does nothing.
func (c *Cache) Enable() { c.setDisabled(false) }

func (c *Cache) setDisabled(disabled bool) {
	for i := range c.shards {
		c.shards[i].setDisabled(disabled)
	}
}

// Len returns the number of entries cached.
func (c *Cache) Len() int {
	n, _ := c.sizes()
	return n
}

// Bytes returns the bytes the cached entries account for (see
// Config.MaxBytes).
func (c *Cache) Bytes() int64 {
	_, b := c.sizes()
	return b
}

func (c *Cache) sizes() (n int, bytes int64) {
	for i := range c.shards {
		sn, sb := c.shards[i].sizes()
		n, bytes = n+sn, bytes+sb
	}
	return n, bytes
}

// Stats returns a snapshot of the counters, summed over the shards.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		st.add(c.shards[i].snapshot())
	}
	return st
}
