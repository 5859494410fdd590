// Package fsm is hasp's replicated state machine: the hashicorp/raft FSM
// that every replica of a cell applies the committed log to.
//
// # What it owns
//
//   - The namespace: every file and directory, in memory, in a persistent
//     radix tree (github.com/hashicorp/go-immutable-radix/v2) of immutable
//     *Node values. The root "/" always exists. A node's metadata follows
//     fsapi.Stat: Instance, CreatedRevision and ModifiedRevision are Raft
//     indexes, ContentGeneration starts at 1 and is bumped on every write,
//     Checksum is CRC-64/ECMA of the contents.
//   - Sessions: id (the index of the entry that created it), lease length,
//     client name, and the ephemeral nodes it owns. Closing or expiring a
//     session deletes its childless ephemeral nodes; an ephemeral directory
//     is also deleted when it becomes empty.
//   - Locks (lock.go): every node is a reader/writer lock, kept in one
//     locks.Table beside the namespace. Acquire, Release, CancelWait and
//     LockTick drive it with the leader's stamped time; closing or expiring
//     a session calls SessionLost (starting lock-delays) before deleting its
//     ephemerals; deleting a node forgets its lock and drops its waiters.
//     Each grant sets the node's Stat.LockGeneration, and Result.Grants
//     lists the grants made to waiters so that the master notifies exactly
//     them.
//   - Exactly-once writes: per session, the Result of every write that the
//     client has not yet acknowledged (WriteMeta.Seq, WriteMeta.AckBelow), so
//     a retried write is answered from the table instead of applied twice.
//
// The log format (command.go) is a type byte plus a msgpack body and is
// separate from the client wire format. Snapshots stream msgpack records
// with the same codec; identical state gives identical snapshot bytes.
//
// # What it must not do
//
// Apply is deterministic: the package reads no clock (every time it needs
// is stamped into the command by the leader), does no IO except the
// snapshot stream it is handed, uses no randomness and no map order. It
// does not import fsapi/wire (the log format must not follow the protocol)
// and does not touch badger (master/raftstore owns the log). Domain errors
// are Results, never panics; only an undecodable command without the
// IgnoreUnknown bit panics, because skipping it would diverge replicas.
//
// # Concurrency
//
// raft calls Apply, Snapshot and Restore from one goroutine; Persist of a
// snapshot runs concurrently with later Applies. View, AppliedIndex,
// WaitApplied, Session and Sessions may be called from any number of
// goroutines at any time, and so may LockState, NextLockDeadline and
// CheckSequencer. The namespace and applied index are published
// together as one immutable *View through an atomic pointer, so View is
// O(1) and lock-free and a View never changes once taken. Sessions and the
// lock table are guarded by a sync.RWMutex. WaitApplied waiters share one channel that is
// closed on the next publish.
//
// # Usage
//
//	f := fsm.New(fsm.Config{}) // ContentLimit defaults to 256 KiB
//	r, _ := raft.NewRaft(conf, f, logs, stable, snaps, trans)
//
//	data, _ := fsm.Encode(fsm.CmdOpen, &fsm.Open{
//		Meta: fsm.WriteMeta{Session: sid, Seq: 7, AckBelow: 5, Time: now},
//		Path: "/service/leader", Create: uint8(fsapi.CreateMust), Contents: []byte("me"),
//	})
//	fut := r.Apply(data, timeout)
//	if err := fut.Error(); err != nil { ... } // raft failed: outcome unknown
//	res := fut.Response().(*fsm.Result)
//	if err := res.Err(); errors.Is(err, fsapi.ErrExist) { ... }
//
//	v := f.View() // lock-free read at v.Revision()
//	n, ok := v.Get("/service/leader")
//	kids := v.List("/service")
//	_ = f.WaitApplied(ctx, idx) // e.g. the ReadIndex path
package fsm
