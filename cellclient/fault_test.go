package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/fsapi/fsapitest"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/lease/leasetest"
	"github.com/haspcell/hasp/master"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestFaultInmem runs the workload on five in-process replicas whose Raft
// runs on raft.InmemTransport, with every fault: crashes of the master, a
// follower, a minority and all replicas; leadership handed away and back;
// the master partitioned from the majority (alone, or with one follower);
// one-way partitions (the master cannot send; the master cannot hear); and
// the master's lease clock running slow (the others' fast) while it is
// partitioned away. Every replica's lease clock runs at a random rate
// within 1 ± ε throughout.
func TestFaultInmem(t *testing.T) {
	runCellFaults(t, true, 20*time.Second)
}

// TestFaultTCP runs the workload on five in-process replicas on the real
// TCP transport (what users run), with the crash faults and leadership
// bounces only.
func TestFaultTCP(t *testing.T) {
	runCellFaults(t, false, 20*time.Second)
}

// TestFaultLeadershipBounce runs the workload while the master hands the
// lead away and takes it back, again and again (and nothing else): the
// same replica leads term after term with calls of its earlier terms in
// flight, the case of bug table rows 42–44.
func TestFaultLeadershipBounce(t *testing.T) {
	runCellFaults(t, true, 20*time.Second, func(n *cellNemesis) {
		n.only = []cellFault{faultByName("bounce leadership")}
	})
}

func runCellFaults(t *testing.T, inmem bool, def time.Duration, tune ...func(*cellNemesis)) {
	dur := faultDuration(t, def)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6e656d65))
	n := newCellNemesis(t, rng, inmem)
	for _, f := range tune {
		f(n)
	}
	w := newWorkload(t, seed, n.cell.Addrs())
	w.run(dur, func(rec *fsapitest.Recorder, until time.Time) {
		n.rec = rec
		n.run(until)
	}, func() { n.cell.EnsureSameFSM(t) })
}

// replicaIndex maps mastertest's replica ids (r1, r2, ...) to indexes.
func replicaIndex(t *testing.T, id string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(id, "r"))
	if err != nil {
		t.Errorf("replica id %q", id)
	}
	return i - 1
}

// cellNemesis injects one fault at a time into an in-process cell, holds
// it, heals it, lets the cell settle, and so on. It runs on the test
// goroutine (mastertest may call t.Fatal).
type cellNemesis struct {
	t      *testing.T
	cell   *mastertest.Cell
	rec    *fsapitest.Recorder
	rng    *rand.Rand
	inmem  bool
	clocks []*leasetest.SkewedClock
	base   []float64 // each clock's usual rate
	// extra faults a test adds to cellFaults.
	extra []cellFault
	// only, if set, are the faults to inject instead of cellFaults.
	only []cellFault
}

type cellFault struct {
	name      string
	inmemOnly bool
	// run injects the fault, holds it for hold, heals it and describes
	// what it did.
	run func(n *cellNemesis, hold time.Duration) string
}

var cellFaults = []cellFault{
	{"crash master", false, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		n.crashFor(hold, m)
		return fmt.Sprintf("crash master r%d", m+1)
	}},
	{"crash follower", false, func(n *cellNemesis, hold time.Duration) string {
		f := n.other(n.cell.WaitMaster(n.t))
		n.crashFor(hold, f)
		return fmt.Sprintf("crash follower r%d", f+1)
	}},
	{"crash minority", false, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		f := n.other(m)
		n.crashFor(hold, m, f)
		return fmt.Sprintf("crash master r%d and follower r%d", m+1, f+1)
	}},
	{"crash all", false, func(n *cellNemesis, hold time.Duration) string {
		n.crashFor(hold, 0, 1, 2, 3, 4)
		return "crash every replica"
	}},
	{"bounce leadership", false, func(n *cellNemesis, hold time.Duration) string {
		// The master hands the lead to a follower and soon takes it back:
		// the same replica leads two terms with a short one between, while
		// calls of its first term are still in flight (bug table rows
		// 42–44).
		m := n.cell.WaitMaster(n.t)
		f := n.other(m)
		away := n.transfer(m, f)
		time.Sleep(hold / 4)
		cur := n.cell.WaitMaster(n.t)
		back := n.transfer(cur, m)
		return fmt.Sprintf("leadership r%d → r%d (%v), then r%d → r%d (%v)", m+1, f+1, away, cur+1, m+1, back)
	}},
	{"slow master clock", false, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		n.skew(m)
		defer n.unskew()
		if n.inmem {
			n.cell.Isolate(m)
			time.Sleep(hold)
			n.cell.Heal()
			return fmt.Sprintf("master r%d's lease clock slow (1-ε), others fast; master isolated", m+1)
		}
		n.crashFor(hold, m)
		return fmt.Sprintf("master r%d's lease clock slow (1-ε), others fast; master crashed", m+1)
	}},
	{"isolate master", true, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		n.cell.Isolate(m)
		time.Sleep(hold)
		n.cell.Heal()
		return fmt.Sprintf("isolate master r%d", m+1)
	}},
	{"master in minority", true, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		f := n.other(m)
		n.cell.Partition([]int{m, f})
		time.Sleep(hold)
		n.cell.Heal()
		return fmt.Sprintf("partition master r%d and r%d from the majority", m+1, f+1)
	}},
	{"master cannot send", true, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		for j := range n.cell.N() {
			if j != m {
				n.cell.PartitionOneWay(m, j)
			}
		}
		time.Sleep(hold)
		n.cell.Heal()
		return fmt.Sprintf("master r%d cannot send to the others", m+1)
	}},
	{"master cannot hear", true, func(n *cellNemesis, hold time.Duration) string {
		m := n.cell.WaitMaster(n.t)
		for j := range n.cell.N() {
			if j != m {
				n.cell.PartitionOneWay(j, m)
			}
		}
		time.Sleep(hold)
		n.cell.Heal()
		return fmt.Sprintf("the others cannot send to master r%d", m+1)
	}},
}

