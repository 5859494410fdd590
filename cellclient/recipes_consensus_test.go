package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestConsensus: the first proposal wins for every proposer and reader;
// Wait returns it once made; bad names fail clearly.
func TestConsensus(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, obs := dialCell(t, cell), dialCell(t, cell), dialCell(t, cell)
	const name = "/ls/local/seed"
	if _, err := cellclient.NewConsensus(obs, name).Decided(ctx); !errors.Is(err, cellclient.ErrUndecided) {
		t.Fatalf("Decided before any proposal: %v", err)
	}
	waited := make(chan string, 1)
	go func() {
		v, err := cellclient.NewConsensus(obs, name).Wait(ctx)
		if err != nil {
			t.Error(err)
		}
		waited <- string(v)
	}()
	select {
	case v := <-waited:
		t.Fatalf("Wait returned %q before any proposal", v)
	case <-time.After(300 * time.Millisecond):
	}
	if v, err := cellclient.NewConsensus(a, name).Propose(ctx, []byte("42")); err != nil || string(v) != "42" {
		t.Fatalf("first proposal: %q %v", v, err)
	}
	if v, err := cellclient.NewConsensus(b, name).Propose(ctx, []byte("7")); err != nil || string(v) != "42" {
		t.Fatalf("second proposal: %q %v", v, err)
	}
	if v, err := cellclient.NewConsensus(obs, name).Decided(ctx); err != nil || string(v) != "42" {
		t.Fatalf("Decided: %q %v", v, err)
	}
	select {
	case v := <-waited:
		if v != "42" {
			t.Fatalf("Wait returned %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the first proposal")
	}
	if _, err := cellclient.NewConsensus(a, "/ls/local/no such").Propose(ctx, nil); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
}

// TestConsensusFault runs rounds of five concurrent proposers (each its own
// session, each proposing its own value) while the master is crashed and
// restarted. In every round all proposers, a reader that waited from the
// start and a reader that asks at the end decide the same value, and that
// value was proposed in that round.
func TestConsensusFault(t *testing.T) { runConsensusFault(t, inprocTarget) }

// TestProcConsensusKill is TestConsensusFault on five haspd processes, with kill -9 of the master.
func TestProcConsensusKill(t *testing.T) { runConsensusFault(t, procTarget) }

func runConsensusFault(t *testing.T, newTarget func(*testing.T) faultTarget) {
	dur := faultDuration(t, 8*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x636f6e73))
	tg := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	const proposers = 5
	var cs []*cellclient.Client
	for range proposers {
		cs = append(cs, recipeDial(t, ctx, tg.addrs, 0))
	}
	obs := recipeDial(t, ctx, tg.addrs, 0)
	deadline := time.Now().Add(dur)
	done := make(chan struct{})
	var rounds atomic.Int64
	go func() {
		defer close(done)
		for r := 0; time.Now().Before(deadline) && !t.Failed(); r++ {
			consensusRound(t, ctx, cs, obs, fmt.Sprintf("/ls/local/decide-%d", r), seed+uint64(r))
			rounds.Add(1)
		}
	}()
	crashes := tg.crash(t, rng, done, deadline)
	waitDone(t, done, 2*time.Minute, "the consensus rounds")
	t.Logf("%d rounds of %d proposers, %d %s", rounds.Load(), proposers, crashes, tg.what)
	if rounds.Load() == 0 {
		t.Fatal("no round completed")
	}
}

func consensusRound(t *testing.T, ctx context.Context, cs []*cellclient.Client, obs *cellclient.Client, name string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	proposed := map[string]bool{}
	decided := make([]string, len(cs))
	waited := make(chan string, 1)
	go func() {
		v, err := cellclient.NewConsensus(obs, name).Wait(rctx)
		if err != nil {
			t.Errorf("%s: wait: %v", name, err)
		}
		waited <- string(v)
	}()
	var wg sync.WaitGroup
	for i, c := range cs {
		v := fmt.Sprintf("%s-from-%d", name, i)
		proposed[v] = true
		delay := time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		wg.Go(func() {
			time.Sleep(delay)
			got, err := cellclient.NewConsensus(c, name).Propose(rctx, []byte(v))
			if err != nil {
				t.Errorf("%s: proposer %d: %v", name, i, err)
				return
			}
			decided[i] = string(got)
		})
	}
	wg.Wait()
	w := <-waited
	final, err := cellclient.NewConsensus(obs, name).Decided(rctx)
	if err != nil {
		t.Errorf("%s: decided: %v", name, err)
		return
	}
	if !proposed[string(final)] {
		t.Errorf("%s: decided %q, which nobody proposed", name, final)
	}
	for i, d := range decided {
		if d != "" && d != string(final) {
			t.Errorf("%s: proposer %d decided %q, the cell decided %q", name, i, d, final)
		}
	}
	if w != string(final) {
		t.Errorf("%s: the waiting reader decided %q, the cell decided %q", name, w, final)
	}
}
