package fsm

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
)

// FSM is hasp's replicated state machine. See the package documentation
// for the concurrency contract.
type FSM struct {
	cfg Config

	// view is the published namespace and the applied index it reflects.
	// Apply and Restore swap it; readers load it without locking.
	view atomic.Pointer[View]

	notify atomic.Pointer[LockNotify]

	// events is the history of recent change events (events.go); it has
	// its own locks.
	events *history

	waitMu sync.Mutex
	// waitCh is closed (and cleared) when a new view is published; nil when
	// nobody is waiting, so an Apply without waiters allocates nothing.
	waitCh chan struct{}

	mu sync.RWMutex // protects following fields
	// sessions holds every live session by id. Apply and Restore write it
	// under mu; Session and Sessions read it under mu.RLock.
	sessions map[uint64]*session
	// locks is the lock table (see lock.go). Apply and Restore write it
	// under mu; LockState, NextLockDeadline and CheckSequencer read it under
	// mu.RLock.
	locks *locks.Table
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

// New returns an FSM holding only the root directory, at index 0.
func New(cfg Config) *FSM {
	if cfg.ContentLimit <= 0 {
		cfg.ContentLimit = fsapi.DefaultContentLimit
	}
	if cfg.EventHistory <= 0 {
		cfg.EventHistory = DefaultEventHistory
	}
	f := &FSM{cfg: cfg, sessions: make(map[uint64]*session), locks: locks.NewTable(), events: newHistory(cfg.EventHistory)}
	f.locks.ReportReleases() // lock-released events (granted)
	f.view.Store(&View{tree: emptyTree()})
	return f
}

// Config returns the configuration, defaults filled in.
func (f *FSM) Config() Config { return f.cfg }

// View returns the namespace as of the last applied index, in O(1).
func (f *FSM) View() *View { return f.view.Load() }

// AppliedIndex is the index of the last applied entry (or of the restored
// snapshot).
func (f *FSM) AppliedIndex() uint64 { return f.view.Load().rev }

// WaitApplied returns nil once AppliedIndex() >= index, or ctx.Err() if
// ctx ends first.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.waitMu.Lock()
		if f.waitCh == nil {
			f.waitCh = make(chan struct{})
		}
		ch := f.waitCh
		f.waitMu.Unlock()
		// publish stores the view before closing the channel, so checking
		// after taking the channel cannot miss a wake-up.
		if f.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// publish makes v the current view and wakes every waiter.
func (f *FSM) publish(v *View) {
	f.view.Store(v)
	f.waitMu.Lock()
	if f.waitCh != nil {
		close(f.waitCh)
		f.waitCh = nil
	}
	f.waitMu.Unlock()
}

// Session returns a live session by id.
func (f *FSM) Session(id uint64) (SessionInfo, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s, ok := f.sessions[id]
	if !ok {
		return SessionInfo{}, false
	}
	return s.info(), true
}

// Sessions returns every live session, sorted by id.
func (f *FSM) Sessions() []SessionInfo {
	f.mu.RLock()
	out := make([]SessionInfo, 0, len(f.sessions))
	for _, s := range f.sessions {
		out = append(out, s.info())
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return cmpU64(a.ID, b.ID) })
	return out
}

// Apply applies one committed log entry. It returns a *Result for every
// LogCommand entry and nil for other entry types, which it ignores. It
// panics on a command it cannot decode unless the command's type carries
// IgnoreUnknown, in which case it skips it (advancing the applied index).
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	t, cmd, err := Decode(l.Data)
	if err != nil {
		if t&IgnoreUnknown != 0 {
			cur := f.view.Load()
			f.publish(&View{tree: cur.tree, rev: l.Index})
			f.events.record(l.Index, nil)
			return nil
		}
		panic(fmt.Sprintf("fsm: entry %d: %v", l.Index, err))
	}
	return f.applyCmd(l.Index, l.Term, cmd)
}

// applyCmd applies one decoded command, appended in term, at index and
// publishes the result.
func (f *FSM) applyCmd(index, term uint64, cmd any) *Result {
	f.mu.Lock()
	tx := &txn{f: f, index: index, term: term, tree: f.view.Load().tree.Txn()}
	r := tx.apply(cmd)
	f.publish(&View{tree: tx.tree.Commit(), rev: index})
	f.mu.Unlock()
	// After the publish: a watcher that receives an event and then reads
	// sees the change.
	f.events.record(index, tx.events)
	if len(tx.grants) > 0 || len(tx.dropped) > 0 {
		if fn := f.notify.Load(); fn != nil {
			(*fn)(tx.grants, tx.dropped)
		}
	}
	return &r
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
