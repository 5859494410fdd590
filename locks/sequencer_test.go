package locks

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/haspcell/hasp/fsapi"
)

var goodSequencers = []Sequencer{
	{Path: "/", Instance: 0, Mode: Exclusive, Generation: 1},
	{Path: "/svc/leader", Instance: 42, Mode: Exclusive, Generation: 7},
	{Path: "/a-b/c_d.e", Instance: 1<<64 - 1, Mode: Shared, Generation: 1<<64 - 1},
}

func TestSequencerRoundTrip(t *testing.T) {
	for _, s := range goodSequencers {
		t.Run(s.String(), func(t *testing.T) {
			b := s.Encode()
			if b[0] != SequencerVersion {
				t.Fatalf("version byte %d", b[0])
			}
			got, err := ParseSequencer(b)
			if err != nil || got != s {
				t.Fatalf("ParseSequencer(Encode) = %+v, %v", got, err)
			}
			got, err = ParseSequencerString(s.String())
			if err != nil || got != s {
				t.Fatalf("ParseSequencerString(String) = %+v, %v", got, err)
			}
		})
	}
	want := "hasp-seq:v1:/svc/leader:42:exclusive:7"
	if got := goodSequencers[1].String(); got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

func TestParseSequencerRejects(t *testing.T) {
	good := goodSequencers[1].Encode()
	with := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"version 0", with(0, 0)},
		{"version 2", with(0, 2)},
		{"header only", good[:seqHeaderLen]},
		{"truncated header", good[:5]},
		{"mode 0", with(1, 0)},
		{"mode 3", with(1, 3)},
		{"generation 0", append(append(bytes.Clone(good[:10]), make([]byte, 8)...), good[18:]...)},
		{"relative path", with(seqHeaderLen, 'x')},
		{"path with colon", append(bytes.Clone(good), ":x"...)},
		{"trailing slash", append(bytes.Clone(good), '/')},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := ParseSequencer(tc.b); !errors.Is(err, fsapi.ErrBadRequest) {
				t.Fatalf("ParseSequencer(%q) = %+v, %v; want fsapi.ErrBadRequest", tc.b, s, err)
			}
		})
	}
}

func TestParseSequencerStringRejects(t *testing.T) {
	for _, s := range []string{
		"", "hasp-seq:v1:", "hasp-seq:v2:/a:1:exclusive:1", "seq:v1:/a:1:exclusive:1",
		"hasp-seq:v1:/a:1:exclusive", "hasp-seq:v1:/a:1:exclusive:1:2", "hasp-seq:v1:/a:1:excl:1",
		"hasp-seq:v1:/a:01:exclusive:1", "hasp-seq:v1:/a:+1:exclusive:1", "hasp-seq:v1:/a:1:exclusive:0",
		"hasp-seq:v1:/a:-1:exclusive:1", "hasp-seq:v1:/a:1:exclusive:18446744073709551616",
		"hasp-seq:v1:a:1:shared:1", "hasp-seq:v1:/a/:1:shared:1", "hasp-seq:v1:/a:1:free:1",
	} {
		t.Run(strconv.Quote(s), func(t *testing.T) {
			if got, err := ParseSequencerString(s); !errors.Is(err, fsapi.ErrBadRequest) {
				t.Fatalf("ParseSequencerString(%q) = %+v, %v", s, got, err)
			}
		})
	}
}

func TestFence(t *testing.T) {
	seq := func(inst, gen uint64) Sequencer {
		return Sequencer{Path: "/a", Instance: inst, Mode: Exclusive, Generation: gen}
	}
	tests := []struct {
		name string
		seen []Sequencer
		try  Sequencer
		ok   bool
	}{
		{"first", nil, seq(1, 1), true},
		{"same again", []Sequencer{seq(1, 3)}, seq(1, 3), true},
		{"newer generation", []Sequencer{seq(1, 3)}, seq(1, 4), true},
		{"older generation", []Sequencer{seq(1, 3)}, seq(1, 2), false},
		{"newer instance, lower generation", []Sequencer{seq(1, 3)}, seq(2, 1), true},
		{"older instance, higher generation", []Sequencer{seq(2, 1)}, seq(1, 9), false},
		{"other path", []Sequencer{seq(1, 3)}, Sequencer{Path: "/b", Instance: 1, Mode: Shared, Generation: 1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f Fence
			for _, s := range tc.seen {
				if err := f.Check(s); err != nil {
					t.Fatal(err)
				}
			}
			err := f.Check(tc.try)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrStaleSequencer) {
				t.Fatalf("Check(%v) = %v, want ok=%v", tc.try, err, tc.ok)
			}
		})
	}
}

