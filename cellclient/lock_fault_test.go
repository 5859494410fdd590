package cellclient_test

// Fault tests for locks (DESIGN.md §7), in-process cell. The history model
// and its checker here are shared with lock_proc_test.go.
//
// A lock history holds two kinds of operations per lock:
//
//   - Acquire [call, return] → the generation of the holding (from
//     GetSequencer). Recorded only when it succeeded.
//   - Release [call, return] by the holder. A holder that could not release
//     (its session ended, it was paused or killed, or it was cut off) is
//     "lost": its release is recorded as pending, returning at
//     fsapitest.Never, called at the last instant the holder knew it still
//     held the lock (see lockConfirmed), or else at its Acquire's call.
//
// The model: Acquire is legal iff the lock is free and the generation is
// greater than every earlier one (generations may skip values: a grant that
// was withdrawn or lost with its session consumes one); Release iff the
// releasing holder holds it. So two holders whose holdings overlap in real
// time — including a lost holder up to the last moment its session lease
// said it still held the lock — make the history illegal.
//
// An Acquire whose outcome is unknown (the session ended while it waited,
// or the test poisoned its handle to stop it) is left out. Leaving an
// operation out only removes constraints, and this one never told its
// caller it held the lock: if the master granted it, that holding ended
// with its session (or with the withdrawal of the abandoned request)
// before anyone else could be granted, and the only trace it leaves in the
// history is a skipped generation, which the model allows.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/fsapitest"
	"github.com/haspcell/hasp/master/mastertest"
)

// ---- The model ----

type lockOpKind uint8

const (
	lockAcquire lockOpKind = iota + 1
	lockRelease
)

// lockInput is an operation's call. Holder names the holding handle: the
// session id (every workload session has one handle per lock).
type lockInput struct {
	Kind   lockOpKind
	Lock   string // the partition key
	Holder uint64
	// Lost marks the pending release of a lost holder.
	Lost bool
}

// lockOutput is an Acquire's result: the generation it was granted.
type lockOutput struct{ Gen uint64 }

type lockModelState struct {
	Held   bool
	Holder uint64
	Gen    uint64
}

var lockModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(lockInput).Lock
			by[k] = append(by[k], op)
		}
		keys := make([]string, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return lockModelState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(lockModelState), input.(lockInput)
		switch in.Kind {
		case lockAcquire:
			g := output.(lockOutput).Gen
			if s.Held || g <= s.Gen {
				return false, s
			}
			return true, lockModelState{Held: true, Holder: in.Holder, Gen: g}
		case lockRelease:
			if !s.Held || s.Holder != in.Holder {
				return false, s
			}
			return true, lockModelState{Gen: s.Gen}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(lockInput)
		switch {
		case in.Kind == lockAcquire:
			return fmt.Sprintf("s%d acquire %s → gen %d", in.Holder, in.Lock, output.(lockOutput).Gen)
		case in.Lost:
			return fmt.Sprintf("s%d lost %s (held at least until the call)", in.Holder, in.Lock)
		}
		return fmt.Sprintf("s%d release %s", in.Holder, in.Lock)
	},
	DescribeState: func(state any) string {
		s := state.(lockModelState)
		if !s.Held {
			return fmt.Sprintf("free (gen %d)", s.Gen)
		}
		return fmt.Sprintf("held by s%d at gen %d", s.Holder, s.Gen)
	},
}

// ---- The history ----

// lockHistory records lock operations on the clock of a fsapitest.Recorder
// (which also keeps the nemesis' annotations). Safe for concurrent use.
type lockHistory struct {
	rec *fsapitest.Recorder

	mu       sync.Mutex // protects following fields
	ops      []porcupine.Operation
	acquires map[string]int
	releases map[string]int
	lost     map[string]int
	maxGen   map[string]uint64
}

func newLockHistory(rec *fsapitest.Recorder) *lockHistory {
	return &lockHistory{rec: rec, acquires: map[string]int{}, releases: map[string]int{}, lost: map[string]int{},
		maxGen: map[string]uint64{}}
}

