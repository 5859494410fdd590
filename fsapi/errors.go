package fsapi

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test for them with errors.Is; the server's answers are
// mapped back to these by fsapi/wire, so they cross the network intact.
var (
	// ErrNotExist: no node has that name (or the handle's instance is gone).
	ErrNotExist = errors.New("fsapi: node does not exist")
	// ErrExist: Open with CreateMust found the name already taken.
	ErrExist = errors.New("fsapi: node already exists")
	// ErrNotEmpty: Delete of a directory that still has children.
	ErrNotEmpty = errors.New("fsapi: directory not empty")
	// ErrGenerationMismatch: a compare-and-swap saw another content generation.
	ErrGenerationMismatch = errors.New("fsapi: content generation mismatch")
	// ErrTooLarge: contents exceed the cell's content limit, or a message
	// exceeds the frame limit.
	ErrTooLarge = errors.New("fsapi: too large")
	// ErrBadName: a malformed name; the message says what is wrong.
	ErrBadName = errors.New("fsapi: bad name")
	// ErrBadRequest: a malformed or contradictory request.
	ErrBadRequest = errors.New("fsapi: bad request")
	// ErrSessionExpired: the session ended; every later call fails with it.
	ErrSessionExpired = errors.New("fsapi: session expired")
	// ErrHandleClosed: the handle was closed or poisoned.
	ErrHandleClosed = errors.New("fsapi: handle closed")
	// ErrHandleInvalid: the node the handle was opened on was deleted
	// (possibly recreated since: a handle belongs to one instance).
	ErrHandleInvalid = errors.New("fsapi: handle invalid: node instance deleted")
	// ErrPermission: the caller lacks the needed permission.
	ErrPermission = errors.New("fsapi: permission denied")
	// ErrNotDir: a directory operation on a file, or a parent that is a file.
	ErrNotDir = errors.New("fsapi: not a directory")
	// ErrIsDir: a file operation on a directory.
	ErrIsDir = errors.New("fsapi: is a directory")
	// ErrWrongCell: a name that names another cell than the connected one.
	ErrWrongCell = errors.New("fsapi: name is in another cell")
	// ErrUnavailable: no master could be reached before the deadline.
	ErrUnavailable = errors.New("fsapi: cell unavailable")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("fsapi: client closed")

	// Lock errors (DESIGN.md §7).

	// ErrHeld: a TryAcquire found the lock held in a conflicting mode, or
	// requests queued ahead of it; or a Delete found the node locked by
	// another session.
	ErrHeld = errors.New("fsapi: lock is held")
	// ErrLockDelay: a TryAcquire found the lock free but in lock-delay
	// after its holder was lost (session expiry); the message says until
	// when.
	ErrLockDelay = errors.New("fsapi: lock is in lock-delay")
	// ErrNotHeld: Release (or a sequencer) by a handle that does not hold
	// the lock.
	ErrNotHeld = errors.New("fsapi: lock not held")
	// ErrNoWaiter: the lock request was withdrawn (cancelled, or dropped
	// with its session or node) before it was granted.
	ErrNoWaiter = errors.New("fsapi: no such lock request")
	// ErrStaleSequencer: a sequencer names a lock generation (or node
	// instance) that is no longer current, or older than one already seen.
	ErrStaleSequencer = errors.New("fsapi: sequencer is stale")

	// ErrCompacted: a watch asked for events older than the replica's
	// event history still holds. See CompactedError for the revision to
	// resume from after re-reading.
	ErrCompacted = errors.New("fsapi: events compacted")

	// ErrSequenceExhausted: a sequential create in a directory whose
	// sequence counter has passed MaxSequence. Create a new directory.
	ErrSequenceExhausted = errors.New("fsapi: sequence counter exhausted")
	// ErrBehind: a replica asked for a follower read has not applied the
	// revision the client has already seen (its token) and did not catch
	// up within a short wait, or cannot tell whether the session exists.
	// The client asks the master instead; applications see it only if
	// the master, too, stays behind until the call's context ends.
	ErrBehind = errors.New("fsapi: replica is behind the client's revision")
)

// CompactedError says a watch asked for events from a revision older than
// the oldest the master's event history still holds complete (Floor). The
// watcher must re-read the state it follows, which then reflects at least
// revision Current, and watch again from Current+1. It unwraps to
// ErrCompacted.
type CompactedError struct {
	From    uint64 // the revision asked for
	Floor   uint64 // the oldest revision still held complete
	Current uint64 // the master's applied revision when it answered
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("fsapi: events compacted: revision %d is older than the oldest kept (%d); current revision is %d: "+
		"re-read, then watch from %d", e.From, e.Floor, e.Current, e.Current+1)
}

func (e *CompactedError) Unwrap() error { return ErrCompacted }

// NotMasterError is returned by a replica that is not the master. Leader
// is the master's address when the replica knows it, else "".
type NotMasterError struct {
	Leader string
}

func (e *NotMasterError) Error() string {
	if e.Leader == "" {
		return "fsapi: not master; master unknown"
	}
	return "fsapi: not master; master is " + e.Leader
}

// WrongEpochError rejects a call made in an older master epoch.
type WrongEpochError struct {
	Epoch uint64 // the master's current epoch
}

func (e *WrongEpochError) Error() string {
	return fmt.Sprintf("fsapi: wrong epoch; master epoch is %d", e.Epoch)
}

// AmbiguousError says a write may or may not have been applied. cellclient
// retries writes exactly-once and so returns it only when the caller's
// context ended while the outcome was unknown.
type AmbiguousError struct {
	Err error // the cause
}

func (e *AmbiguousError) Error() string {
	return "fsapi: outcome unknown (write may or may not have been applied): " + e.Err.Error()
}

func (e *AmbiguousError) Unwrap() error { return e.Err }
