//go:build linux

package main

// Helpers that run a cell as five real haspd processes: build the binary
// once, start replicas on free loopback ports, kill -9 and restart them,
// find the master, and compare the replicas' applied state offline.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
	"github.com/haspcell/hasp/master/raftstore"
)

const (
	procCellName  = "proc"
	procHeartbeat = 300 * time.Millisecond
	procLease     = 5 * time.Second
	// logTail is how much of each replica's log a failing test prints.
	logTail = 256 << 10
)

var (
	binDir    string // TestMain's temporary directory
	buildOnce sync.Once
	haspdBin  string
	buildErr  error
)

// TestMain owns the directory the haspd binary is built into. The build
// itself happens once, on first use, so that tests of this package that
// start no process do not pay for it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "haspd-proc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "haspd tests:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// haspdBinary builds cmd/haspd (with -race when the tests run with it) and
// returns the binary's path.
func haspdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		out := filepath.Join(binDir, "haspd")
		args := []string{"build", "-o", out}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		cmd := exec.Command(goTool, args...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		start := time.Now()
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, buf.String())
			return
		}
		haspdBin = out
		fmt.Fprintf(os.Stderr, "haspd tests: built %s (race=%v) in %v\n", out, raceEnabled, time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return haspdBin
}

// freeAddrs returns n loopback addresses whose ports were free a moment
// ago (all held open at once, so they are distinct).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out
}

// replicaProc is one haspd process (across its restarts).
type replicaProc struct {
	id, addr, dir, logPath string

	mu      sync.Mutex // protects following fields
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the current process has been waited for
	state   *os.ProcessState
	logOff  int64 // log size when the current process started
	started int
}

// procCell is a cell of haspd processes.
type procCell struct {
	t    *testing.T
	base string
	reps []*replicaProc
	// wrap, if set, may change a replica's command before it starts.
	wrap func(i int, cmd *exec.Cmd)

	mu      sync.Mutex // protects following fields
	clients []*cellclient.Client
}

type procOptions struct {
	wrap func(i int, cmd *exec.Cmd)
}

// startProcCell starts five replicas as processes and waits for a master.
// Cleanup kills them all, prints their logs if the test failed, and fails
// the test if any log reports a data race or a panic.
func startProcCell(t *testing.T, opts procOptions) *procCell {
	t.Helper()
	if testing.Short() {
		t.Skip("process tests start real haspd cells (about 100 s in all); skipped with -short")
	}
	haspdBinary(t)
	c := &procCell{t: t, base: t.TempDir(), wrap: opts.wrap}
	addrs := freeAddrs(t, 5)
	var initial []string
	for i, a := range addrs {
		id := fmt.Sprintf("r%d", i+1)
		initial = append(initial, id+"="+a)
		c.reps = append(c.reps, &replicaProc{id: id, addr: a, dir: filepath.Join(c.base, id),
			logPath: filepath.Join(c.base, id+".log")})
	}
	t.Cleanup(c.shutdown)
	for i, r := range c.reps {
		c.start(i, "--id", r.id, "--dir", r.dir, "--listen", r.addr, "--cell-name", procCellName,
			"--initial-cell", strings.Join(initial, ","), "--heartbeat-timeout", procHeartbeat.String(),
			"--session-lease", procLease.String(), "--log-level", "info")
	}
	for i := range c.reps {
		c.waitServing(i)
	}
	c.waitMaster(30 * time.Second)
	return c
}

func (c *procCell) addrs() []string {
	var out []string
	for _, r := range c.reps {
		out = append(out, r.addr)
	}
	return out
}

