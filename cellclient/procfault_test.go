package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/fsapitest"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/master/mastertest"
)

// procPause is how long the pause faults stop the master: far longer than
// its lease (heartbeat 300 ms), so the others elect a new master meanwhile.
const procPause = 3 * time.Second

// TestProcFault runs the workload against five real haspd processes while
// a nemesis kills the master or a follower with SIGKILL (and restarts it),
// pauses the master with SIGSTOP for longer than its lease and then resumes
// it, or pauses it for 150 ms–1.8 s: around one lease length (the
// boundary), and long enough for a new master to acknowledge writes while
// the sticky workers' calls wait at the paused one (before their
// connection's keepalive gives up on it, after 2–3 s). The paused
// master must never answer a stale read nor acknowledge a write that is
// later lost: porcupine checks both.
func TestProcFault(t *testing.T) {
	dur := faultDuration(t, 20*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x70726f63))
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	w := newWorkload(t, seed, cell.Addrs())
	w.run(dur, func(rec *fsapitest.Recorder, until time.Time) {
		procNemesis(t, cell, rng, rec, until)
	}, func() { procCaughtUp(t, cell, 30*time.Second) })
}

// procNemesis injects one process fault at a time until the deadline,
// and returns with every replica running and a master elected.
func procNemesis(t *testing.T, cell *mastertest.ProcCell, rng *rand.Rand, rec *fsapitest.Recorder, until time.Time) {
	for time.Now().Before(until) {
		time.Sleep(between(rng, 300*time.Millisecond, time.Second))
		m := procMaster(t, cell, 30*time.Second)
		start, at := rec.Now(), time.Now()
		var desc string
		switch rng.IntN(4) {
		case 0:
			cell.Kill(m)
			time.Sleep(between(rng, 200*time.Millisecond, 1500*time.Millisecond))
			cell.Restart(m)
			desc = fmt.Sprintf("kill -9 master %s", cell.ID(m))
		case 1:
			f := (m + 1 + rng.IntN(cell.N()-1)) % cell.N()
			cell.Kill(f)
			time.Sleep(between(rng, 200*time.Millisecond, 1500*time.Millisecond))
			cell.Restart(f)
			desc = fmt.Sprintf("kill -9 follower %s", cell.ID(f))
		case 2:
			cell.Stop(m)
			time.Sleep(procPause)
			cell.Cont(m)
			desc = fmt.Sprintf("SIGSTOP master %s for %v", cell.ID(m), procPause)
		case 3:
			d := between(rng, 150*time.Millisecond, 1800*time.Millisecond)
			cell.Stop(m)
			time.Sleep(d)
			cell.Cont(m)
			desc = fmt.Sprintf("SIGSTOP master %s for %v", cell.ID(m), d.Round(time.Millisecond))
		}
		rec.Annotate("nemesis", desc, start, rec.Now())
		t.Logf("nemesis at %.3fs: %s (%v)", float64(start)/1e9, desc, time.Since(at).Round(time.Millisecond))
	}
	procMaster(t, cell, 30*time.Second)
}

