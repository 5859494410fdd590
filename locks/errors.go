package locks

import "errors"

// Sentinel errors. Test for them with errors.Is. They belong in fsapi (with
// the other sentinels, so fsapi/wire can carry them across the network) and
// are defined here only until fsapi grows them.
var (
	// ErrHeld: a TryAcquire found the lock held in a conflicting mode, or
	// requests queued ahead of it.
	ErrHeld = errors.New("locks: lock is held")
	// ErrLockDelay: a TryAcquire found the lock free but in lock-delay
	// after its holder was lost. The error is a *DelayError saying until when.
	ErrLockDelay = errors.New("locks: lock is in lock-delay")
	// ErrNotHeld: Release (or Sequencer) by a holder that does not hold the lock.
	ErrNotHeld = errors.New("locks: lock not held")
	// ErrNoWaiter: Cancel of a waiter id that is neither queued nor holding.
	ErrNoWaiter = errors.New("locks: no such waiter")
	// ErrStaleSequencer: a sequencer names a lock generation (or node
	// instance) that is no longer current, or older than one already seen.
	ErrStaleSequencer = errors.New("locks: sequencer is stale")
)

// DelayError is returned by a TryAcquire of a lock in lock-delay. It wraps
// ErrLockDelay. Until is the end of the lock-delay (Unix nanoseconds, the
// clock of the caller's now): a retry at or after Until will not see it.
type DelayError struct {
	Path  string
	Until int64
}

func (e *DelayError) Error() string {
	return "locks: lock is in lock-delay: " + e.Path + " is free but may not be acquired until " +
		unixTime(e.Until) + " (a holder was lost without releasing it)"
}

func (e *DelayError) Unwrap() error { return ErrLockDelay }
