package cellclient_test

// The workload of the fault tests ("the project's Jepsen"): concurrent
// clients read, write and compare-and-swap a few files while a nemesis
// injects faults; every call goes into a porcupine history that is checked
// for linearizability at the end.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/fsapitest"
)

// faultSeed is the schedule's seed: $HASP_SEED, else the time. It is
// always logged, so a failing schedule can be replayed (as far as real
// timers allow).
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HASP_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HASP_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with HASP_SEED=%d)", seed, seed)
	return seed
}

// faultDuration is how long a fault schedule runs: def, or $HASP_SOAK (a
// duration such as 10m) for a soak. Fault schedules are skipped under
// -short.
func faultDuration(t *testing.T, def time.Duration) time.Duration {
	t.Helper()
	if testing.Short() {
		t.Skip("fault schedule skipped under -short")
	}
	if s := os.Getenv("HASP_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("HASP_SOAK=%q: %v", s, err)
		}
		return d
	}
	return def
}

// workloadFiles are the files the workload uses; each starts empty, at
// content generation 1.
var workloadFiles = []string{"/ls/local/jepsen-a", "/ls/local/jepsen-b", "/ls/local/jepsen-c"}

var workloadInitial = fsapitest.File{Generation: 1}

// segmentLength bounds one checked history. Porcupine's cost grows faster
// than the history (370 000 operations: 46 s), so a long run is cut into
// segments, each ending with the cell healed and a read of every file, and
// each checked from the state the previous one's last reads saw.
const segmentLength = 30 * time.Second

// workload runs the clients of a fault test and records their history.
type workload struct {
	t       *testing.T
	seed    uint64
	addrs   []string
	workers int

	// opTimeout bounds each call; attemptTimeout is each client's
	// Config.AttemptTimeout.
	opTimeout, attemptTimeout time.Duration
	slots                     []*clientSlot

	// The current segment: set before its workers start.
	segment int
	rec     *fsapitest.Recorder
	initial map[string]fsapitest.File // each file's state when it began
	next    map[string]fsapitest.File // and when it ended (its final reads)
	stopCh  chan struct{}
	wg      sync.WaitGroup
	running bool

	mu          sync.Mutex       // protects following fields
	errClasses  map[string]int   // failed calls by kind and error class
	definiteErr map[string]error // value → non-ambiguous error of a write that failed
}

// newWorkload creates the files and returns a workload of 8 workers: six
// with a client each, and two sharing one client (concurrent writes of one
// session exercise the exactly-once table's out-of-order path).
//
// Two of the six are "sticky": their AttemptTimeout (10 s) outlasts each
// call (2 s), so a call that times out leaves the client connected to the
// same replica, and the next call waits there too. When that replica is a
// paused master, calls made after a new master acknowledged writes wait at
// the old one and are answered when it resumes: the history then shows
// any stale answer.
func newWorkload(t *testing.T, seed uint64, addrs []string) *workload {
	t.Helper()
	w := &workload{t: t, seed: seed, addrs: addrs, workers: 8,
		opTimeout: 3 * time.Second, attemptTimeout: time.Second, initial: map[string]fsapitest.File{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := w.dial(t, ctx, addrs)
	defer c.Close()
	for _, name := range workloadFiles {
		if _, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		w.initial[name] = workloadInitial
	}
	for i := range 7 {
		slot := &clientSlot{w: w, attemptTimeout: w.attemptTimeout, opTimeout: w.opTimeout}
		if i < 2 {
			slot.attemptTimeout, slot.opTimeout = 10*time.Second, 2*time.Second
		}
		w.slots = append(w.slots, slot)
	}
	// The last slot serves the remaining workers.
	w.slots[len(w.slots)-1].shared = w.workers > len(w.slots)
	t.Cleanup(w.close) // also if the test ends early
	return w
}

func (w *workload) dial(t testing.TB, ctx context.Context, addrs []string) *cellclient.Client {
	t.Helper()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: addrs, AttemptTimeout: w.attemptTimeout, ClientName: t.Name(), DisableCache: os.Getenv("HASP_NOCACHE") != ""})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

// run runs the workload for dur, in segments of at most segmentLength. In
// each, nemesis injects faults until the time it is given and returns with
// the cell healed and a master elected; then the workers stop, every file
// is read once more, the segment's history is checked, and settled (e.g.
// comparing replicas) runs.
func (w *workload) run(dur time.Duration, nemesis func(rec *fsapitest.Recorder, until time.Time), settled func()) {
	w.t.Helper()
	n := max(1, int((dur+segmentLength-1)/segmentLength))
	for seg := range n {
		start := time.Now()
		w.startSegment(seg)
		nemesis(w.rec, start.Add(dur/time.Duration(n)))
		faulted := time.Since(start)
		w.stopSegment()
		w.fence()
		stopped := time.Since(start)
		w.finalReads()
		w.t.Logf("segment %d/%d: faults for %v; workers stopped after %v more; final reads took %v", seg+1, n,
			faulted.Round(time.Millisecond), (stopped - faulted).Round(time.Millisecond), (time.Since(start) - stopped).Round(time.Millisecond))
		w.check()
		if settled != nil {
			settled()
		}
		if w.t.Failed() {
			return
		}
	}
}

func (w *workload) startSegment(seg int) {
	w.segment, w.rec, w.stopCh, w.running = seg, fsapitest.NewRecorder(), make(chan struct{}), true
	w.mu.Lock()
	w.definiteErr = map[string]error{}
	w.errClasses = map[string]int{}
	w.mu.Unlock()
	for i := range w.workers {
		slot := w.slots[min(i, len(w.slots)-1)]
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.work(i, slot, rand.New(rand.NewPCG(w.seed, uint64(seg)<<8|uint64(i))))
		}()
	}
}

