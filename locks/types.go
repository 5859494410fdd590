package locks

import (
	"fmt"
	"strconv"
	"time"

	"github.com/haspcell/hasp/fsapi"
)

// Lock-delay bounds (DESIGN.md §7). The table itself never substitutes the
// default: a LockDelay of 0 means "no lock-delay", so whoever resolves the
// Open options must turn "not given" into DefaultLockDelay first.
const (
	// DefaultLockDelay is the lock-delay of a handle that did not choose one.
	DefaultLockDelay = 10 * time.Second
	// MaxLockDelay is the longest lock-delay a handle may choose.
	MaxLockDelay = 60 * time.Second
)

// ValidateLockDelay accepts 0 (no lock-delay) up to MaxLockDelay. Anything
// else is rejected with an error wrapping fsapi.ErrBadRequest.
func ValidateLockDelay(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("%w: locks: lock-delay %v is negative (0 means none; the default is %v, the maximum %v)",
			fsapi.ErrBadRequest, d, DefaultLockDelay, MaxLockDelay)
	case d > MaxLockDelay:
		return fmt.Errorf("%w: locks: lock-delay %v exceeds the maximum %v",
			fsapi.ErrBadRequest, d, MaxLockDelay)
	}
	return nil
}

// Mode is how a lock is held. The zero value is not a mode: a free lock
// has Mode 0.
type Mode uint8

const (
	// Exclusive: one holder, no one else.
	Exclusive Mode = 1
	// Shared: any number of shared holders, no exclusive one.
	Shared Mode = 2
)

// Valid says whether m is Exclusive or Shared.
func (m Mode) Valid() bool { return m == Exclusive || m == Shared }

func (m Mode) String() string {
	switch m {
	case 0:
		return "free"
	case Exclusive:
		return "exclusive"
	case Shared:
		return "shared"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "exclusive" (or "excl") and "shared".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "exclusive", "excl":
		return Exclusive, nil
	case "shared":
		return Shared, nil
	}
	return 0, fmt.Errorf("%w: locks: unknown lock mode %q (want exclusive or shared)", fsapi.ErrBadRequest, s)
}

// Holder names who holds or waits for a lock: a handle of a session. A
// session's handles are distinct holders; Session 0 is not a session.
type Holder struct {
	Session uint64
	Handle  uint64
}

// String is "s<session>/h<handle>".
func (h Holder) String() string {
	return "s" + strconv.FormatUint(h.Session, 10) + "/h" + strconv.FormatUint(h.Handle, 10)
}

func (h Holder) less(o Holder) bool {
	return h.Session < o.Session || h.Session == o.Session && h.Handle < o.Handle
}

func cmpHolder(a, b Holder) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// Request asks for the lock on Path. It is plain data so that it can be
// carried in a replicated command as is.
type Request struct {
	Path   string
	Holder Holder
	Mode   Mode
	// LockDelay is the holder's lock-delay (0 to MaxLockDelay; 0 is none):
	// how long the lock stays unavailable to others if this holder is lost
	// while holding it.
	LockDelay time.Duration
	// Wait queues the request when it cannot be granted at once (Acquire);
	// without it the request fails instead (TryAcquire).
	Wait bool
}

func (r *Request) validate() error {
	if err := checkPath(r.Path); err != nil {
		return err
	}
	if r.Holder.Session == 0 {
		return fmt.Errorf("%w: locks: acquire %s: holder %v has no session", fsapi.ErrBadRequest, r.Path, r.Holder)
	}
	if !r.Mode.Valid() {
		return fmt.Errorf("%w: locks: acquire %s: invalid mode %v", fsapi.ErrBadRequest, r.Path, r.Mode)
	}
	return ValidateLockDelay(r.LockDelay)
}

// checkPath checks a lock's path (a node path inside the cell). The error
// wraps both fsapi.ErrBadRequest and fsapi.ErrBadName.
func checkPath(p string) error {
	if err := fsapi.CheckPath(p); err != nil {
		return fmt.Errorf("%w: locks: %w", fsapi.ErrBadRequest, err)
	}
	return nil
}

// Grant tells the caller that Holder now holds the lock on Path. Every
// operation returns exactly the grants it made, in the order it made them;
// the caller notifies those holders and no one else.
type Grant struct {
	Path       string
	Holder     Holder
	Mode       Mode
	Generation uint64
	// Waiter is the id of the queued request that was granted (0 when a
	// request was granted at once, without queueing).
	Waiter uint64
}

func (g Grant) String() string {
	s := fmt.Sprintf("%s %v %v gen=%d", g.Path, g.Holder, g.Mode, g.Generation)
	if g.Waiter != 0 {
		s += " w" + strconv.FormatUint(g.Waiter, 10)
	}
	return s
}

// Result is the outcome of Acquire.
type Result struct {
	// Granted: the requester holds the lock on return, at Generation.
	// Already is set too when it held it before the call (in that mode).
	Granted    bool
	Already    bool
	Generation uint64
	// Waiter is the id of the queued request when it was queued (Granted
	// false, no error). Pass it to Cancel to withdraw the request.
	Waiter uint64
	// Others are earlier waiters that this call granted because their
	// lock-delay had ended (the call settles the lock at now first). Notify
	// them as for Release. Set even when Acquire returns an error.
	Others []Grant
}

// unixTime renders an instant (Unix nanoseconds) for error messages.
func unixTime(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

// addDelay is now + d, saturating instead of overflowing.
func addDelay(now int64, d time.Duration) int64 {
	if d > 0 && now > (1<<63-1)-int64(d) {
		return 1<<63 - 1
	}
	return now + int64(d)
}
