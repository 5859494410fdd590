package raftstore

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		bad  string
	}{
		{"defaults", DefaultOptions("/x"), ""},
		{"zero fields take defaults", Options{Dir: "/x"}, ""},
		{"gc disabled", Options{Dir: "/x", GCInterval: -1}, ""},
		{"no dir", Options{}, "Dir is required"},
		{"tiny memtable", Options{Dir: "/x", MemTableSize: 1000}, "MemTableSize"},
		{"negative memtable", Options{Dir: "/x", MemTableSize: -1}, "MemTableSize"},
		{"tiny vlog", Options{Dir: "/x", ValueLogFileSize: 1000}, "ValueLogFileSize"},
		{"huge vlog", Options{Dir: "/x", ValueLogFileSize: 2 << 30}, "ValueLogFileSize"},
		{"negative cache", Options{Dir: "/x", BlockCacheSize: -1}, "BlockCacheSize"},
	}
	for _, tc := range cases {
		err := tc.o.Validate()
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("%s: err = %v, want mention of %q", tc.name, err, tc.bad)
		case err != nil && !strings.HasPrefix(err.Error(), "raftstore: "):
			t.Errorf("%s: error %q lacks prefix", tc.name, err)
		}
	}
	if _, err := Open(Options{}); err == nil {
		t.Fatal("Open with empty Dir succeeded")
	}
}

// recordingHandler captures records for the logger adapter test.
type recordingHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Level.String()+" "+r.Message)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func TestBadgerLoggerAdapter(t *testing.T) {
	if newBadgerLogger(nil) != nil {
		t.Fatal("nil slog logger should give nil badger logger")
	}
	h := &recordingHandler{}
	bl := newBadgerLogger(slog.New(h))
	bl.Debugf("d %d\n", 1)
	bl.Infof("i %s", "x")
	bl.Warningf("w")
	bl.Errorf("e %v\n", true)
	want := []string{"DEBUG d 1", "INFO i x", "WARN w", "ERROR e true"}
	if strings.Join(h.recs, "|") != strings.Join(want, "|") {
		t.Fatalf("records = %q, want %q", h.recs, want)
	}
	var buf bytes.Buffer
	quiet := newBadgerLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	quiet.Infof("hidden")
	quiet.Warningf("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "component=badger") {
		t.Fatalf("level filtering or attrs wrong: %q", buf.String())
	}
}

func TestOpenWithLoggerLogs(t *testing.T) {
	h := &recordingHandler{}
	o := DefaultOptions(t.TempDir())
	o.Logger = slog.New(h)
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) == 0 {
		t.Fatal("badger logged nothing through the adapter")
	}
}

func TestCloseIdempotentAndErrClosed(t *testing.T) {
	s, err := Open(DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	var l raft.Log
	checks := map[string]error{
		"FirstIndex":  func() error { _, err := s.FirstIndex(); return err }(),
		"LastIndex":   func() error { _, err := s.LastIndex(); return err }(),
		"GetLog":      s.GetLog(1, &l),
		"StoreLog":    s.StoreLog(makeLog(1, 1)),
		"DeleteRange": s.DeleteRange(1, 2),
		"Set":         s.Set([]byte("k"), []byte("v")),
		"Get":         func() error { _, err := s.Get([]byte("k")); return err }(),
		"GetUint64":   func() error { _, err := s.GetUint64([]byte("k")); return err }(),
	}
	for name, err := range checks {
		if err != ErrClosed {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func TestSecondOpenOfSameDirFails(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	s, err := Open(DefaultOptions(dir))
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked dir succeeded")
	}
	if !strings.HasPrefix(err.Error(), "raftstore: ") {
		t.Fatalf("error %q lacks prefix", err)
	}
}

// TestValueLogGCLoop runs the GC goroutine often while large (value-log
// resident) entries are written and deleted, then checks Close stops it
// and the surviving data is intact.
func TestValueLogGCLoop(t *testing.T) {
	o := DefaultOptions(t.TempDir())
	o.GCInterval = 5 * time.Millisecond
	o.ValueLogFileSize = 1 << 20
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	big := func(i uint64) *raft.Log {
		return &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, 32<<10)}
	}
	for i := uint64(1); i <= 200; i++ {
		if err := s.StoreLog(big(i)); err != nil {
			t.Fatal(err)
		}
		if i > 20 {
			if err := s.DeleteRange(i-20, i-20); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	for i := uint64(181); i <= 200; i++ {
		mustLog(t, s, big(i))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openTest(t, "")
	var wg sync.WaitGroup
	for w := range uint64(4) {
		wg.Go(func() {
			for b := range uint64(25) {
				lo := w*10_000 + b*8 + 1
				if err := s.StoreLogs(makeLogs(lo, lo+7, 1)); err != nil {
					t.Error(err)
					return
				}
				var l raft.Log
				if err := s.GetLog(lo+3, &l); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.LastIndex(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	mustBounds(t, s, 1, 3*10_000+200)
}
