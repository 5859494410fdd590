package master

import (
	"context"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
)

// Watches (DESIGN.md §8). The FSM records the change events of every
// applied entry in a bounded history (master/fsm/events.go); a Watch call
// is a long-poll read of it, served by the master only:
//
//   - The call registers a waiter for its filter, then reads the history,
//     then sleeps if nothing matched: an event recorded between the read
//     and the sleep finds the registration, so no wake-up is lost (the
//     same order as waitGrant in locks.go). The FSM wakes only the waiters
//     whose filter matches an event, not every watch.
//   - The history only holds events of entries this replica has applied,
//     and records them after publishing the state they describe: a read
//     made after receiving an event sees the change.
//   - The client's position is (revision, index), which means the same on
//     every replica (all apply the same log), so a watcher resumes at a new
//     master without a gap or a duplicate.

// maxWatchHold caps how long one Watch call is held.
const maxWatchHold = wire.MaxWatchHoldMillis * time.Millisecond

func (s *Server) watch(ctx context.Context, req *wire.WatchRequest) (*wire.WatchResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	ls, err := s.session(ctx, req.Header)
	if err != nil {
		return nil, err
	}
	from, fromIndex := req.FromRevision, req.FromIndex
	if from == 0 {
		// "From now": after the state a linearizable read would see.
		v, err := s.read(ctx, req.Header, req.Path)
		if err != nil {
			return nil, err
		}
		from, fromIndex = v.Revision()+1, 0
	}
	limit := req.MaxEvents
	if limit <= 0 {
		limit = wire.DefaultWatchEvents
	}
	limit = min(limit, wire.MaxWatchEvents)
	filter := fsm.EventFilter{Path: req.Path, Recursive: req.Recursive, Children: req.Children}
	w := s.fsm.WaitEvents(filter)
	defer w.Stop()
	hold := time.NewTimer(min(time.Duration(max(req.HoldMillis, 0))*time.Millisecond, maxWatchHold))
	defer hold.Stop()
	recheck := time.NewTicker(lockRecheck)
	defer recheck.Stop()
	for {
		b := s.fsm.EventsSince(from, fromIndex, filter, limit, wire.MaxWatchBytes)
		if b.Compacted {
			return &wire.WatchResponse{RespHeader: wire.RespHeader{Revision: b.Last}, Compacted: true, Floor: b.Floor},
				&fsapi.CompactedError{From: from, Floor: b.Floor, Current: b.Last}
		}
		if len(b.Events) > 0 {
			return watchAnswer(b, from), nil
		}
		// Nothing matched up to b.Last: wait from after it, so that the
		// traffic on other paths cannot compact this watch while it waits
		// (the history wakes every waiter often enough for that).
		if b.Last >= from {
			from, fromIndex = b.Last+1, 0
		}
		select {
		case <-w.C:
			continue
		case <-hold.C:
			return watchAnswer(b, from), nil
		case <-recheck.C:
			// A session that ends is noticed here, as in waitGrant.
			if _, err := s.liveSession(ctx, req.Header); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ls.doneCh:
			return nil, &fsapi.NotMasterError{}
		case <-s.stopCh:
			return nil, &fsapi.NotMasterError{}
		}
	}
}

// watchAnswer is the answer for batch b read from position from. Its
// revision is never below from-1: an answer to "from now", or from a
// position this replica has not applied yet, says where the watcher is.
func watchAnswer(b fsm.EventBatch, from uint64) *wire.WatchResponse {
	return &wire.WatchResponse{RespHeader: wire.RespHeader{Revision: max(b.Last, from-1)}, Events: b.Events, More: b.More}
}
