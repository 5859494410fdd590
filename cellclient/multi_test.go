package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/fsapitest"
	"github.com/haspcell/hasp/master/mastertest"
)

func mustOpen(t *testing.T, ctx context.Context, c *cellclient.Client, name string, opts *cellclient.OpenOptions) *cellclient.Handle {
	t.Helper()
	h, err := c.Open(ctx, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMultiBasics: a Multi applies every op or none; the error names the
// first failing op and unwraps to its error; the client refuses what it
// can check itself before sending anything.
func TestMultiBasics(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustOpen(t, ctx, c, "/ls/local/old", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("x")})

	res, err := c.Multi(ctx,
		cellclient.Op{Kind: cellclient.OpCreate, Name: "/ls/local/d", Directory: true},
		cellclient.CreateOp("/ls/local/d/f", []byte("1")),
		cellclient.SetOp("/ls/local/d/f", []byte("2"), 1),
		cellclient.Op{Kind: cellclient.OpCreate, Name: "/ls/local/d/job-", Sequential: true, Ephemeral: true},
		cellclient.CheckOp("/ls/local/old", 1),
		cellclient.DeleteOp("/ls/local/old", 1))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range res {
		names = append(names, r.Name)
	}
	want := []string{"/ls/test/d", "/ls/test/d/f", "/ls/test/d/f", "/ls/test/d/job-0000000000", "/ls/test/old", "/ls/test/old"}
	if !slices.Equal(names, want) || res[2].Stat.ContentGeneration != 2 || res[3].Stat.EphemeralOwner != c.Session() {
		t.Fatalf("results %+v", res)
	}
	rev := res[0].Stat.CreatedRevision
	for _, r := range res[1:4] {
		if r.Stat.ModifiedRevision != rev {
			t.Fatalf("%s changed at revision %d, the Multi at %d", r.Name, r.Stat.ModifiedRevision, rev)
		}
	}
	f := mustOpen(t, ctx, c, "/ls/local/d/f", nil)
	if data, _, err := f.GetContentsAndStat(ctx); err != nil || string(data) != "2" {
		t.Fatalf("/d/f = %q, %v", data, err)
	}
	if _, err := c.Open(ctx, "/ls/local/old", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("/old after the Multi: %v", err)
	}

	// The third op fails: the first two are not applied.
	_, err = c.Multi(ctx, cellclient.CreateOp("/ls/local/d/g", nil), cellclient.SetOp("/ls/local/d/f", []byte("3"), 2),
		cellclient.SetOp("/ls/local/d/f", []byte("4"), 2))
	var me *fsapi.MultiOpError
	if !errors.As(err, &me) || me.Op != 2 || !errors.Is(err, fsapi.ErrGenerationMismatch) || !strings.Contains(err.Error(), "op 2") {
		t.Fatalf("failing Multi: %v", err)
	}
	if _, err := c.Open(ctx, "/ls/local/d/g", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("/d/g of the failed Multi: %v", err)
	}
	if data, st, err := f.GetContentsAndStat(ctx); err != nil || string(data) != "2" || st.ContentGeneration != 2 {
		t.Fatalf("/d/f after the failed Multi: %q %+v %v", data, st, err)
	}

	// What the client checks itself, naming the op where there is one.
	tooMany := make([]cellclient.Op, fsapi.MaxMultiOps+1)
	for i := range tooMany {
		tooMany[i] = cellclient.CheckOp("/ls/local/d", 0)
	}
	big := make([]byte, c.ContentLimit()/2+1)
	for _, tc := range []struct {
		ops  []cellclient.Op
		want error
		op   int // -1: not about one op
	}{
		{nil, fsapi.ErrBadRequest, -1},
		{tooMany, fsapi.ErrBadRequest, -1},
		{[]cellclient.Op{cellclient.CreateOp("/ls/local/a", big), cellclient.CreateOp("/ls/local/b", big)}, fsapi.ErrTooLarge, -1},
		{[]cellclient.Op{cellclient.CheckOp("/ls/local/d", 0), cellclient.CheckOp("/ls/local/a//b", 0)}, fsapi.ErrBadName, 1},
		{[]cellclient.Op{cellclient.CheckOp("/ls/other/a", 0)}, fsapi.ErrWrongCell, 0},
		{[]cellclient.Op{{Kind: cellclient.OpSet, Name: "/ls/local/d/f", Ephemeral: true}}, fsapi.ErrBadRequest, 0},
		{[]cellclient.Op{{Kind: cellclient.OpDelete, Name: "/ls/local/d/f", Contents: []byte("x")}}, fsapi.ErrBadRequest, 0},
		{[]cellclient.Op{{Kind: 9, Name: "/ls/local/d/f"}}, fsapi.ErrBadRequest, 0},
	} {
		_, err := c.Multi(ctx, tc.ops...)
		var me *fsapi.MultiOpError
		if !errors.Is(err, tc.want) || errors.As(err, &me) != (tc.op >= 0) || (tc.op >= 0 && me.Op != tc.op) {
			t.Errorf("%d ops: %v, want %v at op %d", len(tc.ops), err, tc.want, tc.op)
		}
	}
	// The ephemeral node goes with the session.
	c.Close()
	other := dialCell(t, cell)
	if _, err := other.Open(ctx, "/ls/local/d/job-0000000000", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("ephemeral node of the Multi after its session closed: %v", err)
	}
}

// TestMultiInvalidatesAndNotifies: a Multi invalidates every node and
// listing it changes in other clients' caches before it applies, and a
// watcher gets one event per change, all at the Multi's revision.
func TestMultiInvalidatesAndNotifies(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	writer, reader := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustOpen(t, ctx, writer, "/ls/local/d", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true})
	mustOpen(t, ctx, writer, "/ls/local/d/a", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("a1")})
	mustOpen(t, ctx, writer, "/ls/local/d/b", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	// The reader caches /d/a's contents, /d's listing and /d/c's absence.
	ra, rd := mustOpen(t, ctx, reader, "/ls/local/d/a", nil), mustOpen(t, ctx, reader, "/ls/local/d", nil)
	for range 2 {
		if _, _, err := ra.GetContentsAndStat(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := rd.ReadDir(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := reader.Open(ctx, "/ls/local/d/c", nil); !errors.Is(err, fsapi.ErrNotExist) {
			t.Fatal(err)
		}
	}
	events, err := reader.Watch(ctx, "/ls/local/d", cellclient.WatchOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := writer.Multi(ctx, cellclient.SetOp("/ls/local/d/a", []byte("a2"), 0),
		cellclient.DeleteOp("/ls/local/d/b", 0), cellclient.CreateOp("/ls/local/d/c", []byte("c")))
	if err != nil {
		t.Fatal(err)
	}
	if data, _, err := ra.GetContentsAndStat(ctx); err != nil || string(data) != "a2" {
		t.Fatalf("cached /d/a after the Multi: %q %v", data, err)
	}
	ents, err := rd.ReadDir(ctx)
	if err != nil || len(ents) != 2 || ents[0].Name != "a" || ents[1].Name != "c" {
		t.Fatalf("cached listing after the Multi: %+v %v", ents, err)
	}
	if _, err := reader.Open(ctx, "/ls/local/d/c", nil); err != nil {
		t.Fatalf("cached absence of /d/c after the Multi: %v", err)
	}
	rev := res[0].Stat.ModifiedRevision
	var got []string
	for range 3 {
		e := <-events
		if e.Err != nil || e.Revision != rev {
			t.Fatalf("event %+v, want revision %d", e, rev)
		}
		got = append(got, fmt.Sprintf("%v %s", e.Kind, e.Name))
	}
	want := []string{"modified /ls/test/d/a", "deleted /ls/test/d/b", "created /ls/test/d/c"}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// multiOutcome is one Multi as a fault run saw it.
type multiOutcome struct {
	caller, i int
	result    fsapitest.Result
	err       error
}

// multiRun: callers each run Multis of four ops, "create k-i-a, create
// k-i-b, set counter-k to i, compare-and-swap shared" (the CAS with the
// generation the caller just read), while masters crash.
type multiRun struct {
	t       *testing.T
	dir     string
	clients []*cellclient.Client
	rec     *fsapitest.Recorder
	acked   atomic.Int64 // Multis acknowledged
	mu      sync.Mutex   // protects out
	out     []multiOutcome
}

const multiCallersPerClient = 2

func newMultiRun(t *testing.T, ctx context.Context, dial func() *cellclient.Client, clients int) *multiRun {
	r := &multiRun{t: t, rec: fsapitest.NewRecorder()}
	for range clients {
		r.clients = append(r.clients, dial())
	}
	c := r.clients[0]
	r.dir = fsapi.FullName(c.Cell(), "/m")
	ops := []cellclient.Op{{Kind: cellclient.OpCreate, Name: r.dir, Directory: true}, cellclient.CreateOp(r.dir+"/shared", nil)}
	for k := range clients * multiCallersPerClient {
		ops = append(ops, cellclient.CreateOp(fmt.Sprintf("%s/counter-%d", r.dir, k), nil))
	}
	if _, err := c.Multi(ctx, ops...); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *multiRun) run(nemesis func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for ci, c := range r.clients {
		for j := range multiCallersPerClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.caller(c, ci*multiCallersPerClient+j, stop)
			}()
		}
	}
	nemesis()
	waitAcked(r.acked.Load)
	close(stop)
	wg.Wait()
}

// annotated marks each fault in the history's visualization.
func (r *multiRun) annotated(fault func() string) func() string {
	return func() string {
		start := r.rec.Now()
		desc := fault()
		r.rec.Annotate("nemesis", desc, start, r.rec.Now())
		return desc
	}
}

func (r *multiRun) caller(c *cellclient.Client, k int, stop <-chan struct{}) {
	ctx := context.Background()
	shared, err := c.Open(ctx, r.dir+"/shared", nil)
	if err != nil {
		r.t.Errorf("caller %d: %v", k, err)
		return
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		_, st, err := r.read(k, shared)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.multi(c, k, i, st.ContentGeneration)
	}
}

// read reads the shared file into the history.
func (r *multiRun) read(k int, h *cellclient.Handle) (string, fsapi.Stat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := r.rec.Begin(k, fsapitest.Input{Kind: fsapitest.Read, Path: h.Name()})
	data, st, err := h.GetContentsAndStat(ctx)
	call.End(fsapitest.Output{Data: string(data), Generation: st.ContentGeneration}, err)
	return string(data), st, err
}

// multi runs caller k's Multi number i; its CAS on the shared file goes
// into the history.
func (r *multiRun) multi(c *cellclient.Client, k, i int, gen uint64) {
	tag := fmt.Sprintf("%d-%d", k, i)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := r.rec.Begin(k, fsapitest.Input{Kind: fsapitest.CAS, Path: r.dir + "/shared", Data: tag, IfGeneration: gen})
	res, err := c.Multi(ctx,
		cellclient.CreateOp(r.dir+"/"+tag+"-a", []byte(tag)),
		cellclient.CreateOp(r.dir+"/"+tag+"-b", []byte(tag)),
		cellclient.SetOp(fmt.Sprintf("%s/counter-%d", r.dir, k), []byte(tag), fsapi.AnyGeneration),
		cellclient.SetOp(r.dir+"/shared", []byte(tag), gen))
	o := multiOutcome{caller: k, i: i, err: err}
	var me *fsapi.MultiOpError
	switch {
	case err == nil:
		o.result = fsapitest.OK
		r.acked.Add(1)
		call.End(fsapitest.Output{Generation: res[3].Stat.ContentGeneration}, nil)
	case errors.As(err, &me) && me.Op == 3 && errors.Is(err, fsapi.ErrGenerationMismatch):
		o.result = fsapitest.Mismatch
		call.End(fsapitest.Output{}, err)
	case errors.As(err, &me):
		r.t.Errorf("Multi %s failed at op %d: %v", tag, me.Op, err) // the names are new: never
		call.Unknown(err)
		o.result = fsapitest.Unknown
	default: // ambiguous (deadline), or the session ended
		o.result = fsapitest.Unknown
		call.Unknown(err)
	}
	r.mu.Lock()
	r.out = append(r.out, o)
	r.mu.Unlock()
}

// check reads the directory and checks, for every Multi:
//
//   - its two files both exist or neither does (all or nothing);
//   - acknowledged: both exist; refused (the CAS mismatched): neither;
//   - counter-k's generation is 1 + the Multis of caller k that were
//     applied, and it holds the last one's tag: none was applied twice;
//   - the shared file's generation is 1 + every applied Multi;
//
// and checks the history of the shared file (reads and the Multis' CAS)
// for linearizability with porcupine.
func (r *multiRun) check(ctx context.Context, reader *cellclient.Client) {
	t := r.t
	d := mustOpen(t, ctx, reader, r.dir, nil)
	ents, err := d.ReadDir(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]fsapi.Stat{}
	for _, e := range ents {
		stats[e.Name] = e.Stat
	}
	applied := map[int]int{}    // caller → Multis applied
	lastTag := map[int]string{} // caller → tag of its last applied Multi
	counts := map[fsapitest.Result]int{}
	for _, o := range r.out {
		tag := fmt.Sprintf("%d-%d", o.caller, o.i)
		_, a := stats[tag+"-a"]
		_, b := stats[tag+"-b"]
		counts[o.result]++
		switch {
		case a != b:
			t.Fatalf("Multi %s applied in part: a %v, b %v", tag, a, b)
		case o.result == fsapitest.OK && !a:
			t.Fatalf("acknowledged Multi %s is not applied", tag)
		case o.result == fsapitest.Mismatch && a:
			t.Fatalf("Multi %s was refused (%v) yet applied", tag, o.err)
		}
		if a {
			applied[o.caller]++
			lastTag[o.caller] = tag // a caller's Multis run one after another
		}
		delete(stats, tag+"-a")
		delete(stats, tag+"-b")
	}
	t.Logf("Multis: %d applied, %d refused by the CAS, %d unknown", counts[fsapitest.OK], counts[fsapitest.Mismatch],
		counts[fsapitest.Unknown])
	if counts[fsapitest.OK] < minAcked {
		t.Fatalf("only %d Multis acknowledged", counts[fsapitest.OK])
	}
	total := 0
	for k := range len(r.clients) * multiCallersPerClient {
		name := fmt.Sprintf("counter-%d", k)
		h := mustOpen(t, ctx, reader, r.dir+"/"+name, nil)
		data, st, err := h.GetContentsAndStat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.ContentGeneration != uint64(1+applied[k]) || string(data) != lastTag[k] {
			t.Fatalf("%s at generation %d holding %q; %d Multis applied, the last %q: one was applied twice",
				name, st.ContentGeneration, data, applied[k], lastTag[k])
		}
		total += applied[k]
		delete(stats, name)
	}
	sh := mustOpen(t, ctx, reader, r.dir+"/shared", nil)
	if _, st, err := r.read(len(r.clients)*multiCallersPerClient, sh); err != nil || st.ContentGeneration != uint64(1+total) {
		t.Fatalf("shared at generation %d, want %d (%v)", st.ContentGeneration, 1+total, err)
	}
	delete(stats, "shared")
	if len(stats) != 0 {
		t.Fatalf("nodes no Multi made: %v", stats)
	}
	fsapitest.Check(t, fsapitest.Model(fsapitest.File{Generation: 1}), r.rec.Operations(), r.rec.Annotations()...)
}

// TestMultiAcrossMasterCrashes: eight callers on four clients run Multis
// while the master of an in-process cell (real TCP transport) is crashed
// and restarted.
func TestMultiAcrossMasterCrashes(t *testing.T) {
	dur := faultDuration(t, 5*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6d756c74))
	cell := mastertest.New(t, mastertest.Options{N: 5})
	cell.WaitMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	r := newMultiRun(t, ctx, func() *cellclient.Client { return dialCell(t, cell) }, 4)
	r.run(func() {
		faultLoop(t, rng, dur, r.annotated(crashMaster(t, cell, rng)))
		cell.WaitMaster(t)
	})
	r.check(ctx, dialCell(t, cell))
	cell.EnsureSameFSM(t)
}

// TestProcMultiAcrossMasterKills is the same against five haspd processes
// whose master is killed with SIGKILL and restarted.
func TestProcMultiAcrossMasterKills(t *testing.T) {
	dur := faultDuration(t, 5*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x706d756c))
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), dur+90*time.Second)
	defer cancel()
	r := newMultiRun(t, ctx, func() *cellclient.Client { return procDial(t, ctx, cell.Addrs(), time.Second) }, 4)
	r.run(func() {
		faultLoop(t, rng, dur, r.annotated(killMaster(t, cell, rng)))
		procMaster(t, cell, 30*time.Second)
	})
	r.check(ctx, procDial(t, ctx, cell.Addrs(), time.Second))
}