// run injects faults until the deadline, then heals the cell and waits for
// a master.
func (n *cellNemesis) run(deadline time.Time) {
	var faults []cellFault
	all := append(cellFaults[:len(cellFaults):len(cellFaults)], n.extra...)
	if n.only != nil {
		all = n.only
	}
	for _, f := range all {
		if n.inmem || !f.inmemOnly {
			faults = append(faults, f)
		}
	}
	for time.Now().Before(deadline) {
		time.Sleep(n.between(200*time.Millisecond, time.Second))
		f := faults[n.rng.IntN(len(faults))]
		hold := n.between(200*time.Millisecond, 1500*time.Millisecond)
		start, at := n.rec.Now(), time.Now()
		desc := f.run(n, hold)
		n.rec.Annotate("nemesis", desc, start, n.rec.Now())
		n.t.Logf("nemesis at %.3fs: %s (%v)", float64(start)/1e9, desc, time.Since(at).Round(time.Millisecond))
	}
	if n.inmem {
		n.cell.Heal()
	}
	n.cell.WaitMaster(n.t)
}

func (n *cellNemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)))
}

// other is a random replica other than i.
func (n *cellNemesis) other(i int) int {
	j := n.rng.IntN(n.cell.N() - 1)
	if j >= i {
		j++
	}
	return j
}

// faultByName is the fault of cellFaults called name.
func faultByName(name string) cellFault {
	for _, f := range cellFaults {
		if f.name == name {
			return f
		}
	}
	panic("no fault " + name)
}

// transfer asks replica from, the master, to hand the lead to replica to.
// It reports the outcome: a transfer may fail (the target is behind, or
// another election wins), which is part of the fault.
func (n *cellNemesis) transfer(from, to int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv := n.cell.Replica(from).Server()
	if srv == nil {
		return errors.New("crashed")
	}
	return srv.TransferLeadership(ctx, n.cell.Replica(to).ID)
}

// crashFor crashes the replicas at once, waits hold and restarts them.
func (n *cellNemesis) crashFor(hold time.Duration, ids ...int) {
	var wg sync.WaitGroup
	for _, i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.cell.Crash(i)
		}()
	}
	wg.Wait()
	time.Sleep(hold)
	for _, i := range ids {
		n.cell.Restart(i)
	}
}

// skew makes replica m's lease clock run as slow as ε allows and every
// other's as fast.
func (n *cellNemesis) skew(m int) {
	for i, c := range n.clocks {
		if i == m {
			c.SetRate(1 - lease.DefaultEpsilon)
		} else {
			c.SetRate(1 + lease.DefaultEpsilon)
		}
	}
}

func (n *cellNemesis) unskew() {
	for i, c := range n.clocks {
		c.SetRate(n.base[i])
	}
}

// newCellNemesis starts a five-replica cell (in-process Raft transport if
// inmem) whose replicas' clocks run at random rates within the lease's ε
// bound, waits for a master, and returns the nemesis that faults it.
func newCellNemesis(t *testing.T, rng *rand.Rand, inmem bool) *cellNemesis {
	t.Helper()
	n := &cellNemesis{t: t, rng: rng, inmem: inmem}
	for range 5 {
		rate := 1 + (2*rng.Float64()-1)*lease.DefaultEpsilon
		n.base = append(n.base, rate)
		n.clocks = append(n.clocks, leasetest.NewSkewedClock(rate))
	}
	n.cell = mastertest.New(t, mastertest.Options{N: 5, Inmem: inmem, Tune: func(cfg *master.Config) {
		cfg.Clock = n.clocks[replicaIndex(t, cfg.ID)]
	}})
	n.cell.WaitMaster(t)
	return n
}
