package fsm

import (
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
)

// sentinels maps each ErrKind to its fsapi sentinel (index = kind).
var sentinels = [...]error{
	ErrKindOK:                 nil,
	ErrKindNotExist:           fsapi.ErrNotExist,
	ErrKindExist:              fsapi.ErrExist,
	ErrKindNotEmpty:           fsapi.ErrNotEmpty,
	ErrKindGenerationMismatch: fsapi.ErrGenerationMismatch,
	ErrKindTooLarge:           fsapi.ErrTooLarge,
	ErrKindBadName:            fsapi.ErrBadName,
	ErrKindBadRequest:         fsapi.ErrBadRequest,
	ErrKindSessionExpired:     fsapi.ErrSessionExpired,
	ErrKindHandleInvalid:      fsapi.ErrHandleInvalid,
	ErrKindNotDir:             fsapi.ErrNotDir,
	ErrKindIsDir:              fsapi.ErrIsDir,
	ErrKindPermission:         fsapi.ErrPermission,
	ErrKindHeld:               locks.ErrHeld,
	ErrKindLockDelay:          locks.ErrLockDelay,
	ErrKindNotHeld:            locks.ErrNotHeld,
	ErrKindStaleSequencer:     locks.ErrStaleSequencer,
	ErrKindNoWaiter:           locks.ErrNoWaiter,
	ErrKindSequenceExhausted:  fsapi.ErrSequenceExhausted,
	ErrKindStaleTerm:          fsapi.ErrUnavailable,
}

// sentinel returns the fsapi error for k, or nil for ErrKindOK and for
// kinds this build does not know.
func (k ErrKind) sentinel() error {
	if int(k) < len(sentinels) {
		return sentinels[k]
	}
	return nil
}

func (k ErrKind) String() string {
	if k == ErrKindOK {
		return "ok"
	}
	if s := k.sentinel(); s != nil {
		return s.Error()
	}
	return fmt.Sprintf("ErrKind(%d)", uint8(k))
}

// kindOf returns the ErrKind of the first sentinel err wraps (ErrKindOK for
// nil, ErrKindBadRequest for an error that wraps none).
func kindOf(err error) ErrKind {
	if err == nil {
		return ErrKindOK
	}
	for k, s := range sentinels {
		if s != nil && errors.Is(err, s) {
			return ErrKind(k)
		}
	}
	return ErrKindBadRequest
}

// resultError is what Result.Err returns: its text is the stored message
// and it unwraps to the fsapi sentinel.
type resultError struct {
	kind error
	msg  string
}

func (e *resultError) Error() string { return e.msg }
func (e *resultError) Unwrap() error { return e.kind }

func (r *Result) err() error {
	if r == nil || r.ErrKind == ErrKindOK {
		return nil
	}
	s := r.ErrKind.sentinel()
	msg := r.ErrMsg
	if s == nil {
		return fmt.Errorf("fsm: unknown error kind %d: %s", r.ErrKind, msg)
	}
	if msg == "" {
		msg = s.Error()
	}
	var err error = &resultError{kind: s, msg: msg}
	if r.FailedOp > 0 {
		err = &fsapi.MultiOpError{Op: r.FailedOp - 1, Err: err}
	}
	return err
}

// fail returns a failed Result whose message is the kind's sentinel text
// followed by the formatted detail.
func fail(k ErrKind, format string, args ...any) Result {
	return Result{ErrKind: k, ErrMsg: k.sentinel().Error() + ": " + fmt.Sprintf(format, args...)}
}

// failErr returns a failed Result for an error that wraps an fsapi sentinel.
func failErr(err error) Result {
	return Result{ErrKind: kindOf(err), ErrMsg: err.Error()}
}
