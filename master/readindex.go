package master

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// verifier confirms leadership for ReadIndex reads and for KeepAlive
// answers given without the master lease. A round commits a Raft barrier
// entry: only a leader that a majority still follows can commit a new
// entry, so a round that started after a call and succeeded shows no newer
// master existed when the call began.
//
// raft.VerifyLeader is not used: it counts any successful AppendEntries
// response that arrives while it waits, including one to a request sent
// before it began (raft v1.8.0 replication.go, updateLastAppended calls
// notifyAll(true)). A master paused (SIGSTOP) just after a follower
// answered resumes, the stale answer is read, and VerifyLeader succeeds on
// a deposed master: TestProcDeposedMasterKeepsSessions caught one telling
// a live session it had expired (bug 36), and a ReadIndex read could have
// been stale the same way. A barrier needs fresh acknowledgements of a new
// entry.
//
// Rounds are coalesced: every caller that arrives while a round is in
// flight joins the next round, which starts after it arrived, so one commit
// serves any number of concurrent callers.
type verifier struct {
	r *raft.Raft

	mu      sync.Mutex // protects following fields
	next    *round
	running bool
}

// verifyTimeout bounds how long a round's barrier waits to be enqueued.
const verifyTimeout = 5 * time.Second

type round struct {
	doneCh chan struct{}
	err    error
}

func newVerifier(r *raft.Raft) *verifier { return &verifier{r: r} }

// verify returns nil once a round that started after the call confirmed
// leadership.
func (v *verifier) verify(ctx context.Context) error {
	v.mu.Lock()
	if v.next == nil {
		v.next = &round{doneCh: make(chan struct{})}
	}
	rd := v.next
	if !v.running {
		v.running = true
		go v.loop()
	}
	v.mu.Unlock()
	select {
	case <-rd.doneCh:
		return rd.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *verifier) loop() {
	for {
		v.mu.Lock()
		rd := v.next
		v.next = nil
		if rd == nil {
			v.running = false
			v.mu.Unlock()
			return
		}
		v.mu.Unlock()
		rd.err = v.r.Barrier(verifyTimeout).Error()
		close(rd.doneCh)
	}
}

// readIndex makes a linearizable read possible: when it returns nil, the FSM
// reflects every write acknowledged before readIndex was called.
//
//  1. Take the commit index.
//  2. Confirm, with a barrier committed after step 1, that this replica
//     is still the leader (so no later leader can have committed anything
//     it lacks).
//  3. Wait until the FSM has applied the index of step 1.
//
// Leadership must already be established by a barrier in this term (see
// lead), so the commit index covers every earlier master's writes.
func (s *Server) readIndex(ctx context.Context) error {
	idx := s.raft.CommitIndex()
	if err := s.verifier.verify(ctx); err != nil {
		return err
	}
	return s.waitApplied(ctx, idx)
}

// waitApplied waits until every entry up to idx has been applied. The FSM
// sees only commands; raft's own entries (its no-op at election,
// configuration changes) advance only raft's applied index, which is set
// just after the FSM applies. So wait on the FSM, and check raft's index
// every few milliseconds in case idx is one of raft's own entries.
func (s *Server) waitApplied(ctx context.Context, idx uint64) error {
	for {
		if s.fsm.AppliedIndex() >= idx || s.raft.AppliedIndex() >= idx {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		err := s.fsm.WaitApplied(wctx, idx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
