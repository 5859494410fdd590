package master

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/locks"
	"github.com/haspcell/hasp/master/fsm"
)

// Locks at the master (DESIGN.md §7). The lock table is replicated state
// (master/fsm); what lives here is how a blocked Acquire waits:
//
//   - Acquire is a write. Granted at once, it answers at once. Queued, the
//     FSM gives it a waiter id, and the call (and later LockWait calls,
//     which are reads and cost no Raft entry) wait for that id's grant.
//   - The FSM reports every grant it makes, once, from Apply
//     (fsm.SetLockNotify). The master wakes exactly the call waiting for
//     that waiter id: a release wakes the next waiter(s), nobody else.
//   - A waiting call registers its id, then reads the lock table, then
//     sleeps: a grant between the read and the sleep finds the
//     registration, so no wake-up is lost.
//
// A waiting call holds at most HoldMillis (capped by maxLockHold), then
// answers "still waiting"; the client comes back with LockWait. So no call
// outlives the deadlines both sides put on a call, and a client whose
// master fails over simply asks the new one.

const (
	// maxLockHold caps how long one Acquire or LockWait call is held.
	maxLockHold = 20 * time.Second
	// lockRecheck is how often a waiting call re-reads the lock table even
	// without a wake-up (a session lost while waiting drops its requests
	// without a per-request notification).
	lockRecheck = time.Second
	// lockTickEvery is how often the master checks for ended lock-delays.
	lockTickEvery = 20 * time.Millisecond
)

// lockWaiters routes grant notifications to the calls waiting for them.
type lockWaiters struct {
	wakeups atomic.Uint64 // calls woken by a grant or drop notification

	mu sync.Mutex // protects following fields
	by map[uint64]chan struct{}
}

func newLockWaiters() *lockWaiters { return &lockWaiters{by: map[uint64]chan struct{}{}} }

func (w *lockWaiters) register(id uint64) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.by[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *lockWaiters) unregister(id uint64, ch chan struct{}) {
	w.mu.Lock()
	if w.by[id] == ch {
		delete(w.by, id)
	}
	w.mu.Unlock()
}

// notify is the FSM's LockNotify: it must not block.
func (w *lockWaiters) notify(grants []fsm.GrantInfo, dropped []uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wake := func(id uint64) {
		if ch := w.by[id]; ch != nil {
			select {
			case ch <- struct{}{}:
				w.wakeups.Add(1)
			default:
			}
		}
	}
	for _, g := range grants {
		if g.Waiter != 0 {
			wake(g.Waiter)
		}
	}
	for _, id := range dropped {
		wake(id)
	}
}

// checkRef fails a call whose handle carries a sequencer that is no
// longer current.
func (s *Server) checkRef(ref wire.NodeRef) error {
	if len(ref.Sequencer) == 0 {
		return nil
	}
	seq, err := locks.ParseSequencer(ref.Sequencer)
	if err != nil {
		return err
	}
	return s.fsm.CheckSequencer(seq)
}

func holdFor(millis int64) time.Duration {
	return min(time.Duration(max(millis, 0))*time.Millisecond, maxLockHold)
}

func (s *Server) acquire(ctx context.Context, req *wire.AcquireRequest) (*wire.AcquireResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if err := s.checkRef(req.NodeRef); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, invalSet{}, fsm.CmdAcquire, func(m fsm.WriteMeta) any {
		return &fsm.Acquire{Meta: m, Path: req.Path, Instance: req.Instance, Handle: req.Handle, Mode: req.Mode,
			LockDelayMillis: req.LockDelayMillis, Wait: req.Wait}
	})
	if err != nil {
		return nil, err
	}
	if res.Granted {
		return &wire.AcquireResponse{RespHeader: wire.RespHeader{Revision: idx}, Granted: true,
			Generation: res.Generation, Mode: req.Mode, Stat: res.Stat}, nil
	}
	// Queued (or a retry of a call that was queued: its grant may have
	// happened since, and waitGrant finds it in the table).
	return s.waitGrant(ctx, req.Header, req.NodeRef, req.Handle, res.Waiter, holdFor(req.HoldMillis))
}

func (s *Server) lockWait(ctx context.Context, req *wire.LockWaitRequest) (*wire.AcquireResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if _, err := s.session(ctx, req.Header); err != nil {
		return nil, err
	}
	if err := s.checkRef(req.NodeRef); err != nil {
		return nil, err
	}
	return s.waitGrant(ctx, req.Header, req.NodeRef, req.Handle, req.Waiter, holdFor(req.HoldMillis))
}

// waitGrant waits up to hold for queued request waiter (of handle of the
// session in h, on ref) to be granted, and says how it stands: granted,
// still waiting (Waiter set, Granted false), or gone (an error).
func (s *Server) waitGrant(ctx context.Context, h wire.Header, ref wire.NodeRef, handle, waiter uint64,
	hold time.Duration) (*wire.AcquireResponse, error) {
	ls, err := s.master()
	if err != nil {
		return nil, err
	}
	if waiter == 0 {
		return nil, fmt.Errorf("%w: %s: waiter 0", fsapi.ErrNoWaiter, ref.Path)
	}
	ch := s.lockw.register(waiter)
	defer s.lockw.unregister(waiter, ch)
	deadline := time.NewTimer(hold)
	defer deadline.Stop()
	recheck := time.NewTicker(lockRecheck)
	defer recheck.Stop()
	holder := locks.Holder{Session: h.Session, Handle: handle}
	for confirmed := false; ; {
		resp, err := s.requestState(ref, holder, waiter)
		if resp == nil && err == nil { // still queued
			select {
			case <-ch:
				continue
			case <-recheck.C:
				if _, err := s.liveSession(ctx, h); err != nil {
					return nil, err
				}
				continue
			case <-deadline.C:
				return &wire.AcquireResponse{Waiter: waiter}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-ls.doneCh:
				return nil, &fsapi.NotMasterError{}
			case <-s.stopCh:
				return nil, &fsapi.NotMasterError{}
			}
		}
		if err != nil && !confirmed {
			// "Gone" must not come from a state that lags the cell: make
			// sure this replica has applied everything committed, then look
			// again.
			if _, rerr := s.read(ctx, h, ref.Path); rerr != nil {
				return nil, rerr
			}
			confirmed = true
			continue
		}
		return resp, err
	}
}

