package wire

import (
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
)

// Code is an error code on the wire.
type Code uint16

// Error codes. Zero means success. Codes are part of the protocol: never
// renumber them.
const (
	CodeOK Code = iota
	CodeInternal
	CodeNotExist
	CodeExist
	CodeNotEmpty
	CodeGenerationMismatch
	CodeTooLarge
	CodeBadName
	CodeBadRequest
	CodeSessionExpired
	CodeHandleClosed
	CodeHandleInvalid
	CodePermission
	CodeNotDir
	CodeIsDir
	CodeWrongCell
	CodeNotMaster
	CodeWrongEpoch
	CodeUnavailable
	CodeHeld
	CodeLockDelay
	CodeNotHeld
	CodeNoWaiter
	CodeStaleSequencer
	CodeCompacted
	// Codes 25-29 belong to sequential nodes and multi-ops.
	CodeSequenceExhausted Code = 25

	// Follower reads (25–29 are another feature's).

	CodeBehind Code = 30

	lastCode = CodeBehind
)

var codeErrs = map[Code]error{
	CodeNotExist:           fsapi.ErrNotExist,
	CodeExist:              fsapi.ErrExist,
	CodeNotEmpty:           fsapi.ErrNotEmpty,
	CodeGenerationMismatch: fsapi.ErrGenerationMismatch,
	CodeTooLarge:           fsapi.ErrTooLarge,
	CodeBadName:            fsapi.ErrBadName,
	CodeBadRequest:         fsapi.ErrBadRequest,
	CodeSessionExpired:     fsapi.ErrSessionExpired,
	CodeHandleClosed:       fsapi.ErrHandleClosed,
	CodeHandleInvalid:      fsapi.ErrHandleInvalid,
	CodePermission:         fsapi.ErrPermission,
	CodeNotDir:             fsapi.ErrNotDir,
	CodeIsDir:              fsapi.ErrIsDir,
	CodeWrongCell:          fsapi.ErrWrongCell,
	CodeUnavailable:        fsapi.ErrUnavailable,
	CodeHeld:               fsapi.ErrHeld,
	CodeLockDelay:          fsapi.ErrLockDelay,
	CodeNotHeld:            fsapi.ErrNotHeld,
	CodeNoWaiter:           fsapi.ErrNoWaiter,
	CodeStaleSequencer:     fsapi.ErrStaleSequencer,
	CodeCompacted:          fsapi.ErrCompacted,
	CodeSequenceExhausted:  fsapi.ErrSequenceExhausted,
	CodeBehind:             fsapi.ErrBehind,
}

// Error is an error as carried on the wire.
type Error struct {
	Code    Code
	Message string // full human-readable text
	Leader  string `codec:",omitempty"` // CodeNotMaster: the master's address
	Epoch   uint64 `codec:",omitempty"` // CodeWrongEpoch: the current epoch
	// Op is 1 + the index of the operation of a Multi that failed (0: the
	// error is not about one operation). Code and Message are that
	// operation's error.
	Op int `codec:",omitempty"`
}

// ToWire converts err to its wire form; nil stays nil.
func ToWire(err error) *Error {
	if err == nil {
		return nil
	}
	var nm *fsapi.NotMasterError
	if errors.As(err, &nm) {
		return &Error{Code: CodeNotMaster, Message: err.Error(), Leader: nm.Leader}
	}
	var we *fsapi.WrongEpochError
	if errors.As(err, &we) {
		return &Error{Code: CodeWrongEpoch, Message: err.Error(), Epoch: we.Epoch}
	}
	var me *fsapi.MultiOpError
	if errors.As(err, &me) && me.Op >= 0 {
		w := ToWire(me.Err)
		w.Op = me.Op + 1
		return w
	}
	for code := CodeOK + 1; code <= lastCode; code++ { // in code order: deterministic
		if sentinel, ok := codeErrs[code]; ok && errors.Is(err, sentinel) {
			return &Error{Code: code, Message: err.Error()}
		}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// Err converts a wire error back to one that errors.Is matches against
// fsapi's sentinels, keeping the server's message.
func (e *Error) Err() error {
	if e == nil || e.Code == CodeOK {
		return nil
	}
	if e.Op > 0 {
		inner := *e
		inner.Op = 0
		return &fsapi.MultiOpError{Op: e.Op - 1, Err: inner.Err()}
	}
	switch e.Code {
	case CodeNotMaster:
		return &fsapi.NotMasterError{Leader: e.Leader}
	case CodeWrongEpoch:
		return &fsapi.WrongEpochError{Epoch: e.Epoch}
	}
	if sentinel, ok := codeErrs[e.Code]; ok {
		return &remoteError{sentinel: sentinel, msg: e.Message}
	}
	return fmt.Errorf("wire: server error (code %d): %s", e.Code, e.Message)
}

// remoteError keeps the server's message while matching the sentinel.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string {
	if e.msg == "" {
		return e.sentinel.Error()
	}
	return e.msg
}

func (e *remoteError) Unwrap() error { return e.sentinel }
