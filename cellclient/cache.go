package cellclient

import (
	"sync"
	"sync/atomic"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// clientCache is the session's consistent cache (DESIGN.md §6): the cache
// package's entries plus what ties them to the session.
//
//   - A reply is cached only if the master said Cacheable (it registered
//     the session and will invalidate before changing the node) and
//     nothing that empties the cache happened while the call was out: a
//     read takes a token (the generation) before it is sent and its reply
//     is put only if the generation is unchanged. Flushes, jeopardy and a
//     new epoch bump the generation.
//   - Invalidations arrive on KeepAlive replies. They are applied before
//     the next KeepAlive acknowledges them; a reply that crosses one is
//     refused by revision (cache's marks).
//   - Jeopardy empties and disables the cache; safe enables it again. A
//     new master epoch flushes it: invalidations from the old master may
//     have been lost. The next KeepAlive tells the new master the cache was
//     flushed at its epoch, and until then it holds back writes.
type clientCache struct {
	c      *cache.Cache
	maxRev atomic.Uint64 // newest revision seen in any reply

	mu      sync.Mutex // protects following fields
	gen     uint64
	flushed uint64 // epoch at which the cache was last emptied
	// ack is the highest invalidation applied of those the master of
	// epoch ackEpoch sent (each master numbers its own).
	ack, ackEpoch uint64
}

func newClientCache(maxBytes int64) (*clientCache, error) {
	c, err := cache.New(&cache.Config{MaxBytes: maxBytes})
	if err != nil {
		return nil, err
	}
	return &clientCache{c: c}, nil
}

// token is taken before a read is sent.
func (cc *clientCache) token() uint64 {
	if cc == nil {
		return 0
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.gen
}

// beforePut, if set (by tests), runs before a cacheable reply is put.
var beforePut func()

// put runs fn (a Put into the cache) if the reply may be cached.
func (cc *clientCache) put(tok uint64, hdr *wire.RespHeader, fn func(rev uint64)) {
	if cc == nil {
		return
	}
	cc.seen(hdr.Revision)
	if !hdr.Cacheable {
		return
	}
	if beforePut != nil {
		beforePut()
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.gen == tok {
		fn(hdr.Revision)
	}
}

func (cc *clientCache) seen(rev uint64) {
	for {
		cur := cc.maxRev.Load()
		if rev <= cur || cc.maxRev.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// invalidate applies the invalidations a KeepAlive answer of epoch brought.
func (cc *clientCache) invalidate(invs []wire.Invalidation, epoch uint64) {
	if cc == nil || len(invs) == 0 {
		return
	}
	for _, inv := range invs {
		cc.c.Invalidate(inv.Path, inv.Revision)
	}
	cc.mu.Lock()
	if epoch > cc.ackEpoch {
		cc.ack, cc.ackEpoch = 0, epoch
	}
	if epoch == cc.ackEpoch {
		cc.ack = max(cc.ack, invs[len(invs)-1].Seq)
	}
	cc.mu.Unlock()
}

// keepAliveFields are what a KeepAlive reports about the cache.
func (cc *clientCache) keepAliveFields() (ack, ackEpoch, flushed uint64) {
	if cc == nil {
		return 0, 0, 0
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.ack, cc.ackEpoch, cc.flushed
}

// newEpoch flushes the cache for a new master (first: only records it).
func (cc *clientCache) newEpoch(old, epoch uint64) {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.gen++
	if old != 0 {
		cc.c.Flush(cc.maxRev.Load())
	}
	cc.flushed = max(cc.flushed, epoch)
}

func (cc *clientCache) disable() {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.gen++
	cc.c.Disable()
}

func (cc *clientCache) enable() {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.gen++
	cc.c.Enable()
}

// CacheStats reports what the client's cache did (zero when caching is
// off).
func (c *Client) CacheStats() cache.Stats {
	if c.cache == nil {
		return cache.Stats{}
	}
	return c.cache.c.Stats()
}

// cacheUsable says whether cached entries may be served now: caching is
// on and the local lease has not run out. The session's state turns to
// jeopardy (disabling the cache) when a timer fires after the lease's end;
// checking the lease itself here closes the gap while that timer is late,
// during which the master may already have applied a change without this
// client's acknowledgement.
func (c *Client) cacheUsable() bool {
	return c.cache != nil && c.clock.Now().UnixNano() < c.leaseEndNanos.Load()
}

// cachedStat returns a node's cached stat.
func (c *Client) cachedStat(path string) (fsapi.Stat, bool) {
	if !c.cacheUsable() {
		return fsapi.Stat{}, false
	}
	st, _, ok := c.cache.c.GetStat(path)
	return st, ok
}

// cachedAbsent says whether the cache knows path does not exist.
func (c *Client) cachedAbsent(path string) bool {
	if !c.cacheUsable() {
		return false
	}
	_, ok := c.cache.c.GetAbsent(path)
	return ok
}