func (h *lockHistory) add(client int, in lockInput, out any, call, ret int64, meta any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret, Metadata: meta})
}

// acquired records a granted Acquire.
func (h *lockHistory) acquired(client int, lock string, holder uint64, call, ret int64, gen uint64) {
	h.add(client, lockInput{Kind: lockAcquire, Lock: lock, Holder: holder}, lockOutput{Gen: gen}, call, ret, nil)
	h.mu.Lock()
	h.acquires[lock]++
	h.maxGen[lock] = max(h.maxGen[lock], gen)
	h.mu.Unlock()
}

// released records a successful Release.
func (h *lockHistory) released(client int, lock string, holder uint64, call, ret int64) {
	h.add(client, lockInput{Kind: lockRelease, Lock: lock, Holder: holder}, lockOutput{}, call, ret, nil)
	h.mu.Lock()
	h.releases[lock]++
	h.mu.Unlock()
}

// lostHolding records that holder lost the lock at an unknown instant
// after since, the last instant it knew it held it.
func (h *lockHistory) lostHolding(client int, lock string, holder uint64, since int64, why string) {
	h.add(client, lockInput{Kind: lockRelease, Lock: lock, Holder: holder, Lost: true}, lockOutput{}, since, fsapitest.Never, why)
	h.mu.Lock()
	h.lost[lock]++
	h.mu.Unlock()
}

func (h *lockHistory) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

func (h *lockHistory) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var locks []string
	for l := range h.acquires {
		locks = append(locks, l)
	}
	sort.Strings(locks)
	var parts []string
	for _, l := range locks {
		parts = append(parts, fmt.Sprintf("%s: %d acquired (up to gen %d), %d released, %d lost",
			l, h.acquires[l], h.maxGen[l], h.releases[l], h.lost[l]))
	}
	return strings.Join(parts, "; ")
}

func (h *lockHistory) counts(lock string) (acquires, releases, lost int, maxGen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acquires[lock], h.releases[lock], h.lost[lock], h.maxGen[lock]
}

// lockConfirmed says whether c's session lease still holds now, and if so
// returns an instant on rec's clock at which the session (and so every
// lock it holds) was certainly still alive at the master. The lease end is
// read first: delays between the reads only make the answer more
// conservative.
func lockConfirmed(c *cellclient.Client, rec *fsapitest.Recorder) (int64, bool) {
	end := c.LeaseEndForTest()
	at := rec.Now()
	return at, time.Now().Before(end)
}

// checkLockHistory checks a lock history against lockModel with
// fsapitest.Check (visualization and excerpt on failure, as for files).
func checkLockHistory(t *testing.T, ops []porcupine.Operation, notes []porcupine.Annotation) {
	t.Helper()
	fsapitest.Check(t, lockModel, ops, notes...)
}

// PartitionKey names a lock history's partition in fsapitest's excerpt.
func (in lockInput) PartitionKey() string { return in.Lock }

