// Package lease is hasp's lease arithmetic, for both sides of a session and
// for the master lease, plus the Clock interface that lets tests control
// time.
//
// It is pure: no goroutines, no IO, and no clock of its own (every instant
// is a parameter; Clock is only an interface the callers use). It imports
// only the standard library.
//
// # Master lease
//
// hashicorp/raft followers are sticky: one that heard from its leader less
// than HeartbeatTimeout ago rejects other candidates. A master that sent an
// entry at t0 which a majority then acknowledged therefore knows no other
// master can be elected before t0 + HeartbeatTimeout, by any clock that runs
// within the rate bound ε of real time. MasterLength gives the lease length
// L = HeartbeatTimeout·(1−ε) − δ, and Master tracks the lease: Renewed(t0)
// on each commit, Valid(now) before serving a read from memory.
//
// # Session lease
//
// The master extends a session's lease to reply + TTL when it answers a
// KeepAlive. The client cannot see the reply's send time, only bound it from
// below by its own send time plus the time the master says it held the
// call, so ClientEnd is conservative by construction. Past the client's
// lease end the session is in jeopardy; past GraceEnd it is expired.
//
// # Usage
//
//	L := lease.MasterLength(500*time.Millisecond, lease.DefaultEpsilon, 20*time.Millisecond)
//	var ml lease.Master
//	ml.Start(term, becameLeaderAt.Add(L)) // wait out any older master's lease
//	t0 := clock.Now()
//	// ... commit something ...
//	ml.Renewed(term, t0, L)
//	if ml.Valid(term, clock.Now()) { /* serve from memory */ }
package lease