// TestProcPausedMasterNoStaleRead pauses the master (SIGSTOP) past its
// lease while calls wait at it, has another client write a new value
// through the new master, and checks what the old master answers once it
// resumes:
//
//   - a read sent to the paused master after the new value was
//     acknowledged (it waits there, on a client that never gives up on a
//     replica within a call) must not return the old value;
//   - a read through a client that knows only the old master's address,
//     made right after SIGCONT, may be redirected or fail, but must not
//     return the old value;
//   - the read and the write that waited there since before the new write
//     must be linearizable, the write applied at most once (porcupine).
//
// Iterations alternate a 3 s pause with one that ends 200 ms after the new
// write was acknowledged (about 1.2 s, still far past the 300 ms heartbeat):
// the client's yamux keepalive gives up on a frozen connection after 2–3 s,
// failing the calls that wait there, so only the shorter pause lets the
// first kind of read reach the resumed master.
func TestProcPausedMasterNoStaleRead(t *testing.T) {
	if testing.Short() {
		t.Skip("process fault test skipped under -short")
	}
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	rec := fsapitest.NewRecorder()
	name := workloadFiles[0]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	writer := procDial(t, ctx, cell.Addrs(), time.Second)
	if _, err := writer.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust}); err != nil {
		t.Fatal(err)
	}
	const (
		writerID = iota
		waiterID
		pendingWriterID
		pinnedID
		finalID
	)
	// Each iteration sends stalePeek reads of each kind at once: on resume
	// the old master's Raft learns of the new term within a millisecond
	// or so, and each read is one more chance to be served before that.
	const stalePeek = 8
	var mu sync.Mutex
	answered := map[string]int{}
	seen := map[int]map[string]int{} // iteration → "what: answer" → count
	check := func(iter int, what, data string, err error, oldVal string) {
		mu.Lock()
		defer mu.Unlock()
		if seen[iter] == nil {
			seen[iter] = map[string]int{}
		}
		switch {
		case err != nil:
			seen[iter][fmt.Sprintf("%s: error %v", what, err)]++
		case data == oldVal:
			t.Errorf("iteration %d: STALE READ: %s returned %q after a newer value was acknowledged", iter, what, data)
		default:
			answered[what]++
			seen[iter][fmt.Sprintf("%s: %q", what, data)]++
		}
	}
	// slow logs a call that took much longer than the pause.
	slow := func(iter int, what string, start time.Time, data string, err error) {
		if d := time.Since(start); d > procPause+2*time.Second {
			t.Logf("iteration %d: %s took %v: %q, %v", iter, what, d.Round(time.Millisecond), data, err)
		}
	}
	for iter := range 8 {
		m := procMaster(t, cell, 30*time.Second)
		old := cell.Addr(m)
		oldVal, newVal := fmt.Sprintf("old-%d", iter), fmt.Sprintf("new-%d", iter)
		// Clients that know only the master's address: one that waits long
		// at one replica, one that gives up on a replica after 1 s.
		// These two know only the old master and read from it, never from
		// a cache: with caching on, the new master would (rightly) hold its
		// writes until their sessions expired, since they could serve
		// cached reads and cannot hear its invalidations.
		waiter := procDialNoCache(t, ctx, []string{old}, 15*time.Second)
		pinned := procDialNoCache(t, ctx, []string{old}, time.Second)
		hw, hWaiter, hPinned := procOpen(t, ctx, writer, name), procOpen(t, ctx, waiter, name), procOpen(t, ctx, pinned, name)
		recWrite(rec, writerID, hw, oldVal, 10*time.Second)
		recRead(rec, pinnedID, hPinned, 5*time.Second) // both now talk to the master
		recRead(rec, waiterID, hWaiter, 5*time.Second)

		cell.Stop(m)
		stopped := time.Now()
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { // a read that waits at the paused master
			defer wg.Done()
			start := time.Now()
			data, err := recRead(rec, waiterID, hWaiter, 20*time.Second)
			slow(iter, "read waiting since the pause", start, data, err)
		}()
		go func() { // a write that waits there
			defer wg.Done()
			start := time.Now()
			_, err := recWrite(rec, pendingWriterID, hWaiter, fmt.Sprintf("pending-%d", iter), 20*time.Second)
			slow(iter, "write waiting since the pause", start, "", err)
		}()
		if _, err := recWrite(rec, writerID, hw, newVal, 20*time.Second); err != nil {
			t.Fatalf("iteration %d: write through the new master: %v", iter, err)
		}
		acked := time.Since(stopped)
		wg.Add(stalePeek - 1)
		for range stalePeek { // reads that reach the paused master after that
			go func() {
				defer wg.Done()
				start := time.Now()
				data, err := recRead(rec, waiterID, hWaiter, 20*time.Second)
				check(iter, "read sent to the paused master", data, err, oldVal)
				slow(iter, "read sent to the paused master", start, data, err)
			}()
		}
		pause := procPause
		if iter%2 == 1 {
			pause = acked + 200*time.Millisecond
		}
		time.Sleep(time.Until(stopped.Add(pause)))
		cell.Cont(m)
		t.Logf("iteration %d: %s paused for %v; %q acknowledged by the new master after %v",
			iter, cell.ID(m), pause.Round(time.Millisecond), newVal, acked.Round(time.Millisecond))
		wg.Add(stalePeek)
		for range stalePeek {
			go func() {
				defer wg.Done()
				start := time.Now()
				data, err := recRead(rec, pinnedID, hPinned, 10*time.Second)
				check(iter, "read pinned to the resumed master", data, err, oldVal)
				slow(iter, "read pinned to the resumed master", start, data, err)
			}()
		}
		t0 := time.Now()
		wg.Wait()
		t1 := time.Now()
		waiter.Close()
		t2 := time.Now()
		pinned.Close()
		t.Logf("iteration %d: calls ended %v after SIGCONT; closes took %v and %v", iter, t1.Sub(t0).Round(time.Millisecond),
			t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
		mu.Lock()
		var answers []string
		for a, n := range seen[iter] {
			answers = append(answers, fmt.Sprintf("%s ×%d", a, n))
		}
		mu.Unlock()
		sort.Strings(answers)
		t.Logf("iteration %d: %v in all; %s", iter, time.Since(stopped).Round(time.Millisecond), strings.Join(answers, "; "))
	}
	for _, what := range []string{"read sent to the paused master", "read pinned to the resumed master"} {
		if answered[what] == 0 {
			t.Errorf("no %s succeeded: the test proved nothing", what)
		}
	}
	final := procDial(t, ctx, cell.Addrs(), time.Second)
	h := procOpen(t, ctx, final, name)
	for {
		if _, err := recRead(rec, finalID, h, 5*time.Second); err == nil || ctx.Err() != nil {
			break
		}
	}
	fsapitest.Check(t, fsapitest.Model(workloadInitial), rec.Operations())
}

