// Package raftstore implements hashicorp/raft's raft.LogStore and
// raft.StableStore on top of a badger v4 database, so one Store can be
// passed to raft.NewRaft as both the log store and the stable store.
//
// # What it owns
//
// A Store exclusively owns one badger directory (Options.Dir): the raft log
// entries, raft's stable keys (current term, last vote) and a background
// goroutine that runs badger value-log garbage collection every
// Options.GCInterval. Keys are namespaced by a one-byte prefix: log entries
// are stored under prefix 0x01 followed by the big-endian index (so badger
// key order is index order) and stable keys under prefix 0x02 followed by
// the raw key. Log entries use a small versioned binary encoding of every
// raft.Log field; undecodable records yield errors wrapping ErrCorrupt.
//
// Badger is tuned for a small footprint (two 8 MiB memtables, small caches
// and tables, no compression, two compactors) because several stores may
// live in one process; expect a heap of a few tens of MiB per store. Every
// write is fsynced (SyncWrites): a StoreLogs call is one badger write batch
// and normally one fsync.
//
// # What it must not do
//
// It does not take snapshots, interpret log contents, enforce contiguous
// indexes (gaps are allowed, as raft.LogStore permits) or share its
// directory: badger holds a lock file, so a second Open of the same Dir,
// in this or another process, fails until the first Store is closed. The
// missing-key error of Get and GetUint64 is ErrKeyNotFound, whose text must
// stay exactly "not found" because raft compares err.Error() to it; other
// errors are prefixed "raftstore: ". GetLog reports a missing index with
// raft.ErrLogNotFound itself, unwrapped.
//
// # Concurrency
//
// All methods are safe for concurrent use, as raft requires (it reads logs
// from replication goroutines while the main loop appends). Each call is a
// badger transaction or write batch, so readers see either all or none of a
// single-transaction StoreLogs. Close waits for in-flight calls and the GC
// goroutine, is idempotent, and makes every later call return ErrClosed.
//
// # Usage
//
//	store, err := raftstore.Open(raftstore.DefaultOptions(filepath.Join(dataDir, "raft")))
//	if err != nil {
//		return err
//	}
//	defer store.Close() // after raft.Shutdown().Error()
//	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
package raftstore
