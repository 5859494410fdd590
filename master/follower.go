package master

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
)

// Follower reads (docs/consistency.md, "Follower reads").
//
// A read that asks for it (wire.ReadOptions.Follower) may be answered by
// any replica from its own state, provided that state has applied the
// client's token (MinRevision): the highest revision the client has seen
// in any answer. That gives the client read-your-writes and monotonic
// reads, not linearizability: a replica that lags the master shows the
// cell as of some committed revision at or after the token, which may
// miss other clients' later writes.
//
// A follower answer is never cacheable: the master's invalidations cover
// only what it registered itself.
const (
	// followerWait is how long a replica that is not master waits to
	// apply a client's token before answering Behind. A healthy follower
	// trails the master by a heartbeat at most; a partitioned one never
	// catches up, and the client should go to the master soon.
	followerWait = 100 * time.Millisecond
	// masterTokenWait is how long the master waits, after a ReadIndex
	// round, for its own state to reach a token. Every token names a
	// committed entry, which the round has already waited for; only a
	// token from nowhere waits this long, and is then answered Behind.
	masterTokenWait = time.Second
)

// readCall finds the node a read call names, and the view it was read
// from: at a follower for a follower read on a replica that is not
// master, else through the master's linearizable read path. done says
// whether the answer may be cached; it is false for follower answers.
func (s *Server) readCall(ctx context.Context, h wire.Header, ro wire.ReadOptions, ref wire.NodeRef,
	listing bool) (*fsm.View, *fsm.Node, func() bool, error) {
	if ro.Follower && !s.IsMaster() {
		v, n, err := s.followerNode(ctx, h, ro, ref)
		if errors.Is(err, fsapi.ErrBehind) {
			s.followerBehind.Add(1)
		} else {
			s.followerServed.Add(1)
		}
		return v, n, never, err
	}
	done := s.cacheRead(h, ref, listing)
	v, n, err := s.readNodeAt(ctx, h, ro.MinRevision, ref)
	return v, n, done, err
}

func never() bool { return false }

// FollowerReads counts the follower reads this replica answered from its
// own state while not master, and those it answered Behind.
func (s *Server) FollowerReads() (served, behind uint64) {
	return s.followerServed.Load(), s.followerBehind.Load()
}

// followerNode serves a follower read from this replica's own state:
//
//  1. Wait (briefly) until the state has applied the client's token.
//  2. Check the session exists in that state. A session this replica does
//     not know may be newer than its state, or may have ended: only the
//     master may say which, so the answer is Behind, never SessionExpired.
//  3. Look the node up in the view. No master lease, no ReadIndex: the
//     view is some committed state at or after the token.
//
// A read with a sequencer is refused (Behind): only the master's state
// says whether a lock is still held.
func (s *Server) followerNode(ctx context.Context, h wire.Header, ro wire.ReadOptions, ref wire.NodeRef) (*fsm.View, *fsm.Node, error) {
	if err := fsapi.CheckPath(ref.Path); err != nil {
		return nil, nil, err
	}
	if len(ref.Sequencer) > 0 {
		return nil, nil, fmt.Errorf("%w: a read with a sequencer is served by the master", fsapi.ErrBehind)
	}
	if err := s.awaitRevision(ctx, ro.MinRevision, followerWait); err != nil {
		return nil, nil, err
	}
	v := s.fsm.View()
	if _, ok := s.fsm.Session(h.Session); !ok {
		return nil, nil, fmt.Errorf("%w: session %d is not in this replica's state (revision %d)",
			fsapi.ErrBehind, h.Session, v.Revision())
	}
	n, err := lookup(v, ref)
	if err != nil {
		return v, nil, err
	}
	return v, n, nil
}

// readAhead is the master's read for a client whose token is ahead of
// the master's state machine. It takes the ReadIndex path first: a master
// deposed while paused would otherwise wait for a revision it will never
// apply and answer Behind, keeping the client from the real master; the
// ReadIndex round fails there (NotMaster). At the real master the round
// leaves the state machine past every entry committed before the call,
// the token's included, so the wait after it is at most a formality (a
// token naming no committed entry waits masterTokenWait, then Behind).
func (s *Server) readAhead(ctx context.Context, minRev uint64) (*fsm.View, error) {
	if err := s.readIndex(ctx); err != nil {
		return nil, s.raftErr(err)
	}
	if err := s.awaitRevision(ctx, minRev, masterTokenWait); err != nil {
		return nil, err
	}
	return s.fsm.View(), nil
}

// awaitRevision waits up to wait (and ctx) until the state machine has
// applied rev, else fails with ErrBehind. It waits on the state machine
// alone (not raft's applied index, as waitApplied does): a token is always
// a command's index, and the answer's revision, the view's, must reach it.
func (s *Server) awaitRevision(ctx context.Context, rev uint64, wait time.Duration) error {
	if rev == 0 || s.fsm.AppliedIndex() >= rev {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := s.fsm.WaitApplied(wctx, rev)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: applied %d, the client has seen %d", fsapi.ErrBehind, s.fsm.AppliedIndex(), rev)
	}
	return err
}
