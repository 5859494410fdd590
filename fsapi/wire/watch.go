package wire

import "github.com/haspcell/hasp/fsapi"

// Watches (DESIGN.md §8). A watch is a long-poll read that only the master
// serves: the client asks for the change events on a path from a position
// (FromRevision, FromIndex) on, the master answers as soon as at least one
// exists (or HoldMillis has passed), and the client asks again from just
// after the last event it received. Every replica records the same events,
// because it applies the same log, so the position is good at any master.

// MaxWatchHoldMillis caps WatchRequest.HoldMillis.
const MaxWatchHoldMillis = 20000

// DefaultWatchEvents and MaxWatchEvents bound the events in one answer
// (WatchRequest.MaxEvents 0 means the default). The master also stops
// adding events once the answer holds about MaxWatchBytes of them.
const (
	DefaultWatchEvents = 1000
	MaxWatchEvents     = 10000
	MaxWatchBytes      = 1 << 20
)

// WatchRequest asks for the events on Path (and, with Recursive, on every
// node below it; with Children, on its direct children) at positions
// (Revision, Index) >= (FromRevision, FromIndex). FromRevision 0 means
// "from now": from the revision after the one a linearizable read at the
// master would see. Path need not exist: its creation is an event.
type WatchRequest struct {
	Header
	Path         string
	Recursive    bool   `codec:",omitempty"`
	Children     bool   `codec:",omitempty"`
	FromRevision uint64 // 0: from now
	FromIndex    uint32 `codec:",omitempty"`
	// HoldMillis is how long the master may wait for a first event
	// (capped at MaxWatchHoldMillis; 0 answers at once).
	HoldMillis int64
	// MaxEvents bounds the answer (0: DefaultWatchEvents; capped at
	// MaxWatchEvents).
	MaxEvents int `codec:",omitempty"`
}

// WatchResponse carries the matching events in order, and where the answer
// leaves the watcher:
//
//   - More false: every matching event at positions from the request's up
//     to the end of revision RespHeader.Revision is in Events. The next
//     request may ask from (Revision+1, 0) (or from just after the last
//     event, if that is later).
//   - More true: the answer was cut short by MaxEvents or size; ask again
//     from just after the last event.
//   - Compacted: the history no longer holds the asked position (it is
//     below Floor, the oldest revision held complete); Events is empty,
//     Revision is the master's current revision, and Err is CodeCompacted.
type WatchResponse struct {
	RespHeader
	Events    []fsapi.Event
	More      bool   `codec:",omitempty"`
	Compacted bool   `codec:",omitempty"`
	Floor     uint64 `codec:",omitempty"`
}
