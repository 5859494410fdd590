package fsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/haspcell/hasp/fsapi"
)

func TestConfigDefault(t *testing.T) {
	if got := New(Config{}).Config().ContentLimit; got != fsapi.DefaultContentLimit {
		t.Fatalf("ContentLimit %d", got)
	}
	if got := New(Config{ContentLimit: 10}).Config().ContentLimit; got != 10 {
		t.Fatalf("ContentLimit %d", got)
	}
}

func TestNewFSM(t *testing.T) {
	f := New(Config{})
	v := f.View()
	root, ok := v.Get("/")
	if !ok || !root.Stat.IsDir || root.Stat.Instance != 0 || v.NodeCount() != 1 || f.AppliedIndex() != 0 {
		t.Fatalf("fresh FSM: %+v %v", root, ok)
	}
	if f.Sessions() == nil || len(f.Sessions()) != 0 || v.List("/") != nil {
		t.Fatal("fresh FSM has sessions or children")
	}
}

func TestApplyEntryKinds(t *testing.T) {
	noop := func(t *testing.T) []byte { return encode(t, &Noop{Time: 1}) }
	cases := []struct {
		name    string
		log     func(t *testing.T) *raft.Log
		result  bool   // Apply returns a *Result
		index   uint64 // AppliedIndex afterwards
		panicky bool
	}{
		{"noop", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Data: noop(t)} }, true, 5, false},
		{"configuration", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Type: raft.LogConfiguration} }, false, 0, false},
		{"barrier", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Type: raft.LogBarrier, Data: noop(t)} }, false, 0, false},
		{"unknown ignorable", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Data: []byte{0xff, 0x80}} }, false, 5, false},
		{"corrupt ignorable", func(t *testing.T) *raft.Log {
			return &raft.Log{Index: 5, Data: []byte{byte(CmdOpen | IgnoreUnknown), 0xc1}}
		}, false, 5, false},
		{"known with bit", func(t *testing.T) *raft.Log {
			d := noop(t)
			d[0] |= byte(IgnoreUnknown)
			return &raft.Log{Index: 5, Data: d}
		}, true, 5, false},
		{"unknown", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Data: []byte{0x7f, 0x80}} }, false, 0, true},
		{"corrupt", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5, Data: []byte{byte(CmdOpen), 0xc1}} }, false, 0, true},
		{"empty", func(t *testing.T) *raft.Log { return &raft.Log{Index: 5} }, false, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := New(Config{})
			l := c.log(t)
			defer func() {
				if p := recover(); (p != nil) != c.panicky {
					t.Fatalf("panic %v, want panic %v", p, c.panicky)
				}
			}()
			out := f.Apply(l)
			if r, ok := out.(*Result); ok != c.result || ok && r.ErrKind != ErrKindOK {
				t.Fatalf("Apply = %#v", out)
			}
			if f.AppliedIndex() != c.index {
				t.Fatalf("AppliedIndex %d, want %d", f.AppliedIndex(), c.index)
			}
		})
	}
}

func TestResultErr(t *testing.T) {
	for k := ErrKindNotExist; k <= ErrKindNoWaiter; k++ {
		t.Run(k.String(), func(t *testing.T) {
			r := fail(k, "/a/b")
			err := r.Err()
			if !errors.Is(err, k.sentinel()) || err.Error() != k.sentinel().Error()+": /a/b" {
				t.Fatalf("Err() = %v", err)
			}
			if kindOf(fmt.Errorf("wrapped: %w", err)) != k || !reflect.DeepEqual(failErr(err), r) {
				t.Fatal("kindOf/failErr do not invert fail")
			}
			if e := (&Result{ErrKind: k}).Err(); e.Error() != k.sentinel().Error() {
				t.Fatalf("empty message: %v", e)
			}
		})
	}
	if (&Result{}).Err() != nil || (*Result)(nil).err() != nil || kindOf(nil) != ErrKindOK {
		t.Fatal("ok result has an error")
	}
	if err := (&Result{ErrKind: 200, ErrMsg: "x"}).Err(); err == nil || errors.Is(err, fsapi.ErrBadRequest) {
		t.Fatalf("unknown kind: %v", err)
	}
	if kindOf(errors.New("other")) != ErrKindBadRequest || ErrKind(200).String() != "ErrKind(200)" {
		t.Fatal("foreign error kinds")
	}
}

func TestWaitApplied(t *testing.T) {
	h := newTester(t, Config{})
	ctx := context.Background()
	if err := h.f.WaitApplied(ctx, 2); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := h.f.WaitApplied(short, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied = %v", err)
	}
	const waiters = 200
	errs := make(chan error, waiters)
	for i := range waiters {
		go func() { errs <- h.f.WaitApplied(ctx, 3+uint64(i%50)) }()
	}
	for range 50 {
		h.must(&Noop{})
	}
	for range waiters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestConcurrentReaders runs readers against a stream of applies and a
// concurrent Persist; run it with -race.
func TestConcurrentReaders(t *testing.T) {
	h := newTester(t, Config{})
	snap, _ := h.f.Snapshot()
	before := snapshotBytes(t, h.f)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { readLoop(t, h.f, stop) })
	}
	wg.Go(func() {
		var buf bytes.Buffer
		if err := snap.(*fsmSnapshot).writeTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), before) {
			t.Error("snapshot changed under concurrent applies")
		}
	})
	for i := range 300 {
		p := fmt.Sprintf("/n%d", i%20)
		h.apply(mkfile(s1, p, "x"))
		h.apply(set(s2, p, "yy"))
		if i%3 == 0 {
			h.apply(del(s1, p))
		}
	}
	close(stop)
	wg.Wait()
}

func readLoop(t *testing.T, f *FSM, stop chan struct{}) {
	var last uint64
	for {
		select {
		case <-stop:
			return
		default:
		}
		v := f.View()
		if v.Revision() < last || f.AppliedIndex() < v.Revision() {
			t.Error("revision went backwards")
			return
		}
		last = v.Revision()
		if n, ok := v.Get("/"); !ok || int(n.Stat.Children) != len(v.List("/")) {
			t.Error("inconsistent view")
			return
		}
		_, _ = f.Session(s1)
		_ = f.Sessions()
	}
}
