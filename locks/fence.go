package locks

import (
	"fmt"
	"sync"
)

// Fence is for a server that cannot ask the master (no session): it
// remembers the newest sequencer it has seen per lock path and rejects
// older ones, so a request from a holder that has since lost the lock is
// refused once any newer holder's request has been seen. Pair it with
// lock-delay, which covers the requests that arrive before the new holder's
// first one.
//
// Newer means a later node instance, or the same instance and a generation
// at least as high (shared holders of one holding share a generation, and
// one holder sends many requests). The zero value is ready to use, and a
// Fence is safe for concurrent use by many goroutines.
type Fence struct {
	mu     sync.Mutex // protects following fields
	newest map[string]Sequencer
}

// Check accepts seq, and remembers it, if it is at least as new as every
// sequencer seen before for its path; otherwise it returns an error
// wrapping ErrStaleSequencer.
func (f *Fence) Check(seq Sequencer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.newest[seq.Path]; ok && olderThan(seq, n) {
		return fmt.Errorf("%w: %v: newer sequencer seen for %s (instance %d, generation %d)",
			ErrStaleSequencer, seq, seq.Path, n.Instance, n.Generation)
	}
	if f.newest == nil {
		f.newest = map[string]Sequencer{}
	}
	f.newest[seq.Path] = seq
	return nil
}

// Newest returns the newest sequencer seen for path.
func (f *Fence) Newest(path string) (Sequencer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.newest[path]
	return s, ok
}

func olderThan(a, b Sequencer) bool {
	return a.Instance < b.Instance || a.Instance == b.Instance && a.Generation < b.Generation
}
