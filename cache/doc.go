// Package cache is hasp's client-side cache. It keeps file contents (with
// their stat), stats alone, the absence of names, directory listings and
// what reopening a handle needs (Handle), in memory, keyed by the path
// inside the cell ("/a/b") and tagged with the revision (Raft index) each
// reply was read at.
//
// It owns the entries, their LRU bound and the rules that decide whether a
// reply may be cached. It has no network, no goroutines and no clock, and
// imports only fsapi: cellclient asks it first on every read, feeds it the
// replies it reads from the master, and passes on the invalidations,
// fail-overs and jeopardy it learns of.
//
// # Revision rules
//
// The cache never updates an entry, it only forgets it, and it never caches
// a reply that may be older than an invalidation it has been told about (a
// read reply and an invalidation can cross). The rules:
//
//  1. Every Put carries the revision its reply was read at. Every
//     Invalidate(p, v) carries a revision v such that every cachable reply
//     showing p before the change was read at or below v. The master gets
//     this by sending as v the revision it has applied when it makes p
//     uncachable, and by flagging the replies it serves while p is
//     uncachable; cellclient must not Put those.
//  2. Every node whose Stat a change alters is invalidated. A create or
//     delete alters the parent's Stat.Children too, so the master
//     invalidates the parent as well.
//  3. Invalidate(p, v) forgets everything cached about p and the listing of
//     p's parent (a listing holds each child's stat), and records two marks:
//     p was invalidated at v, and a child of parent(p) was invalidated at v.
//     It is not recursive.
//  4. A Put of a reply about p read at r is refused (Stats.Stale) if r is at
//     or below the floor or p's mark, or, for a listing, p's child mark, or
//     if an entry of the same kind for p read later is cached. An accepted
//     Put replaces the entry of the same kind. GetStat answers from a stat
//     or a contents entry, whichever was read later.
//  5. Flush(v) forgets every entry and raises the floor to v. After a master
//     fail-over invalidations may have been lost, so every reply read at or
//     below the newest revision the client has seen is suspect.
//  6. Disable forgets every entry; until Enable every Get misses and every
//     Put is refused (Stats.Refused). Invalidate still records marks while
//     the cache is disabled, so a reply that crossed an invalidation during
//     jeopardy is still refused after Enable.
//
// So a hit is always a reply read after every invalidation of its path that
// the cache has received. Since the master applies a change only after the
// client has acknowledged its invalidation (or the session has expired, or a
// fail-over flushed the cache), hits are linearizable.
//
// # Bounded marks
//
// A mark must outlive the entries it forgets: it is the crossing reply,
// arriving later, that it refuses. Marks cannot be kept forever, so each
// shard keeps at most MaxMarks/Shards, in the order they were last set. On
// overflow it forgets the least recently set mark and raises the shard's
// floor to that mark's revisions. The floor refuses everything the
// forgotten mark refused, and more: any reply about any path of the shard
// read at or below it. Since revisions only grow, the forgotten mark is
// about the shard's oldest invalidation, so the floor trails far behind the
// replies still in flight, and the extra replies it refuses are old ones.
// This is conservative (it never lets a stale reply in) and needs no help
// from the caller. The alternative, a ForgetBefore(rev) watermark that
// cellclient computes from its in-flight reads, would keep fewer marks at
// the cost of tracking those reads; it can be added if MarksForgotten
// turns out to refuse useful replies.
//
// # Concurrency
//
// A Cache is safe for concurrent use. It is split into shards by a hash of
// the path, each with its own mutex, LRU list and share of MaxBytes. A call
// holds one shard's mutex at a time: Invalidate takes the path's shard and
// then the parent's, and Flush, Disable, Enable, Len, Bytes and Stats take
// them all in turn. Such multi-shard calls are not atomic, so a concurrent
// Get may see some shards before the call and some after. That only turns
// hits into misses, which are always allowed.
//
// One mutex would do on a small client: on the 2-core development machine
// (BenchmarkGetParallel) 8 goroutines read 100-byte cached files at 20 to 29
// million reads a second (35–50 ns each) with one shard or with 16, the
// spread being noise. Shards are for clients with many cores, and cost a
// hash per call. Eviction is least recently used within a
// shard, so it is exactly LRU only with Config.Shards = 1.
//
// Get methods return the cached contents and listings themselves. They are
// never written after Put, and callers must not modify them. Put methods
// copy what they are given, so callers may reuse their buffers.
//
// # Usage
//
//	c, err := cache.New(nil) // 64 MiB, 16 shards
//	if err != nil { ... }
//	// Reading a file:
//	if data, stat, _, ok := c.GetContents(path); ok {
//		return data, stat, nil
//	}
//	data, stat, rev, cachable, err := readFromMaster(ctx, path)
//	if err == nil && cachable {
//		c.PutContents(path, rev, data, stat)
//	}
//	// For each invalidation on a KeepAlive reply, before acknowledging it:
//	c.Invalidate(inv.Path, inv.Revision)
//	// On jeopardy, and when the session is safe again:
//	c.Disable()
//	c.Enable()
//	// On a master fail-over event:
//	c.Flush(newestRevisionSeen)
package cache