// stopSegment stops the workers once their calls in flight have ended.
func (w *workload) stopSegment() {
	if !w.running {
		return
	}
	w.running = false
	close(w.stopCh)
	w.wg.Wait()
}

// close stops the workers and closes their clients.
func (w *workload) close() {
	w.stopSegment()
	var wg sync.WaitGroup
	for _, s := range w.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.close()
		}()
	}
	wg.Wait()
}

func (w *workload) stopped() bool {
	select {
	case <-w.stopCh:
		return true
	default:
		return false
	}
}

// work is one worker: random reads, writes and CASes on random files until
// stopped. A CAS expects the generation this worker saw last for the file,
// so that some succeed and some do not. A worker with a client of its own
// settles its writes of unknown outcome (see settler).
func (w *workload) work(id int, slot *clientSlot, rng *rand.Rand) {
	seen := make([]uint64, len(workloadFiles))
	for n := 0; !w.stopped(); n++ {
		c, hs, err := slot.get()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f := rng.IntN(len(workloadFiles))
		in := fsapitest.Input{Path: workloadFiles[f], Data: fmt.Sprintf("s%d.w%d.%d", w.segment, id, n)}
		switch p := rng.Float64(); {
		case p < 0.4:
			in.Kind, in.Data = fsapitest.Read, ""
		case p < 0.7:
			in.Kind = fsapitest.Write
		default:
			in.Kind, in.IfGeneration = fsapitest.CAS, max(seen[f], 1)
		}
		out, call, err := w.call(id, hs[f], in, slot.opTimeout)
		if err == nil {
			seen[f] = out.Generation
		}
		if in.Kind != fsapitest.Read {
			slot.settle.ended(c, call, err, !slot.shared)
		}
		if errors.Is(err, fsapi.ErrSessionExpired) || errors.Is(err, fsapi.ErrClosed) {
			slot.reset(c)
		}
	}
}

// settler bounds when a worker's writes of unknown outcome took effect.
// A write W whose call gave up with *fsapi.AmbiguousError may still be
// applied later (other failed writes are not in the history), but not after
// a later write X of the same session that was applied with an answer
// (OK): X's AckBelow was above W's number, because the client stopped
// counting W in flight when W's call ended, and once X applied, the
// cell's exactly-once table refuses W (a number below the session's
// acknowledged mark). So W took effect, if at all, before X returned, and
// porcupine need not try it at every later point: with many such writes
// after a long outage, that search did not end within minutes. This holds
// only while no other call of the session is in flight, so only for
// workers that have a client to themselves, and only within one session.
// The fence settles every slot's remaining writes the same way.
type settler struct {
	mu      sync.Mutex // protects following fields
	c       *cellclient.Client
	pending []*fsapitest.Call
}

// ended notes a write of client c that ended with err; with settle, an
// answered one settles the session's earlier writes of unknown outcome.
func (s *settler) ended(c *cellclient.Client, call *fsapitest.Call, err error, settle bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != s.c {
		s.c, s.pending = c, nil // a new session: the old one's writes stay unknown
	}
	switch {
	case err == nil && settle:
		s.settleLocked(call.Returned())
	case err != nil && call.Returned() == fsapitest.Never:
		s.pending = append(s.pending, call)
	}
}

// fenced ends a segment: it settles, at ret, the writes of unknown outcome
// of client c, which then wrote with an answer and had no other call in
// flight (c nil: none did), and forgets them either way.
func (s *settler) fenced(c *cellclient.Client, ret int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != nil && c == s.c {
		s.settleLocked(ret)
	}
	s.pending = nil
}

