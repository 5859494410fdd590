package wire_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// sentinels are fsapi's errors with the code each must travel as.
var sentinels = []struct {
	err  error
	code wire.Code
}{
	{fsapi.ErrNotExist, wire.CodeNotExist},
	{fsapi.ErrExist, wire.CodeExist},
	{fsapi.ErrNotEmpty, wire.CodeNotEmpty},
	{fsapi.ErrGenerationMismatch, wire.CodeGenerationMismatch},
	{fsapi.ErrTooLarge, wire.CodeTooLarge},
	{fsapi.ErrBadName, wire.CodeBadName},
	{fsapi.ErrBadRequest, wire.CodeBadRequest},
	{fsapi.ErrSessionExpired, wire.CodeSessionExpired},
	{fsapi.ErrHandleClosed, wire.CodeHandleClosed},
	{fsapi.ErrHandleInvalid, wire.CodeHandleInvalid},
	{fsapi.ErrPermission, wire.CodePermission},
	{fsapi.ErrNotDir, wire.CodeNotDir},
	{fsapi.ErrIsDir, wire.CodeIsDir},
	{fsapi.ErrWrongCell, wire.CodeWrongCell},
	{fsapi.ErrUnavailable, wire.CodeUnavailable},
	{fsapi.ErrCompacted, wire.CodeCompacted},
	{fsapi.ErrSequenceExhausted, wire.CodeSequenceExhausted},
	{fsapi.ErrBehind, wire.CodeBehind},
}

// overTheWire sends an error as a replica does (in a response header,
// through a frame) and converts it back as a client does.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	var buf bytes.Buffer
	resp := &wire.GetStatResponse{RespHeader: wire.RespHeader{Err: wire.ToWire(err), Epoch: 1}}
	if err := wire.WriteFrame(&buf, wire.MsgGetStat, resp); err != nil {
		t.Fatal(err)
	}
	_, body, rerr := wire.ReadFrame(&buf, wire.MaxFrame)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var got wire.GetStatResponse
	if err := wire.Decode(body, &got); err != nil {
		t.Fatal(err)
	}
	return got.Err.Err()
}

