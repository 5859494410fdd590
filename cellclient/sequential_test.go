package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestSequentialBasics: names, ephemeral sequential nodes, the handle's
// name, and the errors a client sees before anything is sent.
func TestSequentialBasics(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Open(ctx, "/ls/local/q", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 3 {
		h, err := c.Open(ctx, "/ls/local/q/job-", &cellclient.OpenOptions{Sequential: true, Contents: []byte{byte('a' + i)},
			Ephemeral: i == 2})
		if err != nil {
			t.Fatal(err)
		}
		data, st, err := h.GetContentsAndStat(ctx)
		if err != nil || string(data) != string(rune('a'+i)) || !h.Created() || (st.EphemeralOwner != 0) != (i == 2) {
			t.Fatalf("%s: %q %+v %v", h.Name(), data, st, err)
		}
		names = append(names, h.Name())
	}
	want := []string{"/ls/test/q/job-0000000000", "/ls/test/q/job-0000000001", "/ls/test/q/job-0000000002"}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	for name, want := range map[string]error{
		"/ls/local/q/" + strings.Repeat("x", fsapi.MaxComponentLen-fsapi.SequenceDigits+1): fsapi.ErrBadName,
		"/ls/local":                     fsapi.ErrBadName,
		"/ls/local/none/job-":           fsapi.ErrNotExist,
		"/ls/local/q/job-0000000000/x-": fsapi.ErrNotDir,
	} {
		if _, err := c.Open(ctx, name, &cellclient.OpenOptions{Sequential: true}); !errors.Is(err, want) {
			t.Errorf("sequential open %.30s…: %v, want %v", name, err, want)
		}
	}
	// Another client's sequential create is not hidden by this client's
	// cache: a sequential name's absence is never cached.
	other := dialCell(t, cell)
	next := "/ls/local/q/job-0000000003"
	if _, err := c.Open(ctx, next, nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("open %s before it exists: %v", next, err)
	}
	if _, err := other.Open(ctx, "/ls/local/q/job-", &cellclient.OpenOptions{Sequential: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(ctx, next, nil); err != nil {
		t.Fatalf("open %s after another client created it: %v", next, err)
	}
}

// seqOp is one sequential create as the test saw it.
type seqOp struct {
	creator   int
	ephemeral bool
	contents  string // unique per op: "c<creator>-<i>"
	call, ret time.Time
	name      string // the path created, "" if the call failed
	err       error
}

// seqRun drives concurrent sequential creators in one directory while a
// fault function crashes masters, then checks every answer.
type seqRun struct {
	t       *testing.T
	dir     string // full name of the directory
	clients []*cellclient.Client
	acked   atomic.Int64 // creates acknowledged
	mu      sync.Mutex   // protects ops
	ops     []*seqOp
}

const seqCreatorsPerClient = 2

// run starts the creators, calls nemesis until it returns, stops them and
// waits.
func (r *seqRun) run(nemesis func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for ci, c := range r.clients {
		for k := range seqCreatorsPerClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.creator(c, ci*seqCreatorsPerClient+k, stop)
			}()
		}
	}
	nemesis()
	waitAcked(r.acked.Load)
	close(stop)
	wg.Wait()
}

// minAcked is how many operations a fault run wants acknowledged. On a
// loaded machine a run goes on past its schedule (a minute at most) until
// it has them, so that it always has something to check.
const minAcked = 20

func waitAcked(acked func() int64) {
	deadline := time.Now().Add(time.Minute)
	for acked() < minAcked && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// crashes is how many master faults a fault run injects at least, however
// short its duration.
const crashes = 2

// faultLoop calls fault (which injects one fault, heals it and describes
// it) every 0.5–2 s, at least crashes times and until dur has passed.
func faultLoop(t *testing.T, rng *rand.Rand, dur time.Duration, fault func() string) {
	deadline := time.Now().Add(dur)
	for i := 0; i < crashes || time.Now().Before(deadline); i++ {
		time.Sleep(between(rng, 500*time.Millisecond, 2*time.Second))
		t.Log(fault())
	}
}

// crashMaster crashes the in-process cell's master and restarts it after
// 0.1–1 s.
func crashMaster(t *testing.T, cell *mastertest.Cell, rng *rand.Rand) func() string {
	return func() string {
		m := cell.WaitMaster(t)
		cell.Crash(m)
		time.Sleep(between(rng, 100*time.Millisecond, time.Second))
		cell.Restart(m)
		return fmt.Sprintf("crash master r%d", m+1)
	}
}

// killMaster kills the process cell's master with SIGKILL and restarts it
// after 0.1–1 s.
func killMaster(t *testing.T, cell *mastertest.ProcCell, rng *rand.Rand) func() string {
	return func() string {
		m := procMaster(t, cell, 30*time.Second)
		cell.Kill(m)
		time.Sleep(between(rng, 100*time.Millisecond, time.Second))
		cell.Restart(m)
		return "kill -9 master " + cell.ID(m)
	}
}

func (r *seqRun) creator(c *cellclient.Client, id int, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		op := &seqOp{creator: id, ephemeral: id%2 == 1, contents: fmt.Sprintf("c%d-%d", id, i)}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		op.call = time.Now()
		h, err := c.Open(ctx, r.dir+"/n-", &cellclient.OpenOptions{Sequential: true, Ephemeral: op.ephemeral,
			Contents: []byte(op.contents)})
		op.ret = time.Now()
		cancel()
		if err == nil {
			op.name = h.Name()
			h.Close()
			r.acked.Add(1)
		}
		op.err = err
		r.mu.Lock()
		r.ops = append(r.ops, op)
		r.mu.Unlock()
		time.Sleep(10 * time.Millisecond) // fewer nodes to read back
	}
}

// seqNumber is the sequence number of a sequential node's name.
func seqNumber(t *testing.T, name string) uint64 {
	t.Helper()
	if !fsapi.MaybeSequential(name) {
		t.Fatalf("%q is not a sequential name", name)
	}
	n, err := strconv.ParseUint(name[len(name)-fsapi.SequenceDigits:], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// check verifies the answers and the directory as read by reader:
//
//   - every name returned is new and has the prefix;
//   - numbers follow real time: a create that returned before another
//     was called got the smaller number;
//   - every acknowledged create is in the directory (an ephemeral one
//     while its session lives), with its own contents and owner;
//   - every node in the directory was created once: no contents appear
//     twice (a retried create was not applied again), and a node whose
//     create was not acknowledged belongs to a call that failed;
//   - the next sequential create gets a number above every node's.
func (r *seqRun) check(ctx context.Context, reader *cellclient.Client) {
	t := r.t
	byContents := map[string]*seqOp{}
	seen := map[string]bool{}
	var okOps []*seqOp
	failed := 0
	for _, op := range r.ops {
		byContents[op.contents] = op
		if op.err != nil {
			failed++
			continue
		}
		if seen[op.name] || !strings.HasPrefix(op.name, r.dir+"/n-") {
			t.Fatalf("name %s returned twice or without the prefix", op.name)
		}
		seen[op.name] = true
		okOps = append(okOps, op)
	}
	t.Logf("%d sequential creates acknowledged, %d failed", len(okOps), failed)
	if len(okOps) < minAcked {
		t.Fatalf("only %d creates acknowledged", len(okOps))
	}
	r.checkRealTimeOrder(okOps)
	r.checkDirectory(ctx, reader, byContents)
	h, err := reader.Open(ctx, r.dir+"/n-", &cellclient.OpenOptions{Sequential: true})
	if err != nil {
		t.Fatal(err)
	}
	last := slices.MaxFunc(okOps, func(a, b *seqOp) int { return cmpU(seqNumber(t, a.name), seqNumber(t, b.name)) })
	if seqNumber(t, h.Name()) <= seqNumber(t, last.name) {
		t.Fatalf("after the run, %s is not above %s", h.Name(), last.name)
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkRealTimeOrder: for ops sorted by call time, every op that returned
// before the call must have a smaller number.
func (r *seqRun) checkRealTimeOrder(ops []*seqOp) {
	t := r.t
	byCall := slices.Clone(ops)
	slices.SortFunc(byCall, func(a, b *seqOp) int { return a.call.Compare(b.call) })
	byRet := slices.Clone(ops)
	slices.SortFunc(byRet, func(a, b *seqOp) int { return a.ret.Compare(b.ret) })
	var maxBefore *seqOp
	j := 0
	for _, op := range byCall {
		for ; j < len(byRet) && byRet[j].ret.Before(op.call); j++ {
			if maxBefore == nil || seqNumber(t, byRet[j].name) > seqNumber(t, maxBefore.name) {
				maxBefore = byRet[j]
			}
		}
		if maxBefore != nil && seqNumber(t, op.name) <= seqNumber(t, maxBefore.name) {
			t.Fatalf("%s (creator %d, called %v) is not above %s (creator %d), which returned before it was called",
				op.name, op.creator, op.call.Format(time.StampMicro), maxBefore.name, maxBefore.creator)
		}
	}
}

func (r *seqRun) checkDirectory(ctx context.Context, reader *cellclient.Client, byContents map[string]*seqOp) {
	t := r.t
	d, err := reader.Open(ctx, r.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := d.ReadDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	contents := map[string]string{}
	nodes := readAll(t, ctx, reader, r.dir, ents)
	for i, e := range ents {
		name, data, st := r.dir+"/"+e.Name, nodes[i].data, nodes[i].stat
		listed[name] = true
		if prev, dup := contents[data]; dup {
			t.Fatalf("%s and %s both hold %q: a create was applied twice", prev, name, data)
		}
		contents[data] = name
		op := byContents[data]
		switch {
		case op == nil:
			t.Fatalf("%s holds %q, which no create wrote", name, data)
		case op.err == nil && op.name != name:
			t.Fatalf("%s holds %q, but that create was answered %s", name, data, op.name)
		case op.ephemeral != (st.EphemeralOwner != 0):
			t.Fatalf("%s: ephemeral owner %d, create ephemeral %v", name, st.EphemeralOwner, op.ephemeral)
		case op.ephemeral && st.EphemeralOwner != r.clients[op.creator/seqCreatorsPerClient].Session():
			t.Fatalf("%s: owned by session %d, not its creator's", name, st.EphemeralOwner)
		}
	}
	for _, op := range r.ops {
		if op.err != nil || listed[op.name] {
			continue
		}
		if c := r.clients[op.creator/seqCreatorsPerClient]; op.ephemeral && c.Err() != nil {
			continue // the session ended: its ephemeral nodes went with it
		}
		t.Fatalf("acknowledged %s (%q) is gone", op.name, op.contents)
	}
}

type nodeRead struct {
	data string
	stat fsapi.Stat
}

// readAll reads the contents of every entry of dir, eight at a time.
func readAll(t *testing.T, ctx context.Context, c *cellclient.Client, dir string, ents []fsapi.DirEntry) []nodeRead {
	out := make([]nodeRead, len(ents))
	errs := make([]error, len(ents))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, e := range ents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			h, err := c.Open(ctx, dir+"/"+e.Name, nil)
			if err != nil {
				errs[i] = err
				return
			}
			data, st, err := h.GetContentsAndStat(ctx)
			out[i], errs[i] = nodeRead{string(data), st}, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// newSeqRun makes the directory and dials the creators' clients.
func newSeqRun(t *testing.T, ctx context.Context, dial func() *cellclient.Client, clients int) *seqRun {
	r := &seqRun{t: t}
	for range clients {
		r.clients = append(r.clients, dial())
	}
	r.dir = fsapi.FullName(r.clients[0].Cell(), "/seq") // as Handle.Name spells it
	if _, err := r.clients[0].Open(ctx, r.dir, &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSequentialAcrossMasterCrashes: four clients, eight creators (half
// ephemeral) in one directory while the master of an in-process cell (real
// TCP transport) is crashed and restarted three times.
func TestSequentialAcrossMasterCrashes(t *testing.T) {
	dur := faultDuration(t, 5*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x73657121))
	cell := mastertest.New(t, mastertest.Options{N: 5})
	cell.WaitMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	r := newSeqRun(t, ctx, func() *cellclient.Client { return dialCell(t, cell) }, 4)
	r.run(func() {
		faultLoop(t, rng, dur, crashMaster(t, cell, rng))
		cell.WaitMaster(t)
	})
	r.check(ctx, dialCell(t, cell))
	cell.EnsureSameFSM(t)
}

// TestProcSequentialAcrossMasterKills is the same against five haspd
// processes whose master is killed with SIGKILL and restarted.
func TestProcSequentialAcrossMasterKills(t *testing.T) {
	dur := faultDuration(t, 5*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x70736571))
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), dur+90*time.Second)
	defer cancel()
	r := newSeqRun(t, ctx, func() *cellclient.Client { return procDial(t, ctx, cell.Addrs(), time.Second) }, 4)
	r.run(func() {
		faultLoop(t, rng, dur, killMaster(t, cell, rng))
		procMaster(t, cell, 30*time.Second)
	})
	r.check(ctx, procDial(t, ctx, cell.Addrs(), time.Second))
}