func (s *settler) settleLocked(ret int64) {
	for _, p := range s.pending {
		p.SettledBy(ret)
	}
	s.pending = nil
}

// call makes one call and records it.
func (w *workload) call(id int, h *cellclient.Handle, in fsapitest.Input, timeout time.Duration) (fsapitest.Output, *fsapitest.Call, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := w.rec.Begin(id, in)
	var out fsapitest.Output
	var err error
	switch in.Kind {
	case fsapitest.Read:
		var data []byte
		var st fsapi.Stat
		data, st, err = h.GetContentsAndStat(ctx)
		out = fsapitest.Output{Data: string(data), Generation: st.ContentGeneration}
	case fsapitest.Write, fsapitest.CAS:
		ifGen := fsapi.AnyGeneration
		if in.Kind == fsapitest.CAS {
			ifGen = in.IfGeneration
		}
		var st fsapi.Stat
		st, err = h.SetContents(ctx, []byte(in.Data), ifGen)
		out = fsapitest.Output{Generation: st.ContentGeneration}
	}
	call.End(out, err)
	if err != nil {
		w.noteErr(id, in, err)
	}
	return out, call, err
}

// noteErr counts a failure by class, fails the test on errors the workload
// can never legitimately cause, and remembers writes that failed without
// an *fsapi.AmbiguousError.
func (w *workload) noteErr(id int, in fsapitest.Input, err error) {
	var amb *fsapi.AmbiguousError
	class := "other"
	switch {
	case errors.Is(err, fsapi.ErrGenerationMismatch):
		if in.Kind == fsapitest.CAS {
			return
		}
		class = "mismatch"
	case errors.As(err, &amb):
		class = "ambiguous"
	case errors.Is(err, context.DeadlineExceeded):
		class = "deadline"
	case errors.Is(err, fsapi.ErrSessionExpired):
		class = "session-expired"
		w.t.Logf("worker %d at %.3fs: %s: %v", id, float64(w.rec.Now())/1e9, in.Kind, err)
	case errors.Is(err, fsapi.ErrClosed):
		class = "closed"
	}
	for _, bad := range []error{fsapi.ErrNotExist, fsapi.ErrHandleInvalid, fsapi.ErrBadRequest, fsapi.ErrTooLarge,
		fsapi.ErrBadName, fsapi.ErrIsDir, fsapi.ErrWrongCell, fsapi.ErrHandleClosed} {
		if errors.Is(err, bad) {
			w.t.Errorf("%s %s: unexpected error: %v", in.Kind, in.Path, err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errClasses[in.Kind.String()+" "+class]++
	if in.Kind != fsapitest.Read && class != "ambiguous" {
		w.definiteErr[in.Data] = err
	}
}

// fenceFile is what fence writes; the history does not record it.
const fenceFile = "/ls/local/jepsen-fence"

// fence makes sure that no write a worker gave up on can still take effect
// after the final reads. Such a write may still be at the master (waiting
// for invalidations, or proposed and not yet committed) when the workers
// stop, and if it landed after the final reads, the next segment would
// start from a state its history does not allow. So each slot's session
// writes once more, with a definite answer: that write acknowledges every
// earlier one of the session (AckBelow), so the cell refuses any of them
// that it applies later, and any it applies earlier the final reads see.
// A session that ended can apply nothing more.
func (w *workload) fence() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range w.slots {
		s.mu.Lock()
		c := s.c
		s.mu.Unlock()
		if c == nil {
			s.settle.fenced(nil, 0)
			continue
		}
		for {
			h, err := c.Open(ctx, fenceFile, &cellclient.OpenOptions{Create: fsapi.CreateMay})
			if err == nil {
				_, err = h.SetContents(ctx, []byte("fence"), fsapi.AnyGeneration)
				h.Close()
			}
			if err == nil {
				s.settle.fenced(c, w.rec.Now())
				break
			}
			if errors.Is(err, fsapi.ErrSessionExpired) || errors.Is(err, fsapi.ErrClosed) {
				s.settle.fenced(nil, 0)
				break
			}
			select { // a short pause between tries, not a busy loop
			case <-ctx.Done():
				w.t.Fatalf("fence: no definite answer within 60s: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// finalReads reads every file once more, after the faults healed, with a
// fresh client: porcupine then checks that no acknowledged write was lost.
// What they return is where the next segment starts.
func (w *workload) finalReads() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := w.dial(w.t, ctx, w.addrs)
	defer c.Close()
	next := map[string]fsapitest.File{}
	for _, name := range workloadFiles {
		h, err := c.Open(ctx, name, nil)
		if err != nil {
			w.t.Fatalf("final open %s: %v", name, err)
		}
		for {
			in := fsapitest.Input{Kind: fsapitest.Read, Path: name}
			out, _, err := w.call(w.workers, h, in, w.opTimeout)
			if err == nil {
				next[name] = fsapitest.File{Data: out.Data, Generation: out.Generation}
				break
			}
			if ctx.Err() != nil {
				w.t.Fatalf("final read of %s: no answer within 60s", name)
			}
		}
	}
	w.next = next
}

// check checks the history for linearizability and progress, and reports
// what happened.
func (w *workload) check() {
	w.t.Helper()
	ops := w.rec.Operations()
	initial := w.initial
	fsapitest.Check(w.t, fsapitest.ModelFrom(func(p string) fsapitest.File { return initial[p] }), ops, w.rec.Annotations()...)
	w.initial = w.next
	var counts []string
	for _, k := range []fsapitest.Kind{fsapitest.Read, fsapitest.Write, fsapitest.CAS} {
		for _, r := range []fsapitest.Result{fsapitest.OK, fsapitest.Mismatch, fsapitest.Unknown} {
			if n := w.rec.Count(k, r); n > 0 {
				counts = append(counts, fmt.Sprintf("%s %s %d", k, r, n))
			}
		}
	}
	w.mu.Lock()
	var errs []string
	for class, n := range w.errClasses {
		errs = append(errs, fmt.Sprintf("%s %d", class, n))
	}
	w.mu.Unlock()
	sort.Strings(errs)
	w.t.Logf("history: %s; failures: %s", strings.Join(counts, ", "), strings.Join(errs, ", "))
	if ok := w.rec.Count(fsapitest.Write, fsapitest.OK) + w.rec.Count(fsapitest.CAS, fsapitest.OK); ok < 20 {
		w.t.Errorf("only %d writes acknowledged: the cell made too little progress under faults", ok)
	}
	if ok := w.rec.Count(fsapitest.Read, fsapitest.OK); ok < 20 {
		w.t.Errorf("only %d reads answered: the cell made too little progress under faults", ok)
	}
	w.checkDefiniteErrors(ops)
}

// checkDefiniteErrors reports writes that failed with an error other than
// *fsapi.AmbiguousError but were applied (a read returned their unique
// value): cellclient promises AmbiguousError whenever the outcome is
// unknown.
func (w *workload) checkDefiniteErrors(ops []porcupine.Operation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range ops {
		out := op.Output.(fsapitest.Output)
		if op.Input.(fsapitest.Input).Kind != fsapitest.Read || out.Result != fsapitest.OK {
			continue
		}
		err, ok := w.definiteErr[out.Data]
		if !ok {
			continue
		}
		delete(w.definiteErr, out.Data)
		// The recorder left such a write out of the history (it promised
		// no effect), so porcupine has rejected the history already; this
		// says why. TestFaultWriteAnsweredTryElsewhereIsAmbiguous
		// reproduces the one cause found so far.
		w.t.Logf("CONTRACT BREACH: write %q failed without *fsapi.AmbiguousError but was applied (a read returned it): %v", out.Data, err)
	}
}

// clientSlot holds one client and its handles for the workers that share
// it, and replaces the client when its session ends.
type clientSlot struct {
	w                         *workload
	attemptTimeout, opTimeout time.Duration
	shared                    bool // more than one worker uses it
	settle                    settler

	mu sync.Mutex // protects following fields
	c  *cellclient.Client
	hs []*cellclient.Handle
}

// get returns the slot's client and its handles, dialling if need be.
func (s *clientSlot) get() (*cellclient.Client, []*cellclient.Handle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c, s.hs, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: s.w.addrs, AttemptTimeout: s.attemptTimeout, ClientName: s.w.t.Name(), DisableCache: os.Getenv("HASP_NOCACHE") != ""})
	if err != nil {
		return nil, nil, err
	}
	var hs []*cellclient.Handle
	for _, name := range workloadFiles {
		h, err := c.Open(ctx, name, nil)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		hs = append(hs, h)
	}
	s.c, s.hs = c, hs
	return c, hs, nil
}

// reset drops c if it is still the slot's client.
func (s *clientSlot) reset(c *cellclient.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == c {
		s.c, s.hs = nil, nil
		c.Close() // the session is over: no goodbye to send
	}
}

func (s *clientSlot) close() {
	s.mu.Lock()
	c := s.c
	s.c, s.hs = nil, nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