func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

func procDial(t *testing.T, ctx context.Context, addrs []string, attempt time.Duration) *cellclient.Client {
	t.Helper()
	return procDialConfig(t, ctx, cellclient.Config{Addrs: addrs, AttemptTimeout: attempt})
}

// procDialNoCache is procDial with the client cache off.
func procDialNoCache(t *testing.T, ctx context.Context, addrs []string, attempt time.Duration) *cellclient.Client {
	t.Helper()
	return procDialConfig(t, ctx, cellclient.Config{Addrs: addrs, AttemptTimeout: attempt, DisableCache: true})
}

func procDialConfig(t *testing.T, ctx context.Context, cfg cellclient.Config) *cellclient.Client {
	t.Helper()
	addrs := cfg.Addrs
	cfg.ClientName = t.Name()
	c, err := cellclient.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %v: %v", addrs, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func procOpen(t *testing.T, ctx context.Context, c *cellclient.Client, name string) *cellclient.Handle {
	t.Helper()
	h, err := c.Open(ctx, name, nil)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return h
}

// recRead reads h into rec and returns the contents.
func recRead(rec *fsapitest.Recorder, client int, h *cellclient.Handle, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := rec.Begin(client, fsapitest.Input{Kind: fsapitest.Read, Path: h.Name()})
	data, st, err := h.GetContentsAndStat(ctx)
	call.End(fsapitest.Output{Data: string(data), Generation: st.ContentGeneration}, err)
	return string(data), err
}

// recWrite writes value to h (unconditionally) into rec.
func recWrite(rec *fsapitest.Recorder, client int, h *cellclient.Handle, value string, timeout time.Duration) (fsapi.Stat, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := rec.Begin(client, fsapitest.Input{Kind: fsapitest.Write, Path: h.Name(), Data: value})
	st, err := h.SetContents(ctx, []byte(value), fsapi.AnyGeneration)
	call.End(fsapitest.Output{Generation: st.ContentGeneration}, err)
	return st, err
}