// TestLockHistoryModel checks the checker: the model accepts a history
// with a lost holder whose loss fits before the next grant, and rejects
// overlapping holders, a lost holder that still held the lock when the
// next holder was granted, generations that do not increase, and a
// release by a non-holder.
func TestLockHistoryModel(t *testing.T) {
	acq := func(holder uint64, call, ret int64, gen uint64) porcupine.Operation {
		return porcupine.Operation{ClientId: int(holder), Input: lockInput{Kind: lockAcquire, Lock: "/l", Holder: holder},
			Output: lockOutput{Gen: gen}, Call: call, Return: ret}
	}
	rel := func(holder uint64, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: int(holder), Input: lockInput{Kind: lockRelease, Lock: "/l", Holder: holder},
			Output: lockOutput{}, Call: call, Return: ret}
	}
	lost := func(holder uint64, since int64) porcupine.Operation {
		return porcupine.Operation{ClientId: int(holder), Input: lockInput{Kind: lockRelease, Lock: "/l", Holder: holder, Lost: true},
			Output: lockOutput{}, Call: since, Return: fsapitest.Never}
	}
	for _, tt := range []struct {
		name string
		ok   bool
		h    []porcupine.Operation
	}{
		{"hand-over", true, []porcupine.Operation{acq(1, 0, 10, 1), rel(1, 20, 30), acq(2, 5, 40, 2), rel(2, 50, 60)}},
		{"lost holder, then a skipped generation", true, []porcupine.Operation{acq(1, 0, 10, 1), lost(1, 15), acq(2, 5, 40, 3), rel(2, 50, 60)}},
		{"overlapping holders", false, []porcupine.Operation{acq(1, 0, 10, 1), rel(1, 30, 40), acq(2, 5, 20, 2), rel(2, 50, 60)}},
		{"lost holder still held it at the next grant", false, []porcupine.Operation{acq(1, 0, 10, 1), lost(1, 45), acq(2, 5, 40, 2), rel(2, 50, 60)}},
		{"generation not increasing", false, []porcupine.Operation{acq(1, 0, 10, 2), rel(1, 20, 30), acq(2, 35, 40, 2), rel(2, 50, 60)}},
		{"release by a non-holder", false, []porcupine.Operation{acq(1, 0, 10, 1), rel(2, 20, 30), rel(1, 40, 50)}},
	} {
		if got := porcupine.CheckOperations(lockModel, tt.h); got != tt.ok {
			t.Errorf("%s: linearizable = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// ---- Mutual exclusion under faults, in-process cell ----

// lockNames are the workload's locks; lockWorkloadDelay is the lock-delay
// of every workload handle (short: a lost holder blocks its lock for its
// session lease plus this).
var lockNames = []string{"/ls/local/lock-a", "/ls/local/lock-b"}

const lockWorkloadDelay = 300 * time.Millisecond

// TestLockFaultInmem: eight sessions (four per lock) acquire an exclusive
// lock, hold it for up to 30 ms while confirming their session lease, and
// release it, over and over, while the cell nemesis of TestFaultInmem
// injects one fault at a time into five in-process replicas on
// raft.InmemTransport — crashes (and restarts) of the master, a follower, a
// minority and all replicas; the master isolated or in a minority; one-way
// partitions (the master cannot send; cannot hear); the master's lease
// clock slow while it is away. Every 2–4 s it pauses to cut off a session
// that holds a lock, and waits until the master has expired it; the victim
// keeps "holding" (confirming its lease) until its client sees the session
// end, so it is a lost holder and its lock goes into lock-delay.
// Porcupine checks the history (see the top of this file). Afterwards every replica's FSM must agree, and hold each lock
// free, with no waiters, at a generation no lower than any granted, equal
// to its node's Stat.LockGeneration.
func TestLockFaultInmem(t *testing.T) {
	dur := faultDuration(t, 20*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6c6f636b))
	n := newCellNemesis(t, rng, true)
	rec := fsapitest.NewRecorder()
	n.rec = rec
	wl := newLockWorkload(t, seed, n.cell.Addrs(), rec, 4)
	defer wl.shutdown()
	wl.start()

	// Cell faults for 2–4 s at a time, then a holder cut off: the cell is
	// left alone until the master has expired the victim's session (each
	// new master grants every session a full lease, so under back-to-back
	// fail-overs a silent session would never expire).
	cutRng := rand.New(rand.NewPCG(seed, 0x637574))
	until := time.Now().Add(dur)
	nCuts := 0
	for i := 0; time.Now().Before(until) || nCuts == 0 && i < 3; i++ { // at least one cut, however short the run
		n.run(minTime(until, time.Now().Add(between(cutRng, 2*time.Second, 4*time.Second))))
		if wl.cutOffHolder(cutRng, n.cell) {
			nCuts++
		}
	}
	faulted := time.Now()
	wl.stop()
	t.Logf("workers stopped %v after the faults ended; %d holders cut off", time.Since(faulted).Round(time.Millisecond), nCuts)
	wl.shutdown()

	checkLockHistory(t, wl.hist.operations(), rec.Annotations())
	t.Logf("history: %s", wl.hist.summary())
	lost := 0
	for _, name := range lockNames {
		acq, rel, l, _ := wl.hist.counts(name)
		lost += l
		if acq < 10 || rel < 5 {
			t.Errorf("%s: only %d acquires and %d clean releases: too little progress under faults", name, acq, rel)
		}
	}
	if nCuts == 0 {
		t.Errorf("the nemesis never cut off a holder: the lost-holder path went untested")
	}
	if lost < nCuts {
		t.Errorf("%d holders were cut off but only %d holdings were recorded lost", nCuts, lost)
	}
	checkCellLocks(t, n.cell, wl.hist)
}

type holdState uint8

const (
	idle holdState = iota
	acquiring
	holding
	releasing
)

// lockWorkload runs one worker per session; each worker loops on one lock.
type lockWorkload struct {
	t       *testing.T
	addrs   []string
	rec     *fsapitest.Recorder
	hist    *lockHistory
	grace   time.Duration
	lease   time.Duration // the cell's session lease
	stopped atomic.Bool
	wg      sync.WaitGroup
	workers []*lockWorker
	once    sync.Once
}

type lockWorker struct {
	wl   *lockWorkload
	id   int
	lock string
	rng  *rand.Rand

	mu     sync.Mutex // protects following fields
	c      *cellclient.Client
	h      *cellclient.Handle
	state  holdState
	frozen bool // keep holding until the session ends (it was cut off)
	cut    bool // its client was cut off from the cell
}

func newLockWorkload(t *testing.T, seed uint64, addrs []string, rec *fsapitest.Recorder, perLock int) *lockWorkload {
	wl := &lockWorkload{t: t, addrs: addrs, rec: rec, hist: newLockHistory(rec), grace: 4 * time.Second,
		lease: mastertest.TestConfig().SessionLease}
	for i := range perLock * len(lockNames) {
		wl.workers = append(wl.workers, &lockWorker{wl: wl, id: i, lock: lockNames[i%len(lockNames)],
			rng: rand.New(rand.NewPCG(seed, 0x776f726b00|uint64(i)))})
	}
	return wl
}

func (wl *lockWorkload) start() {
	for _, wk := range wl.workers {
		wl.wg.Add(1)
		go func() {
			defer wl.wg.Done()
			wk.run()
		}()
	}
}

// stop stops the workers: holders finish their holding and release; an
// Acquire still waiting is interrupted by poisoning its handle (its outcome
// is unknown: it is left out of the history); a cut-off holder is recorded
// lost at once.
func (wl *lockWorkload) stop() {
	if wl.stopped.Swap(true) {
		return
	}
	done := make(chan struct{})
	go func() {
		wl.wg.Wait()
		close(done)
	}()
	poke := time.NewTicker(100 * time.Millisecond)
	defer poke.Stop()
	deadline := time.After(60 * time.Second)
	for {
		for _, wk := range wl.workers {
			wk.mu.Lock()
			if wk.state == acquiring && wk.h != nil {
				wk.h.Poison()
			}
			wk.mu.Unlock()
		}
		select {
		case <-done:
			return
		case <-poke.C:
		case <-deadline:
			wl.t.Fatalf("lock workers did not stop within 60 s")
		}
	}
}

// shutdown stops the workers and closes every session cleanly (a cut-off
// client is reconnected first, so its goodbye reaches the cell).
func (wl *lockWorkload) shutdown() {
	wl.once.Do(func() {
		wl.stop()
		var wg sync.WaitGroup
		for _, wk := range wl.workers {
			wk.mu.Lock()
			c, cut := wk.c, wk.cut
			wk.c, wk.h = nil, nil
			wk.mu.Unlock()
			if c == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if cut {
					c.SetAddrsForTest(wl.addrs)
				}
				c.Close()
			}()
		}
		wg.Wait()
	})
}

func (wl *lockWorkload) isStopped() bool { return wl.stopped.Load() }

// session returns the worker's client and handle, dialling a new session
// if it has none.
func (wk *lockWorker) session() (*cellclient.Client, *cellclient.Handle, error) {
	wk.mu.Lock()
	c, h := wk.c, wk.h
	wk.mu.Unlock()
	if c != nil {
		return c, h, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: wk.wl.addrs, AttemptTimeout: time.Second,
		GracePeriod: wk.wl.grace, ClientName: fmt.Sprintf("%s-w%d", wk.wl.t.Name(), wk.id)})
	if err != nil {
		return nil, nil, err
	}
	h, err = c.Open(ctx, wk.lock, &cellclient.OpenOptions{Create: fsapi.CreateMay, LockDelay: cellclient.LockDelay(lockWorkloadDelay)})
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	wk.mu.Lock()
	wk.c, wk.h, wk.cut = c, h, false
	wk.mu.Unlock()
	return c, h, nil
}

