package fsm

import (
	"github.com/haspcell/hasp/fsapi"
)

// Config is fixed for the life of a cell and must be the same on every
// replica (it is part of what makes Apply deterministic).
type Config struct {
	// ContentLimit is the largest file contents in bytes. Default
	// fsapi.DefaultContentLimit (256 KiB).
	ContentLimit int
	// EventHistory is how many recent change events the replica keeps in
	// memory for watches (default DefaultEventHistory). Unlike
	// ContentLimit it is the replica's own: it does not affect the
	// replicated state, and replicas may differ.
	EventHistory int
}

// Node is one file or directory as stored. Treat it as immutable: the FSM
// shares it between views and never modifies it after publishing.
type Node struct {
	Stat fsapi.Stat
	Data []byte
	// NextSequence is a directory's sequence counter: the number its next
	// sequential create takes (fsapi.SequentialName). It only increases,
	// so no number is used twice in one directory instance. Omitted from
	// the encoding when zero, so snapshots without sequential nodes are
	// unchanged.
	NextSequence uint64 `codec:",omitempty"`
}

// SessionInfo describes one live session.
type SessionInfo struct {
	ID          uint64
	Created     int64 // leader wall clock, Unix ns
	LeaseMillis int64
	ClientName  string
	Ephemerals  int  // ephemeral nodes it owns
	Caching     bool // its client caches reads
}

// Result is what Apply returns for every command (as the raft.ApplyFuture's
// Response()). Domain failures are results, not panics. It is also what the
// per-session dedup table stores, so it must be serialisable.
type Result struct {
	Stat    fsapi.Stat
	Created bool
	Session uint64 // CmdCreateSession: the new session's id
	ErrKind ErrKind
	ErrMsg  string
	// Path is the node a sequential Open created.
	Path string `codec:",omitempty"`
	// Multi has one result per op of an applied Multi. FailedOp is 1 + the
	// index of the op that failed a Multi (ErrKind and ErrMsg are its
	// error); nothing of that Multi was applied.
	Multi    []MultiResult `codec:",omitempty"`
	FailedOp int           `codec:",omitempty"`

	// Lock commands (omitted from the encoding when zero, so that the
	// snapshots of states without locks are unchanged).

	// Granted: an Acquire's requester holds the lock, at Generation.
	Granted    bool   `codec:",omitempty"`
	Generation uint64 `codec:",omitempty"`
	// Waiter: an Acquire was queued as this waiter (see CancelWait).
	Waiter uint64 `codec:",omitempty"`
	// Grants lists, in order, every lock granted to a queued waiter by the
	// command (Acquire settling a lock, Release, CancelWait, LockTick,
	// CloseSession): the master notifies exactly those holders. An
	// Acquire's own immediate grant is not listed (see Granted). It may be
	// set on a failed Result too (an Acquire settles the lock first).
	Grants []GrantInfo `codec:",omitempty"`
}

// GrantInfo is one lock granted to a waiter: Session's handle Handle now
// holds the lock on Path in Mode (a locks.Mode) at Generation. Waiter is
// the Result.Waiter the request was queued as.
type GrantInfo struct {
	Path       string
	Session    uint64
	Handle     uint64
	Mode       uint8
	Generation uint64
	Waiter     uint64
}

// ErrKind names the fsapi sentinel a failed Result maps to.
type ErrKind uint8

// ErrKind values. Never renumber: they are stored in snapshots (dedup table).
const (
	ErrKindOK                 ErrKind = 0
	ErrKindNotExist           ErrKind = 1  // fsapi.ErrNotExist
	ErrKindExist              ErrKind = 2  // fsapi.ErrExist
	ErrKindNotEmpty           ErrKind = 3  // fsapi.ErrNotEmpty
	ErrKindGenerationMismatch ErrKind = 4  // fsapi.ErrGenerationMismatch
	ErrKindTooLarge           ErrKind = 5  // fsapi.ErrTooLarge
	ErrKindBadName            ErrKind = 6  // fsapi.ErrBadName
	ErrKindBadRequest         ErrKind = 7  // fsapi.ErrBadRequest
	ErrKindSessionExpired     ErrKind = 8  // fsapi.ErrSessionExpired
	ErrKindHandleInvalid      ErrKind = 9  // fsapi.ErrHandleInvalid
	ErrKindNotDir             ErrKind = 10 // fsapi.ErrNotDir
	ErrKindIsDir              ErrKind = 11 // fsapi.ErrIsDir
	ErrKindPermission         ErrKind = 12 // fsapi.ErrPermission
	ErrKindHeld               ErrKind = 13 // locks.ErrHeld
	ErrKindLockDelay          ErrKind = 14 // locks.ErrLockDelay
	ErrKindNotHeld            ErrKind = 15 // locks.ErrNotHeld
	ErrKindStaleSequencer     ErrKind = 16 // locks.ErrStaleSequencer
	ErrKindNoWaiter           ErrKind = 17 // locks.ErrNoWaiter
	ErrKindSequenceExhausted  ErrKind = 18 // fsapi.ErrSequenceExhausted
	ErrKindStaleTerm          ErrKind = 19 // fsapi.ErrUnavailable: see WriteMeta.Term
)

// MaxUnacked is the most writes a session may have applied but not yet
// acknowledged (WriteMeta.AckBelow). A write past it fails with
// fsapi.ErrBadRequest and is not applied.
const MaxUnacked = 4096

// Err returns the Result's error, wrapping the matching fsapi (or, for the
// lock kinds, locks) sentinel, or nil.
func (r *Result) Err() error { return r.err() }
