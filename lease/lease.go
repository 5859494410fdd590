package lease

import "time"

// DefaultEpsilon bounds how far any clock's rate may differ from real time
// (1e-3: a millisecond per second, far beyond what NTP-disciplined or even
// free-running quartz clocks drift).
const DefaultEpsilon = 1e-3

// shrink returns d reduced by the clock-rate bound.
func shrink(d time.Duration, eps float64) time.Duration {
	return d - time.Duration(float64(d)*eps)
}

// MasterLength is the master lease length L = heartbeat·(1−ε) − δ, where δ
// is a margin for scheduling delays between taking t0 and sending. It is at
// least 0.
func MasterLength(heartbeat time.Duration, eps float64, delta time.Duration) time.Duration {
	return max(shrink(heartbeat, eps)-delta, 0)
}

// RestartDelay is how long a replica that restarts with existing state
// waits before starting Raft: its memory of the leader it was sticky to is
// gone, so it must not vote inside a lease it helped grant.
func RestartDelay(heartbeat time.Duration, eps float64) time.Duration {
	return heartbeat + time.Duration(float64(heartbeat)*eps)
}

// Master is one replica's master lease. The zero value holds no lease. It
// is not safe for concurrent use; the master guards it.
type Master struct {
	term      uint64
	notBefore time.Time // lease reads wait out older masters' leases
	expiry    time.Time
}

// Start begins a term of leadership. No lease read is valid before
// notBefore, which the new master sets to when it took over plus L, so any
// lease an older master held has expired.
func (m *Master) Start(term uint64, notBefore time.Time) {
	*m = Master{term: term, notBefore: notBefore}
}

// Renewed records that an entry proposed at sentAt (taken before the entry
// was handed to Raft) was committed in term. The lease then lasts until
// sentAt + length, unless it already lasts longer.
func (m *Master) Renewed(term uint64, sentAt time.Time, length time.Duration) {
	if term != m.term || term == 0 {
		return
	}
	if end := sentAt.Add(length); end.After(m.expiry) {
		m.expiry = end
	}
}

// Drop ends the lease at once (before a leadership transfer, on
// step-down, on any error or term change).
func (m *Master) Drop() { *m = Master{} }

// Valid says whether a read served from memory in term, checked at now,
// is linearizable.
func (m *Master) Valid(term uint64, now time.Time) bool {
	return term != 0 && term == m.term && !now.Before(m.notBefore) && now.Before(m.expiry)
}

// Remaining is how long the lease still holds at now (0 if it does not).
func (m *Master) Remaining(term uint64, now time.Time) time.Duration {
	if !m.Valid(term, now) {
		return 0
	}
	return m.expiry.Sub(now)
}

// ClientEnd is the client's conservative end of a session lease granted by
// a KeepAlive reply: the client sent the call at sentAt (its clock), the
// master held it for held and then granted ttl from its reply. The reply
// left no earlier than sentAt + held in real time, and the client's clock
// may run slow by ε, so both durations are shrunk.
func ClientEnd(sentAt time.Time, held, ttl time.Duration, eps float64) time.Time {
	return sentAt.Add(shrink(held+ttl, eps))
}

// MasterEnd is the master's end of a session lease it grants at replyAt.
func MasterEnd(replyAt time.Time, ttl time.Duration) time.Time { return replyAt.Add(ttl) }

// GraceEnd is when a session in jeopardy since localEnd is declared
// expired by the client.
func GraceEnd(localEnd time.Time, grace time.Duration) time.Time { return localEnd.Add(grace) }

// KeepAliveHold is how long the master holds a KeepAlive that arrives at now
// for a session whose lease ends at end: until a margin before the end (a
// quarter of the TTL, at least a second, at most the TTL) so the client has
// time to send the next one. A lease the master lengthened past one TTL
// (after a fail-over) is held as if it ended a TTL from now: the client
// knows only the TTL its last reply granted, and must not run out of it
// while its KeepAlive waits.
func KeepAliveHold(now, end time.Time, ttl time.Duration) time.Duration {
	margin := min(max(ttl/4, time.Second), ttl)
	return max(min(end.Sub(now), ttl)-margin, 0)
}

// State is a client session's state at an instant.
type State uint8

const (
	// Safe: the local lease holds; the cache may be used.
	Safe State = iota
	// Jeopardy: the local lease ran out; the cache is off and calls wait
	// while the client hunts for a master.
	Jeopardy
	// Expired: the grace period ran out too.
	Expired
)

func (s State) String() string {
	switch s {
	case Safe:
		return "safe"
	case Jeopardy:
		return "jeopardy"
	}
	return "expired"
}

// ClientState is the session's state at now given its local lease end.
func ClientState(now, localEnd time.Time, grace time.Duration) State {
	switch {
	case now.Before(localEnd):
		return Safe
	case now.Before(GraceEnd(localEnd, grace)):
		return Jeopardy
	}
	return Expired
}