// requestState reads how queued request waiter stands in the lock table:
// granted (a response), queued (nil, nil) or gone (an error).
func (s *Server) requestState(ref wire.NodeRef, holder locks.Holder, waiter uint64) (*wire.AcquireResponse, error) {
	n, ok := s.fsm.View().Get(ref.Path)
	if !ok || (ref.Instance != 0 && n.Stat.Instance != ref.Instance) {
		return nil, fmt.Errorf("%w: %s was deleted while lock request w%d waited", fsapi.ErrHandleInvalid, ref.Path, waiter)
	}
	l, _ := s.fsm.LockState(ref.Path)
	for _, w := range l.Waiters {
		if w.ID == waiter {
			return nil, nil
		}
	}
	for _, hd := range l.Holders {
		if hd.Waiter == waiter && hd.Holder == holder {
			// The node may have changed between the two reads only in ways
			// that keep the lock (a delete drops it): n's Stat is fine.
			return &wire.AcquireResponse{Granted: true, Generation: l.Generation, Mode: uint8(l.Mode), Stat: n.Stat}, nil
		}
	}
	return nil, fmt.Errorf("%w: lock request w%d on %s was withdrawn (cancelled, or its session ended)",
		fsapi.ErrNoWaiter, waiter, ref.Path)
}

func (s *Server) release(ctx context.Context, req *wire.ReleaseRequest) (*wire.ReleaseResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if err := s.checkRef(req.NodeRef); err != nil {
		return nil, err
	}
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, invalSet{}, fsm.CmdRelease, func(m fsm.WriteMeta) any {
		return &fsm.Release{Meta: m, Path: req.Path, Instance: req.Instance, Handle: req.Handle}
	})
	return &wire.ReleaseResponse{RespHeader: wire.RespHeader{Revision: idx}}, err
}

func (s *Server) cancelWait(ctx context.Context, req *wire.CancelWaitRequest) (*wire.CancelWaitResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, invalSet{}, fsm.CmdCancelWait, func(m fsm.WriteMeta) any {
		return &fsm.CancelWait{Meta: m, Path: req.Path, Waiter: req.Waiter}
	})
	return &wire.CancelWaitResponse{RespHeader: wire.RespHeader{Revision: idx}}, err
}

func (s *Server) checkSequencer(ctx context.Context, req *wire.CheckSequencerRequest) (*wire.CheckSequencerResponse, error) {
	seq, err := locks.ParseSequencer(req.Sequencer)
	if err != nil {
		return nil, err
	}
	v, err := s.read(ctx, req.Header, seq.Path)
	if err != nil {
		return nil, err
	}
	return &wire.CheckSequencerResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}}, s.fsm.CheckSequencer(seq)
}

func (s *Server) getLock(ctx context.Context, req *wire.GetLockRequest) (*wire.GetLockResponse, error) {
	v, n, err := s.readNode(ctx, req.Header, req.NodeRef)
	if err != nil {
		return nil, err
	}
	l, _ := s.fsm.LockState(req.Path)
	resp := &wire.GetLockResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}, Stat: n.Stat,
		Mode: uint8(l.Mode), Generation: l.Generation, WaiterCount: len(l.Waiters)}
	if !l.Held() && l.DelayUntil > time.Now().UnixNano() { // a running lock-delay only
		resp.DelayUntilMillis = time.Unix(0, l.DelayUntil).UnixMilli()
	}
	for _, h := range l.Holders {
		resp.Holders = append(resp.Holders, wire.LockOwner{Session: h.Holder.Session, Handle: h.Holder.Handle,
			Mode: uint8(l.Mode), Waiter: h.Waiter})
	}
	for _, w := range l.Waiters[:min(len(l.Waiters), wire.MaxLockWaitersListed)] {
		resp.Waiters = append(resp.Waiters, wire.LockOwner{Session: w.Holder.Session, Handle: w.Holder.Handle,
			Mode: uint8(w.Mode), Waiter: w.ID})
	}
	return resp, nil
}

// lockTicker proposes a LockTick whenever a lock-delay with a waiter
// queued behind it has ended, so that waiter is granted (and woken).
func (s *Server) lockTicker(ctx context.Context) {
	t := time.NewTicker(lockTickEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at, ok := s.fsm.NextLockDeadline()
		now := time.Now().UnixNano()
		if !ok || at > now {
			continue
		}
		if _, err := s.propose(ctx, fsm.CmdLockTick, &fsm.LockTick{Time: now}); err != nil && ctx.Err() == nil {
			s.log.Warn("lock tick not committed; will retry", "err", err)
		}
	}
}
