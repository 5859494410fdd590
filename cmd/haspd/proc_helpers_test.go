//go:build linux

package main

// Helpers that run a cell as five real haspd processes (a
// mastertest.ProcCell: it builds the binary, starts, kills -9 and restarts
// the replicas), find the master, dial clients, compare the replicas'
// applied state offline, and speak the wire protocol by hand.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
	"github.com/haspcell/hasp/master/mastertest"
	"github.com/haspcell/hasp/master/raftstore"
)

const (
	procCellName  = "proc"
	procHeartbeat = 300 * time.Millisecond
	procLease     = 5 * time.Second
	// logTail is how much of each replica's log a failing test prints.
	logTail = 256 << 10
)

// procCell is a cell of haspd processes: a mastertest.ProcCell (build,
// ports, start, kill -9, restart, logs, liveness) and the clients tests
// dialled to it.
type procCell struct {
	*mastertest.ProcCell
	t *testing.T

	mu      sync.Mutex // protects following fields
	clients []*cellclient.Client
}

type procOptions struct {
	// args are more flags for every start of every replica but a restart
	// (which passes only --dir).
	args []string
}

// startProcCell starts five replicas as processes and waits for a master.
// Restarts pass only --dir: everything else must come from what a replica
// stored there (so it logs at the default level). Cleanup closes the
// clients, kills the replicas, prints their logs if the test failed, and
// fails the test if any log reports a data race or a panic.
func startProcCell(t *testing.T, opts procOptions) *procCell {
	t.Helper()
	if testing.Short() {
		t.Skip("process tests start real haspd cells (about 100 s in all); skipped with -short")
	}
	c := &procCell{t: t, ProcCell: mastertest.StartProcCell(t, mastertest.ProcOptions{
		N: 5, Cell: procCellName, Heartbeat: procHeartbeat, SessionLease: procLease, LogLevel: "info",
		Args: opts.args, RestartBare: true, ServeTimeout: 30 * time.Second, LogTail: logTail,
	})}
	t.Cleanup(c.closeClients) // before the ProcCell's cleanup kills the replicas
	c.waitMaster(30 * time.Second)
	return c
}

// statuses asks every running replica about itself; nil for one that did
// not answer.
func (c *procCell) statuses() []*cellclient.ReplicaStatus {
	out := make([]*cellclient.ReplicaStatus, c.N())
	var wg sync.WaitGroup
	for i := range c.N() {
		if !c.Alive(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if st, err := cellclient.QueryStatus(ctx, c.Addr(i), time.Second); err == nil {
				out[i] = st
			}
		}()
	}
	wg.Wait()
	return out
}

// masterIndex is the replica that says it is master (in the highest term
// if, briefly, two do), or -1.
func masterIndex(sts []*cellclient.ReplicaStatus) int {
	best := -1
	for i, st := range sts {
		if st != nil && st.State == "master" && (best < 0 || st.Term > sts[best].Term) {
			best = i
		}
	}
	return best
}

// waitMaster waits for a master and returns its index.
func (c *procCell) waitMaster(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := masterIndex(c.statuses()); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no master within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial returns a client of the cell, closed at cleanup.
func (c *procCell) dial(t testing.TB) *cellclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := cellclient.Dial(ctx, cellclient.Config{Addrs: c.Addrs(), Cell: procCellName, ClientName: t.Name()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.mu.Lock()
	c.clients = append(c.clients, cl)
	c.mu.Unlock()
	return cl
}

// closeClients closes every client dial made, concurrently (each Close
// ends its session through Raft, or gives up after 5 s if there is no
// master).
func (c *procCell) closeClients() {
	c.mu.Lock()
	cls := c.clients
	c.clients = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, cl := range cls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.Close()
		}()
	}
	wg.Wait()
}

// waitQuiet waits until every replica answers, names the same leader, and
// holds in its log the highest commit index any of them reports, and
// returns that index. (Followers' own commit indexes may lag behind while
// the cell is idle: hashicorp/raft's pipelined replication sends nothing,
// and so no commit index, when there is no new entry.)
func (c *procCell) waitQuiet(t testing.TB, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []*cellclient.ReplicaStatus
	for ok := 0; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		sts := c.statuses()
		last = sts
		var commit uint64
		agree := true
		for _, st := range sts {
			if st == nil || st.LeaderID == "" || st.LeaderID != sts[0].LeaderID {
				agree = false
				break
			}
			commit = max(commit, st.CommitIndex)
		}
		for _, st := range sts {
			if agree && st.LastIndex < commit {
				agree = false
			}
		}
		if !agree {
			ok = 0
			continue
		}
		if ok++; ok == 2 {
			return commit
		}
	}
	var b strings.Builder
	for i, st := range last {
		if st == nil {
			fmt.Fprintf(&b, "  %s: no answer\n", c.ID(i))
		} else {
			fmt.Fprintf(&b, "  %s: %s term %d leader %q last %d commit %d applied %d\n", st.ID, st.State, st.Term, st.LeaderID, st.LastIndex, st.CommitIndex, st.AppliedIndex)
		}
	}
	t.Fatalf("replicas did not converge within %v:\n%s", timeout, b.String())
	return 0
}