// start starts replica i with args. If the process exits at once because
// its port is taken (it may linger, or another socket may have got it),
// waitServing tries again.
func (c *procCell) start(i int, args ...string) {
	c.t.Helper()
	r := c.reps[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited != nil {
		select {
		case <-r.exited:
		default:
			c.t.Fatalf("start %s: already running", r.id)
		}
	}
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	r.logOff = st.Size()
	r.started++
	fmt.Fprintf(f, "=== test: start #%d at %s: haspd %s\n", r.started, time.Now().Format(time.StampMilli), strings.Join(args, " "))
	cmd := exec.Command(haspdBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	// If the test binary dies (e.g. -timeout), take the replica with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c.wrap != nil {
		c.wrap(i, cmd)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", r.id, err)
	}
	exited := make(chan struct{})
	r.cmd, r.exited, r.state = cmd, exited, nil
	go func() {
		cmd.Wait()
		r.mu.Lock()
		r.state = cmd.ProcessState
		r.mu.Unlock()
		close(exited)
	}()
}

// incarnationLog returns what the current process of replica i has logged.
func (c *procCell) incarnationLog(i int) string {
	r := c.reps[i]
	r.mu.Lock()
	off := r.logOff
	r.mu.Unlock()
	b, _ := os.ReadFile(r.logPath)
	if int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// waitServing waits until replica i's process says it serves (master.New
// returned), restarting it while its port is taken.
func (c *procCell) waitServing(i int) {
	c.t.Helper()
	r := c.reps[i]
	deadline := time.Now().Add(30 * time.Second)
	for tries := 0; ; {
		logText := c.incarnationLog(i)
		if strings.Contains(logText, "serving on") {
			return
		}
		if !c.alive(i) {
			if strings.Contains(logText, "address already in use") && tries < 40 {
				tries++
				time.Sleep(250 * time.Millisecond)
				r.mu.Lock()
				args := r.cmd.Args[1:]
				r.mu.Unlock()
				c.start(i, args...)
				continue
			}
			c.t.Fatalf("%s exited while starting (%v):\n%s", r.id, c.exitState(i), logText)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s not serving after 30s:\n%s", r.id, logText)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *procCell) alive(i int) bool {
	r := c.reps[i]
	r.mu.Lock()
	ch := r.exited
	r.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func (c *procCell) exitState(i int) string {
	r := c.reps[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		return "running"
	}
	return r.state.String()
}

func (c *procCell) pid(i int) int {
	r := c.reps[i]
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.Process.Pid
}

// kill sends SIGKILL to replica i and waits for it to be gone.
func (c *procCell) kill(i int) {
	r := c.reps[i]
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.t.Errorf("kill %s: %v", r.id, err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("%s did not exit 30s after SIGKILL", r.id)
	}
}

// killAll kills every replica at once.
func (c *procCell) killAll() {
	var wg sync.WaitGroup
	for i := range c.reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.kill(i)
		}()
	}
	wg.Wait()
}

// restart starts a killed replica with only --dir: everything else must
// come from what it stored there. (So it logs at the default level.)
func (c *procCell) restart(i int) {
	c.t.Helper()
	c.start(i, "--dir", c.reps[i].dir)
	c.waitServing(i)
}

func (c *procCell) restartAll() {
	c.t.Helper()
	for i := range c.reps {
		c.start(i, "--dir", c.reps[i].dir)
	}
	for i := range c.reps {
		c.waitServing(i)
	}
}

// checkAlive fails the test if any replica process exited.
func (c *procCell) checkAlive(t testing.TB) {
	t.Helper()
	for i, r := range c.reps {
		if !c.alive(i) {
			t.Fatalf("replica %s exited (%s); its log ends:\n%s", r.id, c.exitState(i), tail(c.incarnationLog(i), 16<<10))
		}
	}
}

// statuses asks every running replica about itself; nil for one that did
// not answer.
func (c *procCell) statuses() []*cellclient.ReplicaStatus {
	out := make([]*cellclient.ReplicaStatus, len(c.reps))
	var wg sync.WaitGroup
	for i, r := range c.reps {
		if !c.alive(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if st, err := cellclient.QueryStatus(ctx, r.addr, time.Second); err == nil {
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
	cl, err := cellclient.Dial(ctx, cellclient.Config{Addrs: c.addrs(), Cell: procCellName, ClientName: t.Name()})
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
			fmt.Fprintf(&b, "  %s: no answer\n", c.reps[i].id)
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
	c.killAll()
	var ref []byte
	var refID string
	var refTerm uint64
	for _, r := range c.reps {
		b, nodes, term, bad := replayReplica(t, r.dir, target)
		if ref == nil {
			ref, refID, refTerm = b, r.id, term
			t.Logf("replica states compared at commit index %d (term %d): %d nodes, %d bytes", target, term, nodes, len(b))
			for _, cmd := range bad {
				t.Errorf("the Raft log holds a command the master should have refused: %s", cmd)
			}
			continue
		}
		if term != refTerm {
			t.Errorf("replica %s's log has term %d at committed index %d, %s's has %d", r.id, term, target, refID, refTerm)
		}
		if !bytes.Equal(b, ref) {
			t.Errorf("replica %s's applied state differs from %s's at index %d (%d vs %d bytes)", r.id, refID, target, len(b), len(ref))
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

// shutdown kills every replica, prints the logs of a failed test, and fails
// the test on a data race or panic in any log.
func (c *procCell) shutdown() {
	c.closeClients()
	c.killAll()
	for _, r := range c.reps {
		b, err := os.ReadFile(r.logPath)
		if err != nil {
			continue
		}
		s := string(b)
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if strings.Contains(s, bad) {
				c.t.Errorf("replica %s logged %q", r.id, bad)
			}
		}
		if c.t.Failed() {
			c.t.Logf("==== log of %s (%s, last %d KiB) ====\n%s", r.id, r.logPath, logTail>>10, tail(s, logTail))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

// fdCount is how many file descriptors replica i's process has open.
func (c *procCell) fdCount(i int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.pid(i)))
	if err != nil {
		return -1
	}
	return len(ents)
}

// rssKiB is replica i's resident set size (and its peak) in KiB.
func (c *procCell) rssKiB(i int) (rss, hwm int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.pid(i)))
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

// rawConn opens a yamux client session speaking the client protocol to
// addr, as cellclient does, for tests that send hand-made frames.
type rawConn struct {
	nc   net.Conn
	sess *yamux.Session
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte{wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	yc := yamux.DefaultConfig()
	yc.LogOutput = io.Discard
	yc.EnableKeepAlive = false
	sess, err := yamux.Client(nc, yc)
	if err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{nc: nc, sess: sess}
	t.Cleanup(func() { sess.Close() })
	return rc
}

// call sends raw bytes on a new stream, closes its write side if
// closeWrite, and reads one response frame.
func (rc *rawConn) call(raw []byte, closeWrite bool, timeout time.Duration) (wire.MsgType, []byte, error) {
	st, err := rc.sess.OpenStream()
	if err != nil {
		return 0, nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(timeout))
	if _, err := st.Write(raw); err != nil {
		return 0, nil, err
	}
	if closeWrite {
		st.Close() // yamux half-close: FIN; the response can still be read
	}
	return wire.ReadFrame(st, wire.MaxFrame)
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
