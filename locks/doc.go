// Package locks is hasp's lock table: the pure rules for Chubby-style
// advisory reader/writer locks on nodes, lock-delay and sequencers
// (DESIGN.md §7).
//
// # What it owns
//
//   - Who holds each lock: one Exclusive holder or any number of Shared
//     holders. A holder is a handle of a session (Holder).
//   - Who waits: a FIFO queue per lock. A request is granted at once only
//     if nobody is queued ahead of it, so a shared request never overtakes a
//     queued exclusive one. A release grants the next waiter, or every
//     consecutive shared waiter at the head of the queue, and nobody else
//     (no herd): each operation returns exactly the Grants it made, and the
//     caller notifies exactly those holders.
//   - Lock generations: bumped on every free → held transition, strictly
//     increasing per path for as long as the table knows the path.
//   - Lock-delay: when a holder is lost (SessionLost, HandleLost) rather
//     than released, the lock cannot go free → held until now + that
//     holder's LockDelay. Release, Cancel and HandleClosed never start one.
//     Waiters queued meanwhile are granted by Tick once it ends.
//   - Sequencers (Sequencer, Encode, ParseSequencer, String) and checking
//     them: Table.CheckSequencer at the master; Fence for a server that only
//     remembers the newest sequencer it has seen.
//
// # What it must not do
//
// No IO, no goroutines, no clock, no randomness. Every instant is a
// parameter now (Unix nanoseconds), which the FSM takes from the leader's
// stamp on the command. Only Fence has a mutex, because servers call it from
// many goroutines; Table is driven by one goroutine (the FSM's Apply).
// Permissions, node existence and names belong to the caller: the table
// only checks that a path is well formed.
//
// # Determinism
//
// The same sequence of calls with the same arguments gives the same
// results and the same State on every replica: no result depends on map
// order (locks are visited in path order, queues in FIFO order, holders are
// kept sorted) and waiter ids come from a counter that is part of State.
// The instants need not be monotonic: a leader whose clock is behind its
// predecessor's only makes a lock-delay last longer.
//
// # Lock-delay, precisely
//
// Losing a holder sets the lock's DelayUntil to the later of its current
// value and now + the lost hold's LockDelay, even while other shared holders
// remain; while the lock is free and now < DelayUntil, nobody may take it
// (TryAcquire fails with a *DelayError saying until when; Acquire queues).
// Joining a lock that is still held in shared mode is not a free → held
// transition and is not delayed. The table does not substitute
// DefaultLockDelay: a LockDelay of 0 means none, so the Open path must turn
// "not given" into the default before it reaches the table.
//
// # How the FSM uses it
//
// master/fsm keeps one Table beside its namespace (a table keyed by path,
// not a lock inside each node: session loss must find every lock of a
// session, and the table keeps that index; the nodes stay immutable
// values). Each lock command (acquire, release, cancel, close handle) and
// each session expiry is applied by calling the matching method with the
// command's stamped time, and the returned Grants become "lock acquired"
// notifications; fsapi.Stat.LockGeneration is Table.Generation. Deleting a
// node calls Delete and fails its waiters. The leader loop watches
// NextDeadline and, when it passes, proposes a tick command stamped with
// its clock, whose Apply calls Tick. Snapshot stores State (plain data,
// locks sorted by path); Restore rebuilds the table and its indexes.
//
// # Usage
//
//	t := locks.NewTable()
//	h := locks.Holder{Session: 7, Handle: 1}
//	res, err := t.Acquire(locks.Request{Path: "/svc/leader", Holder: h,
//		Mode: locks.Exclusive, LockDelay: locks.DefaultLockDelay, Wait: true}, now)
//	notify(res.Others) // waiters whose lock-delay ended
//	switch {
//	case err != nil: // fsapi.ErrBadRequest, or for TryAcquire ErrHeld / *DelayError
//	case res.Granted: // holds it at res.Generation
//	default: // queued as res.Waiter; Cancel(path, res.Waiter, now) if its ctx ends
//	}
//	seq, _ := t.Sequencer("/svc/leader", h, nodeInstance)
//	b := seq.Encode() // hand to servers; they ParseSequencer and check
//	err = t.CheckSequencer(seq, nodeInstance) // nil while still current
//
//	grants, err := t.Release("/svc/leader", h, now)  // notify exactly grants
//	grants = t.SessionLost(7, now)                   // starts lock-delays
//	if at, ok := t.NextDeadline(); ok { /* at `at`: */ grants = t.Tick(at) }
//
//	var f locks.Fence // in a server without a session
//	if err := f.Check(seq); errors.Is(err, locks.ErrStaleSequencer) { /* refuse */ }
package locks
