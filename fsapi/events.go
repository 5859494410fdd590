package fsapi

import "strconv"

// ChangeKind says what a change event reports. The values are part of the
// client protocol (fsapi/wire carries them): never renumber them.
type ChangeKind uint8

const (
	// ChangeCreated: a node was created. Its parent gained a child.
	ChangeCreated ChangeKind = 1
	// ChangeModified: a file's contents were replaced (SetContents).
	ChangeModified ChangeKind = 2
	// ChangeDeleted: a node was deleted: by Delete, by the cascade that
	// removes an emptied ephemeral directory, or because the session that
	// owned the ephemeral node ended (closed or expired). The event's Stat is
	// the node's last.
	ChangeDeleted ChangeKind = 3
	// ChangeLockAcquired: the node's lock was granted to a holder (at once,
	// or to a queued request). Event.Session and Event.Mode name the
	// holding; Stat.LockGeneration is the lock's generation.
	ChangeLockAcquired ChangeKind = 4
	// ChangeLockRequested: a lock request was queued on the node because
	// it could not be granted at once (held in a conflicting mode, requests
	// queued ahead, or a lock-delay running): Chubby's "conflicting lock
	// request". Event.Session and Event.Mode name the request.
	ChangeLockRequested ChangeKind = 5
	// ChangeLockReleased: a holding of the node's lock ended: released,
	// cancelled after its grant, or dropped because its session ended
	// (closed or expired). Event.Session and Event.Mode name the holding.
	// When the lock passes to a waiter, this event comes first, then the
	// waiter's ChangeLockAcquired, both at the same revision.
	ChangeLockReleased ChangeKind = 6
)

var changeNames = [...]string{ChangeCreated: "created", ChangeModified: "modified", ChangeDeleted: "deleted",
	ChangeLockAcquired: "lock-acquired", ChangeLockRequested: "lock-requested", ChangeLockReleased: "lock-released"}

func (k ChangeKind) String() string {
	if int(k) < len(changeNames) && changeNames[k] != "" {
		return changeNames[k]
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change to one node, as the cell's replicas record it. Every
// Raft entry that changes the namespace or a lock yields its events in the
// order it made the changes; they share the entry's index as Revision and
// are numbered by Index from 0. (Revision, Index) orders all events of a
// cell.
//
// Child events are not separate: a node's creation, deletion or
// modification is a child added, removed or modified for its parent
// (Parent(Path)).
type Event struct {
	Revision uint64
	Index    uint32
	Kind     ChangeKind
	Path     string // inside the cell: "/a/b"
	// Stat is the node's metadata after the change; for ChangeDeleted, its
	// last metadata before the deletion.
	Stat Stat
	// Session and Mode (a lock mode: 1 exclusive, 2 shared) name the lock
	// holding or request of ChangeLockAcquired and ChangeLockRequested; 0
	// for the other kinds.
	Session uint64
	Mode    uint8
}
