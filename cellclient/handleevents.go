package cellclient

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// EventMask chooses handle events (OpenOptions.Events), Chubby's events on
// an open node. Each WatchEvent from Handle.Events has one bit in Handle.
type EventMask uint16

const (
	// EventContentsModified: the file's contents were replaced.
	EventContentsModified EventMask = 1 << iota
	// EventChildAdded, EventChildRemoved, EventChildModified: a child of
	// the directory was created, deleted, or had its contents replaced.
	// Name and Stat are the child's.
	EventChildAdded
	EventChildRemoved
	EventChildModified
	// EventHandleInvalid: the node was deleted; the handle is invalid and
	// its event channel closes after this event. It is delivered even if
	// not chosen.
	EventHandleInvalid
	// EventLockAcquired: the node's lock was granted (to anyone: compare
	// Session with Client.Session).
	EventLockAcquired
	// EventConflictingLock: a lock request was queued on the node because
	// it could not be granted at once: the holder may want to release.
	EventConflictingLock
	// EventLockReleased: a holding of the node's lock ended (released,
	// or its session ended); Session names it. Not in Chubby: it lets an
	// observer see a lock go free without polling.
	EventLockReleased
)

// EventAll chooses every handle event.
const EventAll = EventContentsModified | EventChildAdded | EventChildRemoved | EventChildModified |
	EventHandleInvalid | EventLockAcquired | EventConflictingLock | EventLockReleased

const childEvents = EventChildAdded | EventChildRemoved | EventChildModified

var eventNames = []struct {
	m    EventMask
	name string
}{
	{EventContentsModified, "contents-modified"}, {EventChildAdded, "child-added"}, {EventChildRemoved, "child-removed"},
	{EventChildModified, "child-modified"}, {EventHandleInvalid, "handle-invalid"}, {EventLockAcquired, "lock-acquired"},
	{EventConflictingLock, "conflicting-lock"}, {EventLockReleased, "lock-released"},
}

func (m EventMask) String() string {
	var parts []string
	for _, n := range eventNames {
		if m&n.m != 0 {
			parts = append(parts, n.name)
			m &^= n.m
		}
	}
	if m != 0 || len(parts) == 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(m), 16))
	}
	return strings.Join(parts, "|")
}

// Events delivers the handle events chosen at Open (OpenOptions.Events),
// in the order the cell applied the changes, each once, across master
// fail-overs, starting with the first change after the state Open saw.
// Handle events are built on Watch (of the node, and its children for
// the child events), so they are delivered after the change is applied:
// a read after the event sees it. The channel is closed after
// EventHandleInvalid, at Close or Poison, and when the session ends; an
// event with Err (see WatchEvent.Err) may end it too. It is closed at once
// if no events were chosen. Read it, or the handle's events wait.
func (h *Handle) Events() <-chan WatchEvent {
	if h.events == nil {
		ch := make(chan WatchEvent)
		close(ch)
		return ch
	}
	return h.events
}

// startEvents starts the watch behind Events, at the position just after
// the state Open saw (resp): the entry that created the node, or the
// revision the read or write was answered at. An Open answered from the
// cache carries no revision: the watch then starts from now, and a node
// deleted in between is caught by reading its stat once the watch runs.
func (h *Handle) startEvents(ctx context.Context, mask EventMask, resp *wire.OpenResponse) error {
	if mask == 0 {
		return nil
	}
	opts := WatchOptions{Children: mask&childEvents != 0}
	switch {
	case resp.Created:
		opts.FromRevision = resp.Stat.Instance + 1
	case resp.Revision != 0:
		opts.FromRevision = resp.Revision + 1
	}
	life, cancel := context.WithCancel(h.poisonCtx)
	src, err := h.c.watch(ctx, life, h.ref.Path, opts)
	if err != nil {
		cancel()
		return err
	}
	gone := false
	if opts.FromRevision == 0 {
		_, err := h.GetStat(ctx)
		switch {
		case errors.Is(err, fsapi.ErrHandleInvalid):
			gone = true
		case err != nil:
			cancel()
			return err
		}
	}
	h.events = make(chan WatchEvent, 16)
	go h.deliverEvents(src, cancel, mask, gone)
	return nil
}

// deliverEvents turns the node's change events into the chosen handle
// events.
func (h *Handle) deliverEvents(src <-chan WatchEvent, cancel context.CancelFunc, mask EventMask, gone bool) {
	defer close(h.events)
	defer func() {
		cancel() // end the watch and wait for it
		for range src {
		}
	}()
	send := func(e WatchEvent) bool {
		select {
		case h.events <- e:
			return true
		case <-h.poisonCtx.Done():
			return false
		}
	}
	if gone {
		// Deleted before the watch began: the revision is unknown.
		send(WatchEvent{Kind: ChangeDeleted, Name: h.name, Handle: EventHandleInvalid, path: h.ref.Path})
		return
	}
	for e := range src {
		if e.Err != nil {
			send(e)
			return
		}
		bit := h.handleEvent(e)
		if bit == 0 || bit&mask == 0 && bit != EventHandleInvalid {
			continue
		}
		e.Handle = bit
		if !send(e) || bit == EventHandleInvalid {
			return
		}
	}
}

// handleEvent says which handle event a change is, or 0.
func (h *Handle) handleEvent(e WatchEvent) EventMask {
	if e.path == h.ref.Path {
		if e.Stat.Instance != h.ref.Instance {
			return 0 // another node of the same name
		}
		switch e.Kind {
		case ChangeModified:
			return EventContentsModified
		case ChangeDeleted:
			return EventHandleInvalid
		case ChangeLockAcquired:
			return EventLockAcquired
		case ChangeLockRequested:
			return EventConflictingLock
		case ChangeLockReleased:
			return EventLockReleased
		}
		return 0
	}
	switch e.Kind { // a child's
	case ChangeCreated:
		return EventChildAdded
	case ChangeDeleted:
		return EventChildRemoved
	case ChangeModified:
		return EventChildModified
	}
	return 0
}
