package fsapi

import "fmt"

// MaxMultiOps is the most operations one multi-op may hold. Their contents
// together may not exceed the cell's content limit.
const MaxMultiOps = 64

// MultiOpError says which operation of a multi-op failed, and why. Nothing
// of the multi-op was applied. It unwraps to the operation's error, so
// errors.Is(err, ErrGenerationMismatch) and friends work on it.
type MultiOpError struct {
	Op  int   // index of the first operation that failed, from 0
	Err error // that operation's error
}

func (e *MultiOpError) Error() string {
	return fmt.Sprintf("fsapi: multi-op not applied: op %d failed: %v", e.Op, e.Err)
}

func (e *MultiOpError) Unwrap() error { return e.Err }
