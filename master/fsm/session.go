package fsm

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/haspcell/hasp/locks"
)

// session is a live session as the FSM keeps it.
type session struct {
	id          uint64
	created     int64
	leaseMillis int64
	clientName  string
	caching     bool // the client caches reads
	// ephemerals holds the paths of the ephemeral nodes it owns.
	ephemerals map[string]struct{}
	// replies holds the Result of each applied write by sequence number,
	// for writes not yet acknowledged (seq >= ackBelow).
	replies  map[uint64]Result
	ackBelow uint64
}

func newSession(id uint64) *session {
	return &session{id: id, ephemerals: map[string]struct{}{}, replies: map[uint64]Result{}}
}

func (s *session) info() SessionInfo {
	return SessionInfo{
		ID:          s.id,
		Created:     s.created,
		LeaseMillis: s.leaseMillis,
		ClientName:  s.clientName,
		Ephemerals:  len(s.ephemerals),
		Caching:     s.caching,
	}
}

func (s *session) clone() *session {
	cp := *s
	cp.ephemerals = maps.Clone(s.ephemerals)
	cp.replies = maps.Clone(s.replies)
	return &cp
}

// ack raises ackBelow to below and forgets the replies below it.
func (s *session) ack(below uint64) {
	if below <= s.ackBelow {
		return
	}
	s.ackBelow = below
	for seq := range s.replies {
		if seq < below {
			delete(s.replies, seq)
		}
	}
}

func (t *txn) createSession(c *CreateSession) Result {
	s := newSession(t.index)
	s.created, s.leaseMillis, s.clientName, s.caching = c.Time, c.LeaseMillis, c.ClientName, c.Caching
	t.f.sessions[s.id] = s
	return Result{Session: s.id}
}

// write runs a client write for meta's session: it checks that the session
// lives and applies the write at most once per sequence number. Session 0
// is an internal write: no session, no deduplication.
func (t *txn) write(meta WriteMeta, do func(*session) Result) Result {
	var s *session
	if meta.Session != 0 {
		if s = t.f.sessions[meta.Session]; s == nil {
			return fail(ErrKindSessionExpired, "session %d", meta.Session)
		}
	}
	numbered := s != nil && meta.Seq != 0
	if numbered {
		if r, done := s.answered(meta); done {
			return r
		}
	}
	if r, stale := t.staleTerm(meta); stale {
		return r // not recorded: the retry, in the right term, applies
	}
	if !numbered {
		return do(s)
	}
	if len(s.replies) >= MaxUnacked {
		return fail(ErrKindBadRequest, "too many unacknowledged writes: session %d has %d",
			s.id, len(s.replies))
	}
	r := do(s)
	if meta.Seq >= s.ackBelow {
		s.replies[meta.Seq] = r
	}
	return r
}

// answered records a numbered write's acknowledgement (meta.AckBelow) and
// returns its answer if the write must not run: its number is below the
// acknowledged mark (stale), or it ran before (the stored answer).
func (s *session) answered(meta WriteMeta) (Result, bool) {
	if meta.Seq < s.ackBelow {
		s.ack(meta.AckBelow)
		return fail(ErrKindBadRequest, "stale sequence number %d: session %d acknowledged all below %d",
			meta.Seq, s.id, s.ackBelow), true
	}
	if r, ok := s.replies[meta.Seq]; ok {
		s.ack(meta.AckBelow)
		return r, true
	}
	s.ack(meta.AckBelow)
	return Result{}, false
}

// staleTerm fails a write that was appended in another term than the one
// it was prepared in (see WriteMeta.Term).
func (t *txn) staleTerm(meta WriteMeta) (Result, bool) {
	if meta.Term == 0 || meta.Term == t.term {
		return Result{}, false
	}
	return fail(ErrKindStaleTerm, "write prepared in term %d was appended in term %d", meta.Term, t.term), true
}

// closeSession first drops every lock the session holds or waits for (at
// now; if the session expired, a lock it held starts its lock-delay, while
// a clean close by the client releases like Release), then deletes the
// session's childless ephemeral nodes, deepest first, then the session and
// its dedup table. Ephemeral directories that still hold children stay;
// they go when they become empty. Result.Grants lists the grants made to
// waiters, except those on nodes this command then deleted.
func (t *txn) closeSession(id uint64, now int64, expired bool) Result {
	s := t.f.sessions[id]
	if s == nil {
		return fail(ErrKindSessionExpired, "session %d", id)
	}
	var gs []locks.Grant
	if expired {
		gs = t.f.locks.SessionLost(id, now)
	} else {
		gs = t.f.locks.SessionClosed(id, now)
	}
	grants := t.granted(gs)
	for _, path := range deepestFirst(s.ephemerals) {
		n, ok := t.get(path)
		if ok && n.Stat.EphemeralOwner == id && n.Stat.Children == 0 {
			t.remove(path, n)
		}
	}
	delete(t.f.sessions, id)
	kept := grants[:0]
	for _, g := range grants {
		if _, ok := t.get(g.Path); ok {
			kept = append(kept, g)
		}
	}
	if len(kept) == 0 {
		kept = nil
	}
	return Result{Session: id, Grants: kept}
}

// deepestFirst returns the paths sorted by depth, deepest first, then by path.
func deepestFirst(set map[string]struct{}) []string {
	paths := slices.Collect(maps.Keys(set))
	slices.SortFunc(paths, func(a, b string) int {
		if c := cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return paths
}

// SessionEphemerals returns the paths of the ephemeral nodes a session
// owns, sorted (none for an unknown session). Safe concurrently with Apply.
func (f *FSM) SessionEphemerals(id uint64) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.sessions[id]
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.ephemerals))
}
