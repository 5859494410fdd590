package fsapi

import (
	"fmt"
	"strconv"
)

// Sequential nodes. An Open with the sequential option creates the node
// PREFIX + NUMBER, where PREFIX is the last component of the name given and
// NUMBER is the parent directory's sequence counter, zero-padded to
// SequenceDigits digits (ZooKeeper's width), so that names sort in creation
// order. Each directory keeps its own counter; the replicated state machine
// takes the next number when it applies the create, so numbers are never
// reused, even across master fail-overs. The counter starts at 0 with each
// new directory instance.

// SequenceDigits is the width of a sequential node's number.
const SequenceDigits = 10

// MaxSequence is the largest sequence number. A directory whose counter
// has passed it refuses sequential creates with ErrSequenceExhausted
// rather than widen the number (which would break the name order) or
// wrap (which would reuse names).
const MaxSequence uint64 = 9_999_999_999

// SequentialName is the name of the sequential node numbered n created
// from prefix (a path or a base name).
func SequentialName(prefix string, n uint64) string {
	return fmt.Sprintf("%s%0*d", prefix, SequenceDigits, n)
}

// CheckSequentialPath checks a path given to a sequential create: the
// longest name the counter can produce from it must be valid.
func CheckSequentialPath(path string) error {
	if path == Root {
		return badName(path, "a sequential create needs a name prefix, not the root")
	}
	return CheckPath(SequentialName(path, MaxSequence))
}

// MaybeSequential says whether a sequential create could ever produce
// path: its last component ends in SequenceDigits decimal digits. The
// master never lets a client cache the absence of such a name, because it
// cannot know which one a sequential create will take before the state
// machine applies it, and so cannot invalidate it beforehand.
func MaybeSequential(path string) bool {
	base := Base(path)
	if len(base) < SequenceDigits {
		return false
	}
	_, err := strconv.ParseUint(base[len(base)-SequenceDigits:], 10, 64)
	return err == nil
}
