package locks

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Lock is one lock's state, as plain data: Table.Lock and Table.State
// return copies, and Restore rebuilds a Table from them. Slices are nil
// when empty, so a State survives a round trip through msgpack or JSON
// unchanged.
type Lock struct {
	Path string
	// Mode is the mode it is held in; 0 when free.
	Mode Mode
	// Generation is bumped on every free → held transition (it is the
	// node's fsapi.Stat.LockGeneration).
	Generation uint64
	// DelayUntil is when the latest lock-delay ends (Unix ns); while the
	// lock is free and now < DelayUntil nobody may take it. 0: none.
	DelayUntil int64
	// Holders, sorted by Holder: one when Exclusive, any number when Shared.
	Holders []Hold
	// Waiters in FIFO order: the head is granted next.
	Waiters []Waiter
}

// Held says whether anyone holds the lock.
func (l Lock) Held() bool { return len(l.Holders) > 0 }

// Hold is one holder of a lock.
type Hold struct {
	Holder    Holder
	LockDelay time.Duration // applies if the holder is lost while holding
	Waiter    uint64        // the waiter id it was granted as; 0 if granted at once
}

// Waiter is one queued request.
type Waiter struct {
	ID        uint64 // unique in the table, increasing in queue order
	Holder    Holder
	Mode      Mode
	LockDelay time.Duration
}

// State is a whole table as plain data, for snapshots. Locks are sorted by
// path, so identical tables give identical States.
type State struct {
	// LastWaiter is the last waiter id handed out (ids are never reused).
	LastWaiter uint64
	Locks      []Lock
}

func (l *Lock) clone() Lock {
	c := *l
	c.Holders = cloneNil(l.Holders)
	c.Waiters = cloneNil(l.Waiters)
	return c
}

// cloneNil copies s, returning nil for an empty s.
func cloneNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// State returns a deep copy of the table, locks sorted by path. It is
// O(locks): call it where the FSM snapshots its other mutable state.
func (t *Table) State() State {
	s := State{LastWaiter: t.lastWaiter}
	for _, p := range sortedKeys(t.locks) {
		s.Locks = append(s.Locks, t.locks[p].clone())
	}
	return s
}

// Restore rebuilds a table from a State (which it copies). It checks the
// table's invariants and fails, changing nothing, on a State that breaks
// them: a snapshot that does not describe a possible table is corrupt.
func Restore(s State) (*Table, error) {
	t := NewTable()
	t.lastWaiter = s.LastWaiter
	for i := range s.Locks {
		l := s.Locks[i].clone()
		if _, dup := t.locks[l.Path]; dup {
			return nil, fmt.Errorf("locks: restore: lock %s appears twice", l.Path)
		}
		t.locks[l.Path] = &l
		for _, h := range l.Holders {
			t.index(h.Holder.Session, l.Path, +1)
		}
		for _, w := range l.Waiters {
			t.index(w.Holder.Session, l.Path, +1)
		}
		t.updateDelayed(&l)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("locks: restore: %w", err)
	}
	return t, nil
}

// check verifies the invariants every reachable table keeps. Restore uses
// it; tests call it after every operation.
func (t *Table) check() error {
	ids := map[uint64]string{}
	for _, p := range sortedKeys(t.locks) {
		if err := t.locks[p].check(p, t.lastWaiter, ids); err != nil {
			return fmt.Errorf("lock %s: %w", p, err)
		}
	}
	return nil
}

func (l *Lock) check(path string, last uint64, ids map[uint64]string) error {
	if l.Path != path {
		return fmt.Errorf("stored under %q", l.Path)
	}
	if err := checkPath(path); err != nil {
		return err
	}
	if err := l.checkHolders(last); err != nil {
		return err
	}
	prev := uint64(0)
	for _, w := range l.Waiters {
		switch {
		case w.ID <= prev || w.ID > last:
			return fmt.Errorf("waiter id %d out of order or above the last id %d", w.ID, last)
		case ids[w.ID] != "":
			return fmt.Errorf("waiter id %d also used on %s", w.ID, ids[w.ID])
		case !w.Mode.Valid() || w.Holder.Session == 0 || ValidateLockDelay(w.LockDelay) != nil:
			return fmt.Errorf("bad waiter %+v", w)
		case l.holds(w.Holder) >= 0:
			return fmt.Errorf("%v both holds and waits", w.Holder)
		}
		for _, o := range l.Waiters {
			if o.Holder == w.Holder && o.ID != w.ID {
				return fmt.Errorf("%v waits twice", w.Holder)
			}
		}
		ids[w.ID], prev = path, w.ID
	}
	return nil
}

func (l *Lock) checkHolders(last uint64) error {
	switch {
	case len(l.Holders) == 0 && l.Mode != 0:
		return fmt.Errorf("free but mode %v", l.Mode)
	case len(l.Holders) > 0 && !l.Mode.Valid():
		return fmt.Errorf("held in invalid mode %v", l.Mode)
	case l.Mode == Exclusive && len(l.Holders) != 1:
		return fmt.Errorf("exclusive with %d holders", len(l.Holders))
	case len(l.Holders) > 0 && l.Generation == 0:
		return fmt.Errorf("held at generation 0")
	}
	for i, h := range l.Holders {
		if i > 0 && !l.Holders[i-1].Holder.less(h.Holder) {
			return fmt.Errorf("holders not sorted or duplicated at %v", h.Holder)
		}
		if h.Holder.Session == 0 || h.Waiter > last || ValidateLockDelay(h.LockDelay) != nil {
			return fmt.Errorf("bad holder %+v", h)
		}
	}
	return nil
}

// String is a one-line description (used by tests and in messages).
func (l Lock) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v gen=%d", l.Path, l.Mode, l.Generation)
	if l.DelayUntil != 0 {
		fmt.Fprintf(&b, " delay-until=%s", unixTime(l.DelayUntil))
	}
	b.WriteString(" holders=[")
	for i, h := range l.Holders {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.Holder.String())
	}
	b.WriteString("] waiters=[")
	for i, w := range l.Waiters {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "w%d:%v:%v", w.ID, w.Holder, w.Mode)
	}
	b.WriteString("]")
	return b.String()
}
