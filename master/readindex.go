package master

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// verifier coalesces VerifyLeader calls: every reader that arrives while a
// round is in flight joins the next round, which starts after it arrived.
// One heartbeat round thus serves any number of concurrent readers, and each
// reader is served by a round that began after its read began (which is what
// makes the ReadIndex read linearizable).
type verifier struct {
	r *raft.Raft

	mu      sync.Mutex // protects following fields
	next    *round
	running bool
}

type round struct {
	doneCh chan struct{}
	err    error
}

func newVerifier(r *raft.Raft) *verifier { return &verifier{r: r} }

// verify returns nil once a VerifyLeader round that started after the call
// confirmed leadership.
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
		rd.err = v.r.VerifyLeader().Error()
		close(rd.doneCh)
	}
}

// readIndex makes a linearizable read possible: when it returns nil, the FSM
// reflects every write acknowledged before readIndex was called.
//
//  1. Take the commit index.
//  2. Confirm, with a heartbeat round started after step 1, that this
//     replica is still the leader (so no later leader can have committed
//     anything it lacks).
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
