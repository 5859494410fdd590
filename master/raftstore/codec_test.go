package raftstore

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func codecSamples() []*raft.Log {
	logs := makeLogs(0, 7, 3)
	logs = append(logs,
		&raft.Log{Index: ^uint64(0), Term: ^uint64(0), Type: raft.LogType(255)},
		&raft.Log{Data: []byte{}, Extensions: nil},
		&raft.Log{Index: 9, Data: make([]byte, 70_000), AppendedAt: time.Now()},
	)
	return logs
}

func TestCodecRoundTrip(t *testing.T) {
	for _, want := range codecSamples() {
		buf, err := encodeLog(want)
		if err != nil {
			t.Fatal(err)
		}
		var got raft.Log
		if err := decodeLog(buf, &got); err != nil {
			t.Fatalf("decode %+v: %v", want, err)
		}
		if !sameLog(&got, want) {
			t.Fatalf("round trip: got %+v, want %+v", got, *want)
		}
		if (got.Data == nil) != (want.Data == nil) || (got.Extensions == nil) != (want.Extensions == nil) {
			t.Fatalf("nil-ness not preserved: got %+v, want %+v", got, *want)
		}
		if want.AppendedAt.IsZero() && got.AppendedAt != (time.Time{}) {
			t.Fatalf("zero time decoded as %v", got.AppendedAt)
		}
	}
}

// TestCodecDataDoesNotAliasExtensions guards the capped sub-slices: an
// append to Data must not overwrite Extensions in the shared buffer.
func TestCodecDataDoesNotAliasExtensions(t *testing.T) {
	buf, _ := encodeLog(&raft.Log{Data: []byte("ab"), Extensions: []byte("cd")})
	var got raft.Log
	if err := decodeLog(buf, &got); err != nil {
		t.Fatal(err)
	}
	_ = append(got.Data, 'X', 'Y', 'Z')
	if string(got.Extensions) != "cd" {
		t.Fatalf("Extensions clobbered: %q", got.Extensions)
	}
}

func TestCodecCorruptInput(t *testing.T) {
	for _, l := range codecSamples() {
		buf, _ := encodeLog(l)
		for n := range len(buf) {
			mustCorrupt(t, buf[:n])
		}
		mustCorrupt(t, append(append([]byte{}, buf...), 0))
		bad := append([]byte{}, buf...)
		bad[0] = 99
		mustCorrupt(t, bad)
	}
	// A blob length far beyond the buffer, and a time blob of garbage.
	mustCorrupt(t, []byte{codecVersion, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	mustCorrupt(t, []byte{codecVersion, 1, 1, 0, 0, 0, 3, 0xde, 0xad})
	r := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		var l raft.Log
		_ = decodeLog(b, &l) // must not panic
	}
}

func mustCorrupt(t *testing.T, b []byte) {
	t.Helper()
	l := raft.Log{Index: 42}
	err := decodeLog(b, &l)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("decodeLog(%x) err = %v, want ErrCorrupt", b, err)
	}
	if l.Index != 42 {
		t.Fatalf("decodeLog(%x) modified out on error", b)
	}
}

func FuzzDecodeLog(f *testing.F) {
	for _, l := range codecSamples()[:8] {
		buf, _ := encodeLog(l)
		f.Add(buf)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		if err := decodeLog(b, &l); err != nil {
			return
		}
		again, err := encodeLog(&l)
		if err != nil {
			t.Fatal(err)
		}
		var l2 raft.Log
		if err := decodeLog(again, &l2); err != nil || !sameLog(&l, &l2) {
			t.Fatalf("re-encode mismatch: %v", err)
		}
	})
}

func TestLogKeyOrder(t *testing.T) {
	idx := []uint64{0, 1, 255, 256, 1 << 32, ^uint64(0)}
	for i := 1; i < len(idx); i++ {
		if string(logKey(idx[i-1])) >= string(logKey(idx[i])) {
			t.Fatalf("logKey(%d) >= logKey(%d)", idx[i-1], idx[i])
		}
	}
	for _, v := range idx {
		got, err := parseLogKey(logKey(v))
		if err != nil || got != v {
			t.Fatalf("parseLogKey(logKey(%d)) = %d, %v", v, got, err)
		}
	}
	if _, err := parseLogKey(stableKey([]byte("12345678"))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("parseLogKey(stable key) err = %v", err)
	}
}