// TestFenceConcurrent: many goroutines check increasing generations; the
// fence ends at the maximum and never accepts a sequencer older than one it
// had already accepted when the check began.
func TestFenceConcurrent(t *testing.T) {
	var f Fence
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s := Sequencer{Path: "/p" + strconv.Itoa(i%3), Instance: 1, Mode: Exclusive, Generation: uint64(i*8 + g + 1)}
				before, _ := f.Newest(s.Path)
				err := f.Check(s)
				if err != nil && !errors.Is(err, ErrStaleSequencer) {
					t.Error(err)
				}
				if err == nil && s.Generation < before.Generation {
					t.Errorf("accepted %v after seeing %v", s, before)
				}
			}
		})
	}
	wg.Wait()
	for p, last := range []uint64{198, 199, 197} { // the last i with i%3 == p
		n, ok := f.Newest("/p" + strconv.Itoa(p))
		if !ok || n.Generation != last*8+8 {
			t.Fatalf("newest for /p%d = %v", p, n)
		}
	}
}

func TestTableSequencer(t *testing.T) {
	tbl := NewTable()
	h := hd(1, 1)
	if _, err := tbl.Sequencer("/a", h, 5); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("sequencer of a free lock: %v", err)
	}
	acquire(t, tbl, excl("/a", h, true), 0)
	s, err := tbl.Sequencer("/a", h, 5)
	if err != nil || s != (Sequencer{Path: "/a", Instance: 5, Mode: Exclusive, Generation: 1}) {
		t.Fatalf("Sequencer = %+v, %v", s, err)
	}
	tests := []struct {
		name     string
		do       func()
		instance uint64
		current  bool
	}{
		{"held", func() {}, 5, true},
		{"other instance", func() {}, 6, false},
		{"node gone", func() {}, 0, false},
		{"released", func() { release(t, tbl, "/a", h, 0) }, 5, false},
		{"re-acquired", func() { acquire(t, tbl, excl("/a", h, true), 0) }, 5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.do()
			err := tbl.CheckSequencer(s, tc.instance)
			if (err == nil) != tc.current || err != nil && !errors.Is(err, ErrStaleSequencer) {
				t.Fatalf("CheckSequencer = %v, want current=%v", err, tc.current)
			}
		})
	}
}

// Seed corpora live in testdata/fuzz/FuzzParseSequencer and run in plain go
// test; regenerate them with HASP_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus.
func FuzzParseSequencer(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if s, err := ParseSequencer(data); err == nil {
			if again := s.Encode(); !bytes.Equal(again, data) {
				t.Fatalf("Encode(Parse(%q)) = %q", data, again)
			}
			if back, err := ParseSequencerString(s.String()); err != nil || back != s {
				t.Fatalf("string round trip of %+v: %+v, %v", s, back, err)
			}
		} else if !errors.Is(err, fsapi.ErrBadRequest) {
			t.Fatalf("error %v does not wrap fsapi.ErrBadRequest", err)
		}
		if s, err := ParseSequencerString(string(data)); err == nil {
			if s.String() != string(data) {
				t.Fatalf("String(ParseString(%q)) = %q", data, s.String())
			}
			if back, err := ParseSequencer(s.Encode()); err != nil || back != s {
				t.Fatalf("binary round trip of %+v: %+v, %v", s, back, err)
			}
		} else if !errors.Is(err, fsapi.ErrBadRequest) {
			t.Fatalf("error %v does not wrap fsapi.ErrBadRequest", err)
		}
	})
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HASP_WRITE_CORPUS") == "" {
		t.Skip("set HASP_WRITE_CORPUS=1 to rewrite testdata/fuzz")
	}
	seeds := map[string][]byte{
		"empty":         nil,
		"version2":      append([]byte{2}, goodSequencers[1].Encode()[1:]...),
		"truncated":     goodSequencers[1].Encode()[:9],
		"header-only":   goodSequencers[1].Encode()[:seqHeaderLen],
		"bad-mode":      append([]byte{1, 9}, goodSequencers[1].Encode()[2:]...),
		"bad-path":      append(goodSequencers[1].Encode()[:seqHeaderLen], "a//b"...),
		"string-form":   []byte(goodSequencers[1].String()),
		"string-zeros":  []byte("hasp-seq:v1:/a:007:shared:1"),
		"string-colons": []byte("hasp-seq:v1:/a:1:shared:1:"),
	}
	for i, s := range goodSequencers {
		seeds["good"+strconv.Itoa(i)] = s.Encode()
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseSequencer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
