package raftstore

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// listFSM records applied commands in order.
type listFSM struct {
	mu   sync.Mutex
	cmds []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, string(l.Data))
	return len(f.cmds)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listSnapshot(strings.Join(f.cmds, "\n")), nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = strings.Split(string(b), "\n")
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

type listSnapshot string

func (s listSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := io.WriteString(sink, string(s)); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listSnapshot) Release() {}

// node is a single-voter raft on a Store.
type node struct {
	r     *raft.Raft
	fsm   *listFSM
	trans *raft.InmemTransport
}

func startNode(t *testing.T, s *Store, bootstrap bool) *node {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.SnapshotThreshold = 1 << 30
	conf.SnapshotInterval = time.Hour
	conf.LogOutput = io.Discard
	addr, trans := raft.NewInmemTransport("n1")
	n := &node{fsm: &listFSM{}, trans: trans}
	r, err := raft.NewRaft(conf, n.fsm, s, s, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	n.r = r
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			t.Fatalf("BootstrapCluster: %v", err)
		}
	}
	waitLeader(t, r)
	return n
}

func waitLeader(t *testing.T, r *raft.Raft) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.State() != raft.Leader {
		if time.Now().After(deadline) {
			t.Fatalf("no leader after 10s (state %v)", r.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (n *node) apply(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if err := n.r.Apply([]byte(c), 5*time.Second).Error(); err != nil {
			t.Fatalf("Apply(%q): %v", c, err)
		}
	}
}

func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.r.Shutdown().Error(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = n.trans.Close()
}

func cmdRange(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// TestRaftSingleNodeRestart runs raft on the store, restarts it on the
// same directory and checks the log and term survive and raft resumes.
func TestRaftSingleNodeRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, s, true)
	first := cmdRange("a", 25)
	n.apply(t, first...)
	applied, term := n.r.AppliedIndex(), n.r.CurrentTerm()
	n.stop(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	checkRecovered(t, s, applied, term)
	n = startNode(t, s, false)
	defer n.stop(t)
	if got := n.r.CurrentTerm(); got <= term {
		t.Fatalf("term after restart = %d, want > %d", got, term)
	}
	second := cmdRange("b", 10)
	n.apply(t, second...)
	if err := n.r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(append(first, second...), ",")
	if got := strings.Join(n.fsm.list(), ","); got != want {
		t.Fatalf("FSM after restart = %s\nwant %s", got, want)
	}
}

// checkRecovered verifies what raft persisted before the restart.
func checkRecovered(t *testing.T, s *Store, applied, term uint64) {
	t.Helper()
	ok, err := raft.HasExistingState(s, s, raft.NewInmemSnapshotStore())
	if err != nil || !ok {
		t.Fatalf("HasExistingState = %v, %v", ok, err)
	}
	last, err := s.LastIndex()
	if err != nil || last < applied {
		t.Fatalf("LastIndex = %d, %v; want >= %d", last, err, applied)
	}
	if first, err := s.FirstIndex(); err != nil || first != 1 {
		t.Fatalf("FirstIndex = %d, %v; want 1", first, err)
	}
	if got, err := s.GetUint64([]byte("CurrentTerm")); err != nil || got != term {
		t.Fatalf("CurrentTerm = %d, %v; want %d", got, err, term)
	}
	var l raft.Log
	if err := s.GetLog(applied, &l); err != nil || l.Term != term {
		t.Fatalf("GetLog(%d) = %+v, %v; want term %d", applied, l, err, term)
	}
}
