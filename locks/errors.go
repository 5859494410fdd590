package locks

import "github.com/haspcell/hasp/fsapi"

// Sentinel errors, the same values as fsapi's (so they cross the network
// through fsapi/wire). Test for them with errors.Is.
var (
	// ErrHeld: a TryAcquire found the lock held in a conflicting mode, or
	// requests queued ahead of it.
	ErrHeld = fsapi.ErrHeld
	// ErrLockDelay: a TryAcquire found the lock free but in lock-delay
	// after its holder was lost. The error is a *DelayError saying until when.
	ErrLockDelay = fsapi.ErrLockDelay
	// ErrNotHeld: Release (or Sequencer) by a holder that does not hold the lock.
	ErrNotHeld = fsapi.ErrNotHeld
	// ErrNoWaiter: Cancel of a waiter id that is neither queued nor holding.
	ErrNoWaiter = fsapi.ErrNoWaiter
	// ErrStaleSequencer: a sequencer names a lock generation (or node
	// instance) that is no longer current, or older than one already seen.
	ErrStaleSequencer = fsapi.ErrStaleSequencer
)

// DelayError is returned by a TryAcquire of a lock in lock-delay. It wraps
// ErrLockDelay. Until is the end of the lock-delay (Unix nanoseconds, the
// clock of the caller's now): a retry at or after Until will not see it.
type DelayError struct {
	Path  string
	Until int64
}

func (e *DelayError) Error() string {
	return ErrLockDelay.Error() + ": " + e.Path + " is free but may not be acquired until " +
		unixTime(e.Until) + " (a holder was lost without releasing it)"
}

func (e *DelayError) Unwrap() error { return ErrLockDelay }
