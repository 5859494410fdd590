package cellclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/locks"
)

// ChangeKind says what a WatchEvent reports: a node created, its contents
// modified, deleted, its lock acquired, or a lock request queued on it.
type ChangeKind = fsapi.ChangeKind

// The change kinds (see fsapi.ChangeKind).
const (
	ChangeCreated       = fsapi.ChangeCreated
	ChangeModified      = fsapi.ChangeModified
	ChangeDeleted       = fsapi.ChangeDeleted
	ChangeLockAcquired  = fsapi.ChangeLockAcquired
	ChangeLockRequested = fsapi.ChangeLockRequested
	ChangeLockReleased  = fsapi.ChangeLockReleased
)

// WatchOptions say what Watch follows.
type WatchOptions struct {
	// Recursive also follows every node below the name, at any depth.
	Recursive bool
	// Children also follows the name's direct children (what a handle
	// needs for child events). Recursive includes it.
	Children bool
	// FromRevision is the first revision to deliver events of (events of
	// revision FromRevision and later). 0 means from now: the changes
	// applied after the state a read made when Watch is called would see.
	FromRevision uint64
}

// WatchEvent is one change: Kind happened to the node called Name at
// Revision, leaving its metadata Stat (for ChangeDeleted, its last
// metadata). The last event of a watch that ends in error carries only
// Err.
type WatchEvent struct {
	Revision uint64
	Kind     ChangeKind
	Name     string // full name, /ls/CELL/...
	Stat     fsapi.Stat
	// Session and Mode name the lock holding (ChangeLockAcquired), the
	// holding that ended (ChangeLockReleased) or the queued request
	// (ChangeLockRequested); zero for other kinds. The lock's generation
	// is Stat.LockGeneration.
	Session uint64
	Mode    locks.Mode
	// Handle is, for an event from Handle.Events, the handle event it is
	// (one bit of EventMask); 0 from Watch.
	Handle EventMask
	// Err ends the watch: it wraps fsapi.ErrCompacted (as a
	// *fsapi.CompactedError with the revision to resume after) when the
	// master's history no longer holds the events the watch needs next,
	// or says what else failed.
	Err error

	path  string // inside the cell
	index uint32 // position within Revision
}

// watchHold is how long the client lets the master hold one Watch call
// (it caps it at 20 s); the client then asks again.
const watchHold = lockHold

// Watch delivers the changes to the node called name (and below it, with
// Recursive; its children, with Children) on the returned channel, in the
// order the cell applied them, each exactly once: it follows the changes
// with long-polls at the master, and after a reconnect or a master
// fail-over it asks the new master for the events after the last one it
// delivered (every replica records the same events). name need not exist:
// its creation is an event.
//
// An event is delivered after the master applied the change, so a read
// made after receiving it sees the change (or a later one).
//
// Watch returns once the master has accepted the watch (so "from now"
// has a meaning). The channel is closed when ctx ends or the session ends.
// If the master's bounded history no longer holds the next events the
// watch needs (a consumer that fell far behind, FromRevision too old, or
// a new master that started from a recent snapshot), the last event's Err
// is a *fsapi.CompactedError: re-read what you follow (the read then
// reflects at least CompactedError.Current) and watch again from
// Current+1; events may then repeat changes the read already showed
// (compare Stat.ModifiedRevision, or Stat.Instance, with what you read).
// Read the channel until it is closed, or cancel ctx: a watch whose
// events are not read waits.
func (c *Client) Watch(ctx context.Context, name string, opts WatchOptions) (<-chan WatchEvent, error) {
	path, err := c.path(name)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", name, err)
	}
	ch, err := c.watch(ctx, ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", name, err)
	}
	return ch, nil
}

// watcher is one watch: where it is in the cell's event order.
type watcher struct {
	c    *Client
	path string
	opts WatchOptions
	// The next position to deliver: (rev, index).
	rev   uint64
	index uint32
}

// watch starts a watch of path: the first call (not held) within callCtx,
// the watch itself until life ends.
func (c *Client) watch(callCtx, life context.Context, path string, opts WatchOptions) (<-chan WatchEvent, error) {
	w := &watcher{c: c, path: path, opts: opts, rev: opts.FromRevision}
	resp, err := w.poll(callCtx, 0)
	if err != nil && !errors.Is(err, fsapi.ErrCompacted) {
		return nil, err
	}
	out := make(chan WatchEvent, 16)
	go w.run(life, out, resp, err)
	return out, nil
}

// poll asks the master for the events from the watcher's position,
// retried like any read.
func (w *watcher) poll(ctx context.Context, hold int64) (*wire.WatchResponse, error) {
	var resp wire.WatchResponse
	req := &wire.WatchRequest{Header: w.c.header(), Path: w.path, Recursive: w.opts.Recursive, Children: w.opts.Children,
		FromRevision: w.rev, FromIndex: w.index, HoldMillis: hold}
	err := w.c.read(ctx, wire.MsgWatch, req, &resp)
	return &resp, err
}

// run delivers the answers, one long-poll after another, until the watch
// ends.
func (w *watcher) run(ctx context.Context, out chan<- WatchEvent, resp *wire.WatchResponse, err error) {
	defer close(out)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.c.sessCtx, cancel) // the session's end ends the watch
	defer stop()
	send := func(e WatchEvent) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, fsapi.ErrCompacted):
			send(WatchEvent{Err: &fsapi.CompactedError{From: w.rev, Floor: resp.Floor, Current: resp.Revision}})
			return
		case err != nil:
			send(WatchEvent{Err: err})
			return
		}
		for _, e := range resp.Events {
			if e.Revision < w.rev || e.Revision == w.rev && e.Index < w.index {
				continue // never deliver twice, whatever a master sends
			}
			if !send(w.event(e)) {
				return
			}
			w.rev, w.index = e.Revision, e.Index+1
		}
		if !resp.More && resp.Revision >= w.rev {
			// Everything up to the end of Revision was delivered: moving
			// past a quiet stretch keeps the position inside the history.
			w.rev, w.index = resp.Revision+1, 0
		}
		resp, err = w.poll(ctx, watchHold.Milliseconds())
	}
}

func (w *watcher) event(e fsapi.Event) WatchEvent {
	return WatchEvent{Revision: e.Revision, Kind: e.Kind, Name: fsapi.FullName(w.c.cell, e.Path), Stat: e.Stat,
		Session: e.Session, Mode: locks.Mode(e.Mode), path: e.Path, index: e.Index}
}
