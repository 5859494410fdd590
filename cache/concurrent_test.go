package cache_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
)

// liveServer is a concurrent simulated master for files /d/f0.. in one
// directory. Each file's value is the revision of its last change, so a
// reply shows how new it is.
type liveServer struct {
	mu      sync.Mutex // protects following fields
	rev     uint64
	last    map[string]uint64 // revision of each file's last change
	exists  map[string]bool
	busy    map[string]bool // invalidated, change not yet applied
	busyDir int             // changes pending under /d
}

// change invalidates p (and /d, whose Stat.Children a create or delete
// changes), then applies the change at a new revision, as the master does.
func (s *liveServer) change(c *cache.Cache, p string, toggle bool) {
	s.mu.Lock()
	if s.busy[p] {
		s.mu.Unlock()
		return
	}
	s.busy[p] = true
	s.busyDir++
	v := s.rev
	s.mu.Unlock()
	c.Invalidate(p, v)
	if toggle {
		c.Invalidate("/d", v)
	}
	runtime.Gosched()
	s.mu.Lock()
	s.rev++
	s.last[p] = s.rev
	s.exists[p] = s.exists[p] != toggle
	s.busy[p] = false
	s.busyDir--
	s.mu.Unlock()
}

// read returns a cachable reply for p, or false while p is busy.
func (s *liveServer) read(p string) (rev uint64, exists bool, last uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[p] {
		return 0, false, 0, false
	}
	return s.rev, s.exists[p], s.last[p], true
}

// list returns a cachable listing of /d, or false while a change under it
// is pending.
func (s *liveServer) list(paths []string) (rev uint64, ls []fsapi.DirEntry, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busyDir > 0 {
		return 0, nil, false
	}
	for _, p := range paths {
		if s.exists[p] {
			ls = append(ls, fsapi.DirEntry{Name: fsapi.Base(p), Stat: fsapi.Stat{ModifiedRevision: s.last[p]}})
		}
	}
	return s.rev, ls, true
}

// newest returns the revision of the last change to any of paths.
func (s *liveServer) newest(paths ...string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, p := range paths {
		n = max(n, s.last[p])
	}
	return n
}

// TestConcurrent runs writers, readers (whose replies cross invalidations),
// getters, and a flusher at once. A Get that hits must be no older than the
// last change completed before it began: its revision is at least that
// change's, and the contents it returns say so.
func TestConcurrent(t *testing.T) {
	s := seed(t)
	paths := make([]string, 8)
	for i := range paths {
		paths[i] = fmt.Sprintf("/d/f%d", i)
	}
	srv := &liveServer{last: map[string]uint64{}, exists: map[string]bool{}, busy: map[string]bool{}}
	c := newCache(t, &cache.Config{Shards: 4, MaxBytes: 64 * cache.EntryOverhead, MaxMarks: 8})
	ops := 5000
	if testing.Short() {
		ops = 500
	}
	var (
		writers, others sync.WaitGroup
		done            atomic.Bool
		start           = make(chan struct{})
		stream          uint64 // one random stream per goroutine
	)
	rng := func() *rand.Rand { stream++; return rand.New(rand.NewPCG(s, stream)) }
	pick := func(rng *rand.Rand) string { return paths[rng.IntN(len(paths))] }
	for range 2 {
		rng := rng()
		writers.Go(func() {
			<-start
			for range ops {
				srv.change(c, pick(rng), rng.IntN(3) == 0)
			}
		})
	}
	loop := func(f func(rng *rand.Rand)) { // runs f until the writers are done
		rng := rng()
		others.Go(func() {
			<-start
			for !done.Load() {
				f(rng)
			}
		})
	}
	for range 4 {
		loop(func(rng *rand.Rand) { putReply(c, srv, rng, pick(rng), paths) })
		loop(func(rng *rand.Rand) {
			if err := checkGet(c, srv, rng, pick(rng), paths); err != nil {
				t.Error(err)
			}
		})
	}
	loop(func(rng *rand.Rand) {
		switch rng.IntN(1000) {
		case 0:
			c.Flush(srv.newest(paths...))
		case 1:
			c.Disable()
			runtime.Gosched()
			c.Enable()
		}
		runtime.Gosched()
	})
	close(start)
	writers.Wait()
	done.Store(true)
	others.Wait()
	st := c.Stats()
	t.Logf("%+v", st)
	if st.Hits == 0 || st.Stale == 0 {
		t.Errorf("the run did not exercise hits and stale replies: %+v", st)
	}
	if c.Bytes() > 64*cache.EntryOverhead {
		t.Errorf("Bytes %d above MaxBytes", c.Bytes())
	}
}

// putReply reads p (or the listing) from the server and Puts the reply,
// after a pause that lets invalidations cross it.
func putReply(c *cache.Cache, srv *liveServer, rng *rand.Rand, p string, paths []string) {
	if rng.IntN(8) == 0 {
		if rev, ls, ok := srv.list(paths); ok {
			runtime.Gosched()
			c.PutDir("/d", rev, ls)
		}
		return
	}
	rev, exists, last, ok := srv.read(p)
	if !ok {
		return
	}
	runtime.Gosched()
	switch {
	case !exists:
		c.PutAbsent(p, rev)
	case rng.IntN(2) == 0:
		c.PutStat(p, rev, fsapi.Stat{ModifiedRevision: last})
	default:
		c.PutContents(p, rev, binary.BigEndian.AppendUint64(nil, last), fsapi.Stat{ModifiedRevision: last})
	}
}

// checkGet looks p (or the listing) up and checks a hit against the last
// change completed before the lookup began.
func checkGet(c *cache.Cache, srv *liveServer, rng *rand.Rand, p string, paths []string) error {
	var rev, shows uint64 // the reply's revision, and the change it shows
	var ok bool
	var before uint64
	switch rng.IntN(4) {
	case 0:
		before = srv.newest(paths...)
		var ls []fsapi.DirEntry
		if ls, rev, ok = c.GetDir("/d"); ok {
			for _, e := range ls {
				shows = max(shows, e.Stat.ModifiedRevision)
			}
			p = "/d"
		}
	case 1:
		before = srv.newest(p)
		rev, ok = c.GetAbsent(p)
	case 2:
		before = srv.newest(p)
		var st fsapi.Stat
		st, rev, ok = c.GetStat(p)
		shows = st.ModifiedRevision
	default:
		before = srv.newest(p)
		var data []byte
		var st fsapi.Stat
		if data, st, rev, ok = c.GetContents(p); ok {
			if shows = binary.BigEndian.Uint64(data); shows != st.ModifiedRevision {
				return fmt.Errorf("contents of %s say %d, stat says %d", p, shows, st.ModifiedRevision)
			}
		}
	}
	if ok && (rev < before || shows > rev) {
		return fmt.Errorf("hit for %s read at %d showing change %d; the last change before the Get was at %d",
			p, rev, shows, before)
	}
	return nil
}
