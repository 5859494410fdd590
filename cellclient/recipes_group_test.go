package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

func memberIDs(ms []cellclient.Member) []string {
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

// nextView returns the next group view, failing on an error or timeout.
func nextView(t *testing.T, ch <-chan cellclient.GroupView) cellclient.GroupView {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok || v.Err != nil {
			t.Fatalf("group watch ended: %v", v.Err)
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no group view within 10s")
	}
	return cellclient.GroupView{}
}

// TestGroup: members join, update and leave; a watcher sees each change;
// a member whose session expires disappears; bad input fails clearly.
func TestGroup(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b, obs := dialCell(t, cell), dialCell(t, cell), dialCell(t, cell)
	victim := recipeDial(t, ctx, cell.Addrs(), 500*time.Millisecond)
	const name = "/ls/local/workers"
	ma, err := cellclient.NewGroup(a, name).Join(ctx, "a", []byte("10.0.0.1:80"))
	if err != nil {
		t.Fatal(err)
	}
	g := cellclient.NewGroup(obs, name)
	views, err := g.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := nextView(t, views); len(v.Members) != 1 || v.Members[0].ID != "a" || string(v.Members[0].Data) != "10.0.0.1:80" ||
		v.Members[0].Stat.EphemeralOwner != a.Session() {
		t.Fatalf("first view %+v", v)
	}
	mb, err := cellclient.NewGroup(b, name).Join(ctx, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := nextView(t, views); !slices.Equal(memberIDs(v.Members), []string{"a", "b"}) {
		t.Fatalf("after b joined: %v", memberIDs(v.Members))
	}
	if err := mb.Update(ctx, []byte("ready")); err != nil {
		t.Fatal(err)
	}
	if v := nextView(t, views); len(v.Members) != 2 || string(v.Members[1].Data) != "ready" {
		t.Fatalf("after b's update: %+v", v.Members)
	}
	if _, err := cellclient.NewGroup(obs, name).Join(ctx, "a", nil); !errors.Is(err, fsapi.ErrExist) {
		t.Fatalf("joining as a live member's id: %v", err)
	}
	if _, err := g.Join(ctx, "x/y", nil); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := g.Join(ctx, "", nil); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("empty id: %v", err)
	}
	if err := ma.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if v := nextView(t, views); !slices.Equal(memberIDs(v.Members), []string{"b"}) {
		t.Fatalf("after a left: %v", memberIDs(v.Members))
	}
	// The victim joins, then is cut off: its session expires and the
	// master deletes its member.
	if _, err := cellclient.NewGroup(victim, name).Join(ctx, "v", nil); err != nil {
		t.Fatal(err)
	}
	if v := nextView(t, views); !slices.Equal(memberIDs(v.Members), []string{"b", "v"}) {
		t.Fatalf("after v joined: %v", memberIDs(v.Members))
	}
	cutAt := time.Now()
	victim.CutOffForTest()
	if v := nextView(t, views); !slices.Equal(memberIDs(v.Members), []string{"b"}) {
		t.Fatalf("after v's session expired: %v", memberIDs(v.Members))
	}
	t.Logf("expired member gone %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	ms, err := g.Members(ctx)
	if err != nil || !slices.Equal(memberIDs(ms), []string{"b"}) {
		t.Fatalf("Members = %v, %v", memberIDs(ms), err)
	}
	if _, err := cellclient.NewGroup(obs, "/ls/local/nogroup").Watch(ctx); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("watching a group that does not exist: %v", err)
	}
	// (Waiting for it also spares the cleanup a Close to unreachable
	// replicas.)
	select {
	case <-victim.Done():
	case <-ctx.Done():
		t.Fatal("the victim never learned its session expired")
	}
}

// TestGroupFault: members join and leave at random while the master is
// crashed and restarted, and one member's session is cut off and expires.
// When the faults stop, the watcher's view and Members converge to the
// members that are live (joined, not left, session alive), and no view
// ever lists a member twice.
func TestGroupFault(t *testing.T) { runGroupFault(t, inprocTarget) }

// TestProcGroupKill is TestGroupFault on five haspd processes, with kill -9 of the master.
func TestProcGroupKill(t *testing.T) { runGroupFault(t, procTarget) }

func runGroupFault(t *testing.T, newTarget func(*testing.T) faultTarget) {
	dur := faultDuration(t, 8*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x67726f75))
	tg := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), dur+2*time.Minute)
	defer cancel()
	const name = "/ls/local/group"
	const members = 4
	var cs []*cellclient.Client
	for range members {
		cs = append(cs, recipeDial(t, ctx, tg.addrs, 0))
	}
	victim := recipeDial(t, ctx, tg.addrs, 500*time.Millisecond)
	if _, err := cellclient.NewGroup(victim, name).Join(ctx, "victim", nil); err != nil {
		t.Fatal(err)
	}
	obs := recipeDial(t, ctx, tg.addrs, 0)
	views, err := cellclient.NewGroup(obs, name).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // protects last
	var last []string
	viewsDone := make(chan struct{})
	go func() {
		defer close(viewsDone)
		for v := range views {
			if v.Err != nil {
				if ctx.Err() == nil {
					t.Errorf("group watch ended: %v", v.Err)
				}
				return
			}
			ids := memberIDs(v.Members)
			if len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Errorf("a view lists a member twice: %v", ids)
			}
			mu.Lock()
			last = ids
			mu.Unlock()
		}
	}()
	deadline := time.Now().Add(dur)
	live := make([]*cellclient.Membership, members)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wrng := rand.New(rand.NewPCG(seed, 2))
		for time.Now().Before(deadline) && !t.Failed() {
			time.Sleep(time.Duration(wrng.Int64N(int64(200 * time.Millisecond))))
			i := wrng.IntN(members)
			cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
			var err error
			if live[i] == nil {
				live[i], err = cellclient.NewGroup(cs[i], name).Join(cctx, fmt.Sprintf("m%d", i), []byte(fmt.Sprint(i)))
			} else {
				err = live[i].Leave(cctx)
				live[i] = nil
			}
			ccancel()
			if err != nil {
				t.Errorf("member %d: %v", i, err)
			}
		}
	}()
	cutAt := time.Now().Add(dur / 3)
	var crashes int
	go func() {
		time.Sleep(time.Until(cutAt))
		victim.CutOffForTest() // its member must disappear
	}()
	crashes = tg.crash(t, rng, done, deadline)
	waitDone(t, done, 2*time.Minute, "the membership changes")
	var want []string
	for i, m := range live {
		if m != nil {
			want = append(want, fmt.Sprintf("m%d", i))
		}
	}
	sort.Strings(want)
	t.Logf("%d %s; live at the end: %v", crashes, tg.what, want)
	converge := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(last)
		mu.Unlock()
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(converge) {
			t.Fatalf("the watcher's view %v did not converge to the live members %v (victim session: %v)",
				got, want, victim.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ms, err := cellclient.NewGroup(obs, name).Members(ctx)
	if err != nil || !slices.Equal(memberIDs(ms), want) {
		t.Fatalf("Members = %v, %v; want %v", memberIDs(ms), err, want)
	}
	for _, m := range ms {
		if !strings.HasPrefix(m.ID, "m") || string(m.Data) != m.ID[1:] {
			t.Fatalf("member %s carries %q", m.ID, m.Data)
		}
	}
	if victim.Err() == nil {
		t.Fatal("the victim's session did not expire")
	}
	cancel()
	<-viewsDone
}