func (wk *lockWorker) setState(s holdState) {
	wk.mu.Lock()
	wk.state = s
	wk.mu.Unlock()
}

// ended handles a failed lock call: without a deadline, Acquire and
// Release fail only when the session ends (or the test stops them), so the
// session must end soon; then the worker drops it.
func (wk *lockWorker) ended(c *cellclient.Client, what string, err error) {
	wl := wk.wl
	if !(wl.isStopped() && errors.Is(err, fsapi.ErrHandleClosed)) {
		wait := wl.lease + wl.grace + 10*time.Second
		select {
		case <-c.Done():
		case <-time.After(wait):
			wl.t.Errorf("worker %d: %s failed while session %d lived on for %v more: %v", wk.id, what, c.Session(), wait, err)
		}
	}
	wk.mu.Lock()
	cut := wk.cut
	if wk.c == c {
		wk.c, wk.h, wk.frozen, wk.cut = nil, nil, false, false
	}
	wk.mu.Unlock()
	if cut {
		c.SetAddrsForTest(wl.addrs)
	}
	c.Close()
}

func (wk *lockWorker) run() {
	wl := wk.wl
	for !wl.isStopped() {
		c, h, err := wk.session()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		holder := c.Session()
		wk.setState(acquiring)
		call := wl.rec.Now()
		err = h.Acquire(context.Background(), cellclient.Exclusive)
		ret := wl.rec.Now()
		if err != nil {
			wk.setState(idle)
			wk.ended(c, "acquire", err)
			continue
		}
		wk.setState(holding)
		seq, err := h.GetSequencer()
		if err != nil {
			// The session ended as the grant arrived: the generation is
			// unknown, so the holding is left out (see the top of the file).
			wk.setState(idle)
			wk.ended(c, "sequencer", err)
			continue
		}
		wl.hist.acquired(wk.id, wk.lock, holder, call, ret, seq.Generation)
		since := call
		if at, ok := lockConfirmed(c, wl.rec); ok {
			since = at
		}
		holdEnd := time.Now().Add(time.Duration(wk.rng.Int64N(int64(30 * time.Millisecond))))
		lostWhy := ""
		for {
			wk.mu.Lock()
			frozen := wk.frozen
			if !frozen && !time.Now().Before(holdEnd) {
				wk.state = releasing
				wk.mu.Unlock()
				break
			}
			wk.mu.Unlock()
			if frozen {
				select {
				case <-c.Done():
					lostWhy = "cut off until its session ended"
				case <-time.After(10 * time.Millisecond):
				}
				if lostWhy == "" && wl.isStopped() {
					lostWhy = "cut off when the test stopped"
				}
				if lostWhy != "" {
					break
				}
			} else {
				time.Sleep(min(10*time.Millisecond, time.Until(holdEnd)))
			}
			if at, ok := lockConfirmed(c, wl.rec); ok {
				since = at
			}
		}
		if lostWhy != "" {
			wl.hist.lostHolding(wk.id, wk.lock, holder, since, lostWhy)
			wk.setState(idle)
			if !wl.isStopped() {
				wk.ended(c, "holding", fsapi.ErrSessionExpired)
			}
			continue
		}
		rcall := wl.rec.Now()
		err = h.Release(context.Background())
		rret := wl.rec.Now()
		wk.setState(idle)
		if err != nil {
			wl.hist.lostHolding(wk.id, wk.lock, holder, since, "release failed: "+err.Error())
			wk.ended(c, "release", err)
			continue
		}
		wl.hist.released(wk.id, wk.lock, holder, rcall, rret)
		time.Sleep(time.Duration(wk.rng.Int64N(int64(20 * time.Millisecond))))
	}
}