// compareReplicaStates stops the cell once it is quiet and rebuilds every
// replica's state machine from its own disk (latest snapshot, then its Raft
// log up to the common commit index). All five must be byte-identical
// (ignoring the applied index in the snapshot header, which depends on
// where a replica's last snapshot fell). It leaves the cell killed.
func (c *procCell) compareReplicaStates(t testing.TB) {
	t.Helper()
	c.closeClients()
	target := c.waitQuiet(t, 30*time.Second)
	c.KillAll()
	var ref []byte
	var refID string
	var refTerm uint64
	for i := range c.N() {
		id := c.ID(i)
		b, nodes, term, bad := replayReplica(t, c.Dir(i), target)
		if ref == nil {
			ref, refID, refTerm = b, id, term
			t.Logf("replica states compared at commit index %d (term %d): %d nodes, %d bytes", target, term, nodes, len(b))
			for _, cmd := range bad {
				t.Errorf("the Raft log holds a command the master should have refused: %s", cmd)
			}
			continue
		}
		if term != refTerm {
			t.Errorf("replica %s's log has term %d at committed index %d, %s's has %d", id, term, target, refID, refTerm)
		}
		if !bytes.Equal(b, ref) {
			t.Errorf("replica %s's applied state differs from %s's at index %d (%d vs %d bytes)", id, refID, target, len(b), len(ref))
		}
	}
}

// replayReplica rebuilds a replica's FSM from its directory up to index and
// returns its snapshot encoding without the header, its node count, the
// term of its log entry (or snapshot) at index, and every logged command
// with a malformed path or contents over the limit (the master validates
// those before Raft: none may reach the log).
func replayReplica(t testing.TB, dir string, index uint64) ([]byte, int, uint64, []string) {
	t.Helper()
	store, err := raftstore.Open(raftstore.Options{Dir: filepath.Join(dir, "raft"), GCInterval: -1})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f := fsm.New(fsm.Config{})
	from := uint64(1)
	var term uint64
	var bad []string
	metas, err := snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) > 0 {
		if metas[0].Index > index {
			t.Fatalf("%s: snapshot at %d is past the compared index %d", dir, metas[0].Index, index)
		}
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(rc); err != nil {
			t.Fatalf("%s: restore: %v", dir, err)
		}
		from = metas[0].Index + 1
		term = metas[0].Term
	}
	first, err := store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	from = max(from, first)
	for idx := from; idx <= index; idx++ {
		var l raft.Log
		if err := store.GetLog(idx, &l); err != nil {
			t.Fatalf("%s: log %d (want %d..%d): %v", dir, idx, from, index, err)
		}
		if l.Type == raft.LogCommand {
			if why := refusable(l.Data, f.Config().ContentLimit); why != "" {
				bad = append(bad, fmt.Sprintf("entry %d: %s", idx, why))
			}
		}
		f.Apply(&l)
		term = l.Term
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	b := sink.Bytes()
	// Skip the header record (it carries the index of the last applied
	// command, which differs when a snapshot was taken at a non-command
	// entry).
	var hdr struct {
		Version      int
		Index        uint64
		ContentLimit int
	}
	dec := codec.NewDecoderBytes(b, &codec.MsgpackHandle{WriteExt: true})
	if err := dec.Decode(&hdr); err != nil {
		t.Fatal(err)
	}
	return b[dec.NumBytesRead():], f.View().NodeCount(), term, bad
}

// refusable says why a logged command should never have reached Raft, or "".
func refusable(data []byte, limit int) string {
	_, cmd, err := fsm.Decode(data)
	if err != nil {
		return fmt.Sprintf("undecodable command: %v", err)
	}
	check := func(kind, path string, size int) string {
		if err := fsapi.CheckPath(path); err != nil {
			return fmt.Sprintf("%s with a malformed path: %v", kind, err)
		}
		if size > limit {
			return fmt.Sprintf("%s of %s with %d bytes (limit %d)", kind, path, size, limit)
		}
		return ""
	}
	switch c := cmd.(type) {
	case *fsm.Open:
		return check("Open", c.Path, len(c.Contents))
	case *fsm.SetContents:
		return check("SetContents", c.Path, len(c.Data))
	case *fsm.Delete:
		return check("Delete", c.Path, 0)
	}
	return ""
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// fdCount is how many file descriptors replica i's process has open.
func (c *procCell) fdCount(i int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.Pid(i)))
	if err != nil {
		return -1
	}
	return len(ents)
}

// rssKiB is replica i's resident set size (and its peak) in KiB.
func (c *procCell) rssKiB(i int) (rss, hwm int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.Pid(i)))
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var v int
		if _, err := fmt.Sscanf(sc.Text(), "VmRSS: %d kB", &v); err == nil {
			rss = v
		}
		if _, err := fmt.Sscanf(sc.Text(), "VmHWM: %d kB", &v); err == nil {
			hwm = v
		}
	}
	return rss, hwm
}

// frame builds a frame from a value.
func frame(t testing.TB, typ wire.MsgType, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := wire.WriteFrame(&buf, typ, v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
