package master

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/lease"
)

// leaseDelta is the scheduling margin δ in the master lease length
// L = HeartbeatTimeout·(1−ε) − δ.
const leaseDelta = 20 * time.Millisecond

// leaseLength is this replica's master lease length.
func (s *Server) leaseLength() time.Duration {
	return lease.MasterLength(s.cfg.HeartbeatTimeout, lease.DefaultEpsilon, leaseDelta)
}

// masterLease guards one term's lease.Master.
type masterLease struct {
	length time.Duration

	mu sync.Mutex // protects following fields
	ml lease.Master
}

func (l *masterLease) renewed(term uint64, sentAt time.Time) {
	l.mu.Lock()
	l.ml.Renewed(term, sentAt, l.length)
	l.mu.Unlock()
}

func (l *masterLease) valid(term uint64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ml.Valid(term, now)
}

func (l *masterLease) remaining(term uint64, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ml.Remaining(term, now)
}

func (l *masterLease) drop() {
	l.mu.Lock()
	l.ml.Drop()
	l.mu.Unlock()
}

// leaseHolds is the "check" of read-then-check: the master lease is valid
// now, and Raft still has this replica as leader of the same term. The
// second part matters because the master counts itself in the majority
// that granted the lease, and unlike a follower it is not sticky once it
// steps down: a replica votes for another only after leaving the leader
// state, so while it is still leader at the check, its vote was not yet
// given away. (This holds whatever Raft's LeaderLeaseTimeout, the
// step-down timer, is.)
func (s *Server) leaseHolds(ls *leaderState) bool {
	return ls.lease.valid(ls.term, s.clock.Now()) && s.leading.Load() == ls &&
		s.raft.State() == raft.Leader && s.raft.CurrentTerm() == ls.term
}

// renewLease keeps the master lease fresh while this replica leads: every
// L/3 it commits a no-op, and proposeIndex extends the lease to t0 + L, t0
// taken just before the entry went to Raft. Any failure drops the lease;
// reads then take the ReadIndex path until a later commit renews it. Client
// writes renew it the same way, so under write load these no-ops are
// redundant but cheap.
func (s *Server) renewLease(ctx context.Context, ls *leaderState) {
	every := max(ls.lease.length/3, time.Millisecond)
	for {
		if err := s.barrier(ctx, ls.lease.length); err != nil {
			ls.lease.drop()
			s.log.Debug("master lease renewal failed", "err", err)
		}
		t := s.clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}
