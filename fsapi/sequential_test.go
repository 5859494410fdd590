package fsapi

import (
	"errors"
	"strings"
	"testing"
)

func TestSequentialName(t *testing.T) {
	tests := []struct {
		prefix string
		n      uint64
		want   string
	}{
		{"/q/job-", 0, "/q/job-0000000000"},
		{"/q/job-", 42, "/q/job-0000000042"},
		{"x", MaxSequence, "x9999999999"},
	}
	for _, tt := range tests {
		if got := SequentialName(tt.prefix, tt.n); got != tt.want {
			t.Errorf("SequentialName(%q, %d) = %q, want %q", tt.prefix, tt.n, got, tt.want)
		}
		if !MaybeSequential(tt.want) {
			t.Errorf("MaybeSequential(%q) = false", tt.want)
		}
	}
}

func TestMaybeSequential(t *testing.T) {
	for path, want := range map[string]bool{
		"/q/job-0000000001":   true,
		"/q/0000000001":       true,
		"/q/job-000000001":    false, // nine digits
		"/q/job-00000000x1":   false,
		"/q0000000001/job":    false, // digits in the parent only
		"/":                   false,
		"/q/job-0000000001.x": false,
	} {
		if got := MaybeSequential(path); got != want {
			t.Errorf("MaybeSequential(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestCheckSequentialPath(t *testing.T) {
	if err := CheckSequentialPath("/q/job-"); err != nil {
		t.Errorf("/q/job-: %v", err)
	}
	for _, p := range []string{"/", "/q/" + strings.Repeat("x", MaxComponentLen-SequenceDigits+1), "/q/a b"} {
		if err := CheckSequentialPath(p); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckSequentialPath(%.20q) = %v, want ErrBadName", p, err)
		}
	}
	if err := CheckSequentialPath("/q/" + strings.Repeat("x", MaxComponentLen-SequenceDigits)); err != nil {
		t.Errorf("longest prefix refused: %v", err)
	}
}
