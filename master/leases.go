package master

import (
	"sync"
	"time"

	"github.com/haspcell/hasp/lease"
)

// leaseTable holds the master's view of every session's lease end. It is
// leader-local: never replicated, rebuilt by each new master from the
// sessions in the FSM, each extended to (at least) a full lease from the moment the new
// master took over.
type leaseTable struct {
	ttl time.Duration

	mu  sync.Mutex // protects following fields
	end map[uint64]time.Time
	// fresh marks sessions inherited from an earlier master whose first
	// KeepAlive in this term has not been answered: it is answered at once,
	// so the client's lease is renewed before the old one runs out.
	fresh map[uint64]bool
}

func newLeaseTable(ttl time.Duration) *leaseTable {
	return &leaseTable{ttl: ttl, end: map[uint64]time.Time{}, fresh: map[uint64]bool{}}
}

// reset replaces the table for a new master: every listed session's lease
// ends a full lease from now, lengthened by failoverExtra(len(ids)): every
// client must reconnect and send a KeepAlive to the new master before its
// lease here ends, and thousands of them doing so at once take a while on
// a loaded machine (Chubby lets a master lengthen leases under load). Any
// older master granted none longer than a lease from before now, so a
// longer one only delays an expiry.
func (t *leaseTable) reset(ids []uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.end = make(map[uint64]time.Time, len(ids))
	t.fresh = make(map[uint64]bool, len(ids))
	end := lease.MasterEnd(now, t.ttl).Add(failoverExtra(len(ids), t.ttl))
	for _, id := range ids {
		t.end[id] = end
		t.fresh[id] = true
	}
}

// failoverExtra is how much a new master lengthens the leases it inherits
// from n sessions: 1 ms per session, at most one lease. 10,000 sessions get
// 10 s more than the 12 s lease; a few hundred, a fraction of a second.
func failoverExtra(n int, ttl time.Duration) time.Duration {
	return min(time.Duration(n)*time.Millisecond, ttl)
}

// ensure adds any listed session the table lacks, with a full lease.
func (t *leaseTable) ensure(ids []uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		if _, ok := t.end[id]; !ok {
			t.end[id] = lease.MasterEnd(now, t.ttl)
			t.fresh[id] = true
		}
	}
}

func (t *leaseTable) clear() { t.reset(nil, time.Time{}) }

func (t *leaseTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.end)
}

// extend makes the session's lease end a full lease after now, never
// earlier than it was. It reports false for a session not in the table.
func (t *leaseTable) extend(id uint64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	end, ok := t.end[id]
	if !ok || now.After(end) { // an ended lease is being expired: no revival
		return false
	}
	if n := lease.MasterEnd(now, t.ttl); n.After(end) {
		t.end[id] = n
	}
	return true
}

// endOf is the session's lease end; ok is false for a session not in the
// table (ended, or unknown to this master).
func (t *leaseTable) endOf(id uint64) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	end, ok := t.end[id]
	return end, ok
}

func (t *leaseTable) add(id uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.end[id] = lease.MasterEnd(now, t.ttl)
}

func (t *leaseTable) remove(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.end, id)
	delete(t.fresh, id)
}

// expired lists the sessions whose lease ended before now.
func (t *leaseTable) expired(now time.Time) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []uint64
	for id, end := range t.end {
		if now.After(end) {
			out = append(out, id)
		}
	}
	return out
}

// holdFor is how long a KeepAlive that arrives at now is held: until the
// lease is within margin of its end, so the client has time to send the
// next one. The margin is a quarter of the lease, at least one second.
//
// The first KeepAlive of a session this master inherited is not held at
// all (see fresh).
func (t *leaseTable) holdFor(id uint64, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	end, ok := t.end[id]
	if !ok || t.fresh[id] {
		delete(t.fresh, id)
		return 0
	}
	return lease.KeepAliveHold(now, end, t.ttl)
}
