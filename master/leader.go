package master

import (
	"context"
	"time"

	"github.com/haspcell/hasp/master/fsm"
)

const (
	// barrierTimeout bounds one attempt at the new master's barrier.
	barrierTimeout = 5 * time.Second
	// expiryScan is how often the master looks for expired sessions.
	expiryScan = 100 * time.Millisecond
	// fullRescan is how often it re-reads every session from the FSM, to
	// catch any it did not hear of through its own handlers.
	fullRescan = 5 * time.Second
)

// leaderLoop follows Raft's leadership notifications (Config.NotifyCh,
// which unlike LeaderCh never drops a transition) and runs lead for each
// term in which this replica leads.
//
//  1. On true: start lead in its own goroutine.
//  2. On false, or on shutdown: withdraw the master state first (calls see
//     "not master" at once), then stop lead and wait for it.
func (s *Server) leaderLoop() {
	var running *leadRun
	stop := func() {
		if running == nil {
			return
		}
		if ls := s.leading.Swap(nil); ls != nil {
			ls.lease.drop()
			close(ls.doneCh)
		}
		running.stop()
		running = nil
		s.leases.clear()
		s.cache.reset(0, nil)
	}
	for {
		select {
		case isLeader := <-s.leaderCh:
			stop()
			if isLeader {
				running = s.startLead()
			}
		case <-s.stopCh:
			stop()
			return
		}
	}
}

// leadRun is one running lead goroutine.
type leadRun struct {
	cancel context.CancelFunc
	doneCh chan struct{}
}

func (s *Server) startLead() *leadRun {
	ctx, cancel := context.WithCancel(context.Background())
	run := &leadRun{cancel: cancel, doneCh: make(chan struct{})}
	go func() {
		defer close(run.doneCh)
		s.lead(ctx)
	}()
	return run
}

func (r *leadRun) stop() {
	r.cancel()
	<-r.doneCh
}

// lead runs while this replica leads one term:
//
//  1. Commit a barrier, so the FSM has applied every entry committed by any
//     earlier master.
//  2. Extend every session's lease to a full lease from now (lengthened
//     with the number of sessions, see leaseTable.reset): an old master
//     granted none longer.
//  3. Publish the master state: from here calls are served.
//  4. Expire sessions whose lease ran out, through Raft.
func (s *Server) lead(ctx context.Context) {
	term := s.raft.CurrentTerm()
	ml := &masterLease{length: s.leaseLength()}
	// No lease read until any older master's lease has surely expired.
	ml.ml.Start(term, s.clock.Now().Add(ml.length))
	for {
		err := s.barrier(ctx, barrierTimeout)
		if err == nil {
			break
		}
		s.log.Warn("master barrier failed", "term", term, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if s.raft.CurrentTerm() != term {
		// The barrier committed in a later term than the one read above:
		// this replica lost the lead and won it again meanwhile (the
		// notifications are buffered). Everything this term's state would
		// stamp (client epochs, write terms, the master lease) would be
		// wrong; the lead of the later term follows the pending
		// notifications.
		s.log.Info("led a later term before serving this one", "term", term)
		<-ctx.Done()
		return
	}
	now := s.clock.Now()
	s.leases.reset(sessionIDs(s.fsm.Sessions()), now)
	// Sessions that cache may hold data from an earlier master, which this
	// one never registered: writes wait until they flushed (or expired).
	var caching []uint64
	for _, si := range s.fsm.Sessions() {
		if si.Caching {
			caching = append(caching, si.ID)
		}
	}
	s.cache.reset(term, caching)
	ls := &leaderState{term: term, doneCh: make(chan struct{}), lease: ml}
	s.leading.Store(ls)
	defer func() {
		// leaderLoop withdraws the master state before it stops this
		// goroutine, but it may have done so before the Store above; then
		// the state is withdrawn here.
		if s.leading.CompareAndSwap(ls, nil) {
			ls.lease.drop()
			close(ls.doneCh)
		}
	}()
	s.log.Info("became master", "term", term, "sessions", s.leases.len())
	renewDone := make(chan struct{})
	go func() {
		defer close(renewDone)
		s.renewLease(ctx, ls)
	}()
	defer func() { <-renewDone }()
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		s.lockTicker(ctx)
	}()
	defer func() { <-tickDone }()

	tick := time.NewTicker(expiryScan)
	defer tick.Stop()
	lastRescan := now
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now := s.clock.Now()
			if now.Sub(lastRescan) >= fullRescan {
				s.leases.ensure(sessionIDs(s.fsm.Sessions()), now)
				lastRescan = now
			}
			s.expire(ctx, ls, now)
		}
	}
}

// barrier commits a no-op command and waits until the FSM has applied it,
// and so every entry before it. (raft.Barrier's entries never reach the
// FSM, so they would leave the FSM's applied index behind the commit index.)
func (s *Server) barrier(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := s.propose(ctx, fsm.CmdNoop, &fsm.Noop{Time: time.Now().UnixNano()})
	return err
}

// expire proposes, as the master of ls's term, the end of every session
// whose lease has run out.
func (s *Server) expire(ctx context.Context, ls *leaderState, now time.Time) {
	for _, id := range s.leases.expired(now) {
		cmd := &fsm.CloseSession{Meta: fsm.WriteMeta{Session: id, Time: now.UnixNano(), Term: ls.term}, Expired: true}
		s.cache.dropSession(id) // its lease is over: it no longer serves from its cache
		res, err := s.proposeInvalidating(ctx, ls, s.sessionEndPaths(id), fsm.CmdCloseSession, cmd)
		if err != nil {
			s.log.Warn("session expiry not committed; will retry", "session", id, "err", err)
			return
		}
		s.leases.remove(id)
		s.cache.dropSession(id)
		if res.ErrKind == 0 {
			s.log.Info("session expired", "session", id)
		}
	}
}

func sessionIDs(infos []fsm.SessionInfo) []uint64 {
	ids := make([]uint64, len(infos))
	for i, in := range infos {
		ids[i] = in.ID
	}
	return ids
}