func TestErrorSentinelsRoundTrip(t *testing.T) {
	for _, s := range sentinels {
		for _, form := range []struct {
			name string
			err  error
		}{
			{"bare", s.err},
			{"wrapped", fmt.Errorf("open /a/b: %w", s.err)},
			{"twice wrapped", fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", s.err))},
			{"joined", errors.Join(errors.New("context"), s.err)},
		} {
			t.Run(fmt.Sprintf("%d/%s", s.code, form.name), func(t *testing.T) {
				w := wire.ToWire(form.err)
				if w.Code != s.code {
					t.Fatalf("ToWire code %d, want %d", w.Code, s.code)
				}
				if w.Message != form.err.Error() {
					t.Fatalf("message %q, want %q", w.Message, form.err.Error())
				}
				got := overTheWire(t, form.err)
				if !errors.Is(got, s.err) {
					t.Fatalf("errors.Is(%v, %v) = false after the round trip", got, s.err)
				}
				if got.Error() != form.err.Error() {
					t.Fatalf("message after round trip %q, want %q", got.Error(), form.err.Error())
				}
				for _, other := range sentinels {
					if other.err != s.err && errors.Is(got, other.err) {
						t.Fatalf("round-tripped %v also matches %v", got, other.err)
					}
				}
				var nm *fsapi.NotMasterError
				var we *fsapi.WrongEpochError
				if errors.As(got, &nm) || errors.As(got, &we) {
					t.Fatalf("%v became a NotMaster or WrongEpoch error", got)
				}
			})
		}
	}
	// An empty message falls back to the sentinel's text.
	got := (&wire.Error{Code: wire.CodeNotExist}).Err()
	if !errors.Is(got, fsapi.ErrNotExist) || got.Error() != fsapi.ErrNotExist.Error() {
		t.Fatalf("empty message: %v", got)
	}
}

func TestNotMasterAndWrongEpochRoundTrip(t *testing.T) {
	for _, leader := range []string{"", "127.0.0.1:7003", "[::1]:7001", "host.example:1"} {
		for _, err := range []error{&fsapi.NotMasterError{Leader: leader}, fmt.Errorf("call: %w", &fsapi.NotMasterError{Leader: leader})} {
			w := wire.ToWire(err)
			if w.Code != wire.CodeNotMaster || w.Leader != leader {
				t.Fatalf("ToWire(%v) = %+v", err, w)
			}
			var nm *fsapi.NotMasterError
			if got := overTheWire(t, err); !errors.As(got, &nm) || nm.Leader != leader {
				t.Fatalf("round trip of %v: %v", err, got)
			}
		}
	}
	for _, epoch := range []uint64{0, 1, 42, 1<<64 - 1} {
		for _, err := range []error{&fsapi.WrongEpochError{Epoch: epoch}, fmt.Errorf("call: %w", &fsapi.WrongEpochError{Epoch: epoch})} {
			w := wire.ToWire(err)
			if w.Code != wire.CodeWrongEpoch || w.Epoch != epoch {
				t.Fatalf("ToWire(%v) = %+v", err, w)
			}
			var we *fsapi.WrongEpochError
			if got := overTheWire(t, err); !errors.As(got, &we) || we.Epoch != epoch {
				t.Fatalf("round trip of %v: %v", err, got)
			}
		}
	}
}

func TestErrorMappingEdges(t *testing.T) {
	if wire.ToWire(nil) != nil {
		t.Fatal("ToWire(nil) != nil")
	}
	if err := (*wire.Error)(nil).Err(); err != nil {
		t.Fatalf("nil *Error: %v", err)
	}
	if err := (&wire.Error{Code: wire.CodeOK, Message: "ignored"}).Err(); err != nil {
		t.Fatalf("CodeOK: %v", err)
	}
	// Unknown causes travel as internal errors with their text.
	for _, err := range []error{errors.New("disk on fire"), context.DeadlineExceeded} {
		w := wire.ToWire(err)
		if w.Code != wire.CodeInternal || w.Message != err.Error() {
			t.Fatalf("ToWire(%v) = %+v", err, w)
		}
		got := overTheWire(t, err)
		if got == nil {
			t.Fatalf("internal error lost")
		}
		for _, s := range sentinels {
			if errors.Is(got, s.err) {
				t.Fatalf("internal error %v matches %v", got, s.err)
			}
		}
	}
	// A code from a newer server: an error, matching no sentinel, keeping
	// the code and message for the operator.
	got := (&wire.Error{Code: 999, Message: "new thing"}).Err()
	if got == nil || !bytes.Contains([]byte(got.Error()), []byte("999")) || !bytes.Contains([]byte(got.Error()), []byte("new thing")) {
		t.Fatalf("unknown code: %v", got)
	}
	for _, s := range sentinels {
		if errors.Is(got, s.err) {
			t.Fatalf("unknown code matches %v", s.err)
		}
	}
	// ErrClosed and AmbiguousError are client-side: they have no code and
	// must not be mistaken for a domain error on the wire.
	if w := wire.ToWire(fsapi.ErrClosed); w.Code != wire.CodeInternal {
		t.Fatalf("ErrClosed travels as %d", w.Code)
	}
	if w := wire.ToWire(&fsapi.AmbiguousError{Err: fsapi.ErrUnavailable}); w.Code != wire.CodeUnavailable {
		t.Fatalf("AmbiguousError(ErrUnavailable) travels as %d", w.Code)
	}
	// A NotMaster error wins over a sentinel it is joined with, as it
	// decides where the client retries.
	if w := wire.ToWire(errors.Join(fsapi.ErrUnavailable, &fsapi.NotMasterError{Leader: "x:1"})); w.Code != wire.CodeNotMaster || w.Leader != "x:1" {
		t.Fatalf("joined NotMaster: %+v", w)
	}
}

// TestToWireDeterministic: an error that matches two sentinels must get the
// same code every time, or what the client does with it (ErrUnavailable:
// retry; a domain error: return it) changes from call to call. (Regression
// test: ToWire used to range over a map, in Go's random order.)
func TestToWireDeterministic(t *testing.T) {
	cases := []error{
		errors.Join(fsapi.ErrUnavailable, fsapi.ErrNotExist),
		fmt.Errorf("%w: %w", fsapi.ErrBadRequest, fsapi.ErrTooLarge),
		errors.Join(fsapi.ErrSessionExpired, fsapi.ErrPermission, fsapi.ErrIsDir),
	}
	for _, err := range cases {
		codes := map[wire.Code]int{}
		for range 200 {
			codes[wire.ToWire(err).Code]++
		}
		if len(codes) != 1 {
			t.Errorf("ToWire(%q) gave codes %v over 200 calls; want one code every time", err, codes)
		}
	}
}

// TestCompactedErrorRoundTrip: the typed error a master answers a
// compacted watch with travels as CodeCompacted and matches ErrCompacted;
// the numbers travel in WatchResponse.
func TestCompactedErrorRoundTrip(t *testing.T) {
	err := fmt.Errorf("watch /a: %w", &fsapi.CompactedError{From: 3, Floor: 10, Current: 99})
	if w := wire.ToWire(err); w.Code != wire.CodeCompacted {
		t.Fatalf("code %d", w.Code)
	}
	got := overTheWire(t, err)
	if !errors.Is(got, fsapi.ErrCompacted) || got.Error() != err.Error() {
		t.Fatalf("after the round trip: %v", got)
	}
	var ce *fsapi.CompactedError
	if !errors.As(err, &ce) || ce.Current != 99 || !errors.Is(err, fsapi.ErrCompacted) {
		t.Fatalf("typed error: %v", err)
	}
}

// TestMultiOpErrorRoundTrip: a multi-op's failure keeps the op's index,
// its code and its message across the wire.
func TestMultiOpErrorRoundTrip(t *testing.T) {
	inner := fmt.Errorf("%w: /f: expected generation 3, actual 4", fsapi.ErrGenerationMismatch)
	for _, op := range []int{0, 1, 63} {
		err := fmt.Errorf("multi: %w", &fsapi.MultiOpError{Op: op, Err: inner})
		w := wire.ToWire(err)
		if w.Code != wire.CodeGenerationMismatch || w.Op != op+1 || w.Message != inner.Error() {
			t.Fatalf("ToWire(%v) = %+v", err, w)
		}
		got := overTheWire(t, err)
		var me *fsapi.MultiOpError
		if !errors.As(got, &me) || me.Op != op || !errors.Is(got, fsapi.ErrGenerationMismatch) || me.Err.Error() != inner.Error() {
			t.Fatalf("round trip of %v: %v", err, got)
		}
	}
	// Not about one op: no MultiOpError.
	if got := overTheWire(t, fsapi.ErrTooLarge); errors.As(got, new(*fsapi.MultiOpError)) {
		t.Fatalf("plain error became %v", got)
	}
}

// TestReadOptionsOmittedWhenZero: a default read encodes exactly as it did
// before follower reads, so an old replica and every stored seed see the
// same bytes; a follower read's fields travel and decode back.
func TestReadOptionsOmittedWhenZero(t *testing.T) {
	plain, err := wire.Encode(&wire.GetStatRequest{Header: wire.Header{Session: 7, Epoch: 3}, NodeRef: wire.NodeRef{Path: "/a", Instance: 5}})
	if err != nil {
		t.Fatal(err)
	}
	// The example frame of docs/protocol.md ("Encoding").
	want := []byte{0x84, 0xa5, 'E', 'p', 'o', 'c', 'h', 0x03, 0xa8, 'I', 'n', 's', 't', 'a', 'n', 'c', 'e', 0x05,
		0xa4, 'P', 'a', 't', 'h', 0xa2, '/', 'a', 0xa7, 'S', 'e', 's', 's', 'i', 'o', 'n', 0x07}
	if !bytes.Equal(plain, want) {
		t.Fatalf("default GetStat encodes as %x, want %x", plain, want)
	}
	req := &wire.GetContentsRequest{ReadOptions: wire.ReadOptions{Follower: true, MinRevision: 300}, NodeRef: wire.NodeRef{Path: "/a"}}
	enc, err := wire.Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"Follower", "MinRevision"} {
		if !bytes.Contains(enc, []byte(key)) {
			t.Errorf("key %s missing from %x", key, enc)
		}
	}
	var got wire.GetContentsRequest
	if err := wire.Decode(enc, &got); err != nil || got.ReadOptions != req.ReadOptions {
		t.Fatalf("decoded %+v, %v; want %+v", got.ReadOptions, err, req.ReadOptions)
	}
	// A client may send MinRevision with any integer width; a negative one
	// is a bad request, as for every unsigned field.
	neg := []byte{0x81, 0xab, 'M', 'i', 'n', 'R', 'e', 'v', 'i', 's', 'i', 'o', 'n', 0xff}
	if err := wire.Decode(neg, &got); !errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("negative MinRevision: %v, want ErrBadRequest", err)
	}
}

// TestBehindCode: CodeBehind is 30 (codes 25–29 belong to another
// feature) and stays a plain sentinel, not a redirect with a leader.
func TestBehindCode(t *testing.T) {
	if wire.CodeBehind != 30 {
		t.Fatalf("CodeBehind = %d, want 30: codes are never renumbered", wire.CodeBehind)
	}
	err := fmt.Errorf("%w: applied 10, want 12", fsapi.ErrBehind)
	got := overTheWire(t, err)
	var nm *fsapi.NotMasterError
	if !errors.Is(got, fsapi.ErrBehind) || errors.As(got, &nm) || got.Error() != err.Error() {
		t.Fatalf("round trip of %v: %v", err, got)
	}
}