// procStatuses asks every replica about itself (nil: no answer in 1 s).
func procStatuses(cell *mastertest.ProcCell) []*cellclient.ReplicaStatus {
	out := make([]*cellclient.ReplicaStatus, cell.N())
	var wg sync.WaitGroup
	for i, addr := range cell.Addrs() {
		if !cell.Alive(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if st, err := cellclient.QueryStatus(ctx, addr, time.Second); err == nil {
				out[i] = st
			}
		}()
	}
	wg.Wait()
	return out
}

// procMaster waits for a replica that says it is master (the one in the
// highest term, should two briefly say so) and returns its index.
func procMaster(t *testing.T, cell *mastertest.ProcCell, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		best := -1
		sts := procStatuses(cell)
		for i, st := range sts {
			if st != nil && st.State == "master" && (best < 0 || st.Term > sts[best].Term) {
				best = i
			}
		}
		if best >= 0 {
			return best
		}
		if time.Now().After(deadline) {
			t.Fatalf("no master within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procCaughtUp waits until every replica has committed what the master had
// committed when it was called: restarted and resumed replicas rejoined.
func procCaughtUp(t *testing.T, cell *mastertest.ProcCell, timeout time.Duration) {
	t.Helper()
	m := procMaster(t, cell, timeout)
	var target uint64
	if st := procStatuses(cell)[m]; st != nil {
		target = st.CommitIndex
	}
	deadline := time.Now().Add(timeout)
	for {
		behind := ""
		for i, st := range procStatuses(cell) {
			if st == nil || st.CommitIndex < target || st.AppliedIndex == 0 {
				behind += " " + cell.ID(i)
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas%s did not reach commit index %d within %v", behind, target, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProcRestartKeepsLeaseTiming restarts every replica the documented
// way, with only --dir ("the rest is stored in DATA"), and checks that the
// master lease still fits the heartbeat timeout the cell was created with.
//
// The master lease is sound only if every follower's heartbeat timeout is
// at least the master's: L = HeartbeatTimeout·(1−ε) − δ is how long the
// master may serve reads after a majority last heard from it. haspd does
// not keep --heartbeat-timeout in --dir, so a replica restarted with only
// --dir runs with the default (300 ms). In a cell created with 150 ms and
// restarted one replica at a time, a restarted master then holds a
// ~280 ms lease while 150 ms followers may elect another master after
// 150 ms: a paused master could serve stale reads for over 100 ms.
func TestProcRestartKeepsLeaseTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped under -short")
	}
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 3, Heartbeat: 150 * time.Millisecond, RestartDirOnly: true})
	procMaster(t, cell, 30*time.Second)
	cell.KillAll()
	for i := range cell.N() {
		cell.Restart(i)
	}
	m := procMaster(t, cell, 30*time.Second)
	hb := cell.Options().Heartbeat
	longest := time.Duration(0)
	for range 50 {
		if st := procStatuses(cell)[m]; st != nil {
			longest = max(longest, time.Duration(st.LeaseRemainingMillis)*time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if longest == 0 {
		t.Fatalf("master %s never reported a lease", cell.ID(m))
	}
	if want := lease.MasterLength(hb, lease.DefaultEpsilon, 0); longest > want {
		t.Errorf("after a restart with only --dir, master %s holds a %v lease; the cell was created with --heartbeat-timeout %v, "+
			"whose lease is at most %v: the heartbeat timeout was not kept in --dir", cell.ID(m), longest, hb, want)
	}
}

// TestProcDeposedMasterKeepsSessions: the master is paused (SIGSTOP) for
// longer than a session lease, with clients' KeepAlives held there, and
// another replica takes over. When the old master resumes it still
// believes it leads for a moment, and its lease table says every session
// ran out while it slept. It must not answer "session expired" from that
// table (it once did, ending sessions the new master kept alive): only an
// expiry committed through Raft may end a session. So every session that
// a client sees end must have a committed expiry in some replica's log. (A
// client that reaches the new master too late is expired legitimately: it
// waited on the paused master for up to its attempt timeout, which is
// long here so that KeepAlives are held across the pause; it is replaced
// by a new client.) Three rounds of four clients; with the old behaviour
// about half of two-round runs failed.
func TestProcDeposedMasterKeepsSessions(t *testing.T) {
	const sessionLease = 3 * time.Second
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 3, SessionLease: sessionLease})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func() *cellclient.Client {
		// A long attempt timeout keeps each KeepAlive waiting at the paused
		// master until it resumes; a long grace period keeps the sessions
		// alive on the client side meanwhile.
		return procDialConfig(t, ctx, cellclient.Config{Addrs: cell.Addrs(),
			AttemptTimeout: 10 * time.Second, GracePeriod: 30 * time.Second})
	}
	// When each client saw its session end.
	var endMu sync.Mutex
	endAt := map[*cellclient.Client]time.Time{}
	watchEnd := func(c *cellclient.Client) *cellclient.Client {
		go func() {
			<-c.Done()
			endMu.Lock()
			endAt[c] = time.Now()
			endMu.Unlock()
		}()
		return c
	}
	clients := []*cellclient.Client{watchEnd(dial()), watchEnd(dial()), watchEnd(dial()), watchEnd(dial())}
	// expiryCommittedBy says whether a master logged the session's expiry
	// (which it does once the expiry committed) no later than at: a client
	// told "expired" by a deposed master stops its KeepAlives, and the real
	// master then expires it too, but only after the client saw it end.
	// The log line comes after the commit returns to the expiring
	// goroutine, while the client may hear of the applied expiry first: a
	// run under -race saw it 35 ms earlier, so 100 ms of slack. (More would
	// hide the bug: the real master's expiry of a session held at the
	// paused master falls close to the moment that master resumes.)
	expiryCommittedBy := func(session uint64, at time.Time) bool {
		pat := regexp.MustCompile(`time=(\S+) level=INFO msg="session expired" .*session=` + strconv.FormatUint(session, 10) + `\b`)
		for i := range cell.N() {
			for _, m := range pat.FindAllStringSubmatch(cell.Log(i), -1) {
				if lt, err := time.Parse(time.RFC3339Nano, m[1]); err == nil && !lt.After(at.Add(100*time.Millisecond)) {
					return true
				}
			}
		}
		return false
	}
	check := func(round, i int, c *cellclient.Client, err error) {
		if !errors.Is(err, fsapi.ErrSessionExpired) && !errors.Is(c.Err(), fsapi.ErrSessionExpired) {
			if err != nil {
				t.Fatalf("round %d: client %d (session %d): %v", round, i, c.Session(), err)
			}
			return
		}
		// The session ended: allow it only if its expiry had committed.
		<-c.Done()
		time.Sleep(50 * time.Millisecond) // endAt is set
		endMu.Lock()
		at := endAt[c]
		endMu.Unlock()
		if !expiryCommittedBy(c.Session(), at) {
			t.Fatalf("round %d: client %d's session %d ended at %s (%v, %v) before any expiry committed: a deposed master called it expired",
				round, i, c.Session(), at.Format(time.RFC3339Nano), err, c.Err())
		}
		t.Logf("round %d: client %d's session %d expired legitimately (it reached the new master late); a new client takes its place", round, i, c.Session())
		clients[i] = watchEnd(dial())
	}
	for round := range 3 {
		m := procMaster(t, cell, 30*time.Second)
		time.Sleep(700 * time.Millisecond) // KeepAlives settle at m
		cell.Stop(m)
		time.Sleep(sessionLease + 500*time.Millisecond)
		cell.Cont(m)
		for i, c := range clients {
			name := fmt.Sprintf("/ls/local/deposed-%d", i)
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			h, err := c.Open(wctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMay})
			if err == nil {
				_, err = h.SetContents(wctx, []byte(fmt.Sprint(round)), 0)
			}
			wcancel()
			check(round, i, c, err)
		}
		time.Sleep(sessionLease) // the resumed master's held KeepAlives have all answered
		for i, c := range clients {
			check(round, i, c, nil)
		}
	}
}