// cutOffHolder cuts off a session that holds a lock (waiting up to 5 s for
// one), and waits until the master has expired it. The victim goes on
// holding (frozen) until its client sees its session end: it is a lost
// holder. It reports whether it cut one off.
func (wl *lockWorkload) cutOffHolder(rng *rand.Rand, cell *mastertest.Cell) bool {
	t := wl.t
	t.Helper()
	var wk *lockWorker
	var c *cellclient.Client
	for deadline := time.Now().Add(5 * time.Second); wk == nil; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Logf("client nemesis: no worker held a lock for 5 s")
			return false
		}
		var cands []*lockWorker
		for _, w := range wl.workers {
			w.mu.Lock()
			if w.state == holding && !w.frozen && w.c != nil {
				cands = append(cands, w)
			}
			w.mu.Unlock()
		}
		if len(cands) == 0 {
			continue
		}
		w := cands[rng.IntN(len(cands))]
		w.mu.Lock()
		if w.state == holding && !w.frozen && w.c != nil {
			w.frozen, w.cut = true, true
			wk, c = w, w.c
		}
		w.mu.Unlock()
	}
	start, at := wl.rec.Now(), time.Now()
	c.CutOffForTest()
	sess := c.Session()
	// Each new master grants every session a full lease, so an election
	// (on a loaded machine, even without a fault) postpones the expiry.
	wait := wl.lease + 30*time.Second
	for deadline := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		if _, ok := cell.Replica(cell.WaitMaster(t)).Server().FSM().Session(sess); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master did not expire cut-off session %d within %v", sess, wait)
		}
	}
	desc := fmt.Sprintf("cut off worker %d (session %d, holding %s) until the master expired it", wk.id, sess, wk.lock)
	wl.rec.Annotate("nemesis", desc, start, wl.rec.Now())
	t.Logf("nemesis at %.3fs: %s (%v)", float64(start)/1e9, desc, time.Since(at).Round(time.Millisecond))
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// checkCellLocks checks the lock state every replica's FSM holds once the
// workload's sessions are all gone: the same on every replica; each lock
// free with no waiters, at a generation no lower than any the history saw
// granted, equal to its node's Stat.LockGeneration.
func checkCellLocks(t *testing.T, cell *mastertest.Cell, hist *lockHistory) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := cell.Replica(cell.WaitMaster(t)).Server().FSM()
		busy := ""
		if n := len(f.Sessions()); n > 0 {
			busy = fmt.Sprintf("%d sessions live", n)
		}
		for _, name := range lockNames {
			if l, _ := f.LockState(fsmPath(name)); l.Held() || len(l.Waiters) > 0 {
				busy = l.String()
			}
		}
		if busy == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after every session was closed or lost, the master still has: %s", busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cell.EnsureSameFSM(t)
	for i := range cell.N() {
		srv := cell.Replica(i).Server()
		if srv == nil {
			t.Errorf("replica r%d is not running at the end", i+1)
			continue
		}
		f := srv.FSM()
		for _, name := range lockNames {
			p := fsmPath(name)
			l, _ := f.LockState(p)
			_, _, _, maxGen := hist.counts(name)
			n, ok := f.View().Get(p)
			switch {
			case !ok:
				t.Errorf("r%d: node %s is missing", i+1, p)
			case l.Held() || len(l.Waiters) > 0:
				t.Errorf("r%d: %s with no session left", i+1, l)
			case l.Generation < maxGen:
				t.Errorf("r%d: %s: generation %d is below %d, which a holder was granted", i+1, p, l.Generation, maxGen)
			case n.Stat.LockGeneration != l.Generation:
				t.Errorf("r%d: %s: node's lock generation %d, lock table's %d", i+1, p, n.Stat.LockGeneration, l.Generation)
			default:
				if i == 0 {
					t.Logf("%s: generation %d at the end (%d granted at most to holders the history saw)", p, l.Generation, maxGen)
				}
			}
		}
	}
}

// fsmPath is the path of a /ls/local/... name inside the cell.
func fsmPath(name string) string { return strings.TrimPrefix(name, "/ls/local") }

// ---- Lock-delay ----

// TestLockDelay checks lock-delay against the master's and the clients'
// clocks (same process, same monotonic clock):
//
//   - a holder cut off until its session expires: its lock stays free but
//     unavailable for its lock-delay. Every TryAcquire that returns before
//     the delay ends fails with fsapi.ErrLockDelay; an Acquire queued
//     before the expiry is granted no earlier than the holder's own lease
//     end (which the master cannot beat) plus the delay, at the next
//     generation; the old sequencer is stale. A lock the same holder held
//     with lock-delay 0 is free at once.
//   - a clean Release, a Handle.Close and a Client.Close (even with a
//     30 s lock-delay) start none: TryAcquire succeeds at once.
func TestLockDelay(t *testing.T) {
	const delay = 2 * time.Second
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	victim, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	hv := openLock(t, ctx, victim, "/ls/local/delayed", cellclient.LockDelay(delay))
	hvz := openLock(t, ctx, victim, "/ls/local/nodelay", cellclient.LockDelay(0))
	for _, h := range []*cellclient.Handle{hv, hvz} {
		if err := h.TryAcquire(ctx, cellclient.Exclusive); err != nil {
			t.Fatal(err)
		}
	}
	seqV, err := hv.GetSequencer()
	if err != nil {
		t.Fatal(err)
	}
	prober := dialCell(t, cell)
	hp := openLock(t, ctx, prober, "/ls/local/delayed", nil)
	hpz := openLock(t, ctx, prober, "/ls/local/nodelay", nil)
	waiter := dialCell(t, cell)
	hw := openLock(t, ctx, waiter, "/ls/local/delayed", cellclient.LockDelay(delay))
	type grant struct {
		at  time.Time
		err error
	}
	granted := make(chan grant, 1)
	go func() {
		err := hw.Acquire(ctx, cellclient.Exclusive)
		granted <- grant{time.Now(), err}
	}()
	waitFor(t, func() bool { i, _ := hp.GetLock(ctx); return i.WaiterCount == 1 })
	if err := hp.TryAcquire(ctx, cellclient.Exclusive); !errors.Is(err, fsapi.ErrHeld) {
		t.Fatalf("TryAcquire of a held lock: %v", err)
	}

	victim.CutOffForTest()
	var info cellclient.LockInfo
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if info, err = hp.GetLock(ctx); err == nil && !slicesHasSession(info.Holders, victim.Session()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master did not drop the cut-off holder within 20 s: %+v %v", info, err)
		}
	}
	freeSeen := time.Now()
	if len(info.Holders) > 0 {
		t.Fatalf("the lock went straight from the lost holder to %+v: no lock-delay", info.Holders)
	}
	if info.DelayUntil.IsZero() {
		t.Fatalf("lock freed by an expired session shows no lock-delay: %+v", info)
	}
	if info.DelayUntil.After(freeSeen.Add(delay)) {
		t.Errorf("lock-delay runs until %v, more than %v after the expiry (seen at %v)", info.DelayUntil, delay, freeSeen)
	}
	if err := hpz.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Errorf("TryAcquire of a lock lost with lock-delay 0: %v", err)
	} else if err := hpz.Release(ctx); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for time.Now().Before(info.DelayUntil.Add(-100 * time.Millisecond)) {
		err := hp.TryAcquire(ctx, cellclient.Exclusive)
		returned := time.Now()
		switch {
		case errors.Is(err, fsapi.ErrLockDelay):
			refused++
		case err == nil:
			t.Fatalf("TryAcquire granted during the lock-delay (it ends at %v)", info.DelayUntil)
		case returned.Before(info.DelayUntil):
			t.Errorf("TryAcquire during the lock-delay: %v; want fsapi.ErrLockDelay", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if refused == 0 {
		t.Errorf("no TryAcquire was refused with fsapi.ErrLockDelay during the %v lock-delay", delay)
	}

	select {
	case <-victim.Done():
	case <-ctx.Done():
		t.Fatal("the cut-off client never saw its session expire")
	}
	leaseEnd := victim.LeaseEndForTest() // final: no KeepAlive can extend it now
	g := <-granted
	if g.err != nil {
		t.Fatalf("queued Acquire: %v", g.err)
	}
	// The master expires the session no earlier than the client's
	// conservative lease end, and the lock-delay runs from the expiry.
	if waited := g.at.Sub(leaseEnd); waited < delay {
		t.Errorf("the waiter was granted %v after the lost holder's lease ended; lock-delay is %v", waited, delay)
	}
	if floor := leaseEnd.UnixMilli() + delay.Milliseconds(); info.DelayUntil.UnixMilli() < floor {
		t.Errorf("lock-delay ends at %v, before the lost holder's lease end plus %v (%v)", info.DelayUntil, delay, time.UnixMilli(floor))
	}
	if late := g.at.Sub(info.DelayUntil); late > 5*time.Second {
		t.Errorf("the waiter was granted %v after the lock-delay ended", late)
	}
	t.Logf("holder's lease ended %v before the master was seen to drop it; granted %v after its lease end (lock-delay %v)",
		freeSeen.Sub(leaseEnd).Round(time.Millisecond), g.at.Sub(leaseEnd).Round(time.Millisecond), delay)
	seqW, err := hw.GetSequencer()
	if err != nil || seqW.Generation != seqV.Generation+1 {
		t.Fatalf("waiter's sequencer %v (%v); lost holder had %v", seqW, err, seqV)
	}
	if err := prober.CheckSequencer(ctx, seqV); !errors.Is(err, fsapi.ErrStaleSequencer) {
		t.Errorf("the lost holder's sequencer: %v; want fsapi.ErrStaleSequencer", err)
	}

	// A clean Release starts no lock-delay.
	if err := hw.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hp.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Errorf("TryAcquire right after a clean Release: %v", err)
	} else if err := hp.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Nor does closing the holding handle, or the holder's client, with a
	// 30 s lock-delay.
	other := dialCell(t, cell)
	hq := openLock(t, ctx, other, "/ls/local/delayed", cellclient.LockDelay(30*time.Second))
	if err := hq.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	hq.Close()
	if err := hp.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Errorf("TryAcquire right after the holder closed its handle: %v", err)
	} else if err := hp.Release(ctx); err != nil {
		t.Fatal(err)
	}
	hq2 := openLock(t, ctx, other, "/ls/local/delayed", cellclient.LockDelay(30*time.Second))
	if err := hq2.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hp.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Errorf("TryAcquire right after the holder's client closed: %v", err)
	}
	if info, err := hp.GetLock(ctx); err != nil || !info.DelayUntil.IsZero() {
		t.Errorf("lock after clean hand-overs: %+v %v; want no lock-delay", info, err)
	}
}
