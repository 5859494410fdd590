package cellclient_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/mastertest"
)

// dialFollower dials a client with follower reads on the given replicas.
func dialFollower(t *testing.T, addrs []string) *cellclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: addrs, FollowerReads: true, ClientName: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// followerCounts sums what the running replicas say they served as
// follower reads while not master, and answered Behind.
func followerCounts(cell *mastertest.Cell) (served, behind uint64) {
	for i := range cell.N() {
		if srv := cell.Replica(i).Server(); srv != nil {
			s, b := srv.FollowerReads()
			served, behind = served+s, behind+b
		}
	}
	return served, behind
}

// TestFollowerReadsReadYourWrites: a client with FollowerReads reads every
// write it made, right after making it, and its reads are served by
// followers; a default client's reads never go to one.
func TestFollowerReadsReadYourWrites(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	cell.WaitMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	plain := dialCell(t, cell)
	h0, err := plain.Open(ctx, "/ls/local/ryw", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("0")})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, _, err := h0.GetContentsAndStat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if served, behind := followerCounts(cell); served+behind != 0 {
		t.Fatalf("a default client's reads reached followers: served %d, behind %d", served, behind)
	}

	c := dialFollower(t, cell.Addrs())
	h, err := c.Open(ctx, "/ls/local/ryw", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 40; i++ {
		want := fmt.Sprint(i)
		st, err := h.SetContents(ctx, []byte(want), fsapi.AnyGeneration)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Token(); tok < st.ModifiedRevision {
			t.Fatalf("token %d below the write's revision %d", tok, st.ModifiedRevision)
		}
		data, rst, err := h.GetContentsAndStat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != want || rst.ModifiedRevision < st.ModifiedRevision {
			t.Fatalf("read after write %q (revision %d) = %q (revision %d)", want, st.ModifiedRevision, data, rst.ModifiedRevision)
		}
	}
	served, behind := followerCounts(cell)
	t.Logf("follower reads: %d served by followers, %d sent to the master", served, behind)
	if served == 0 {
		t.Fatalf("no read was served by a follower (behind %d)", behind)
	}
	if st := c.CacheStats(); st.Hits+st.Misses != 0 {
		t.Fatalf("a FollowerReads client used the cache: %+v", st)
	}
}

// TestFollowerReadStaleReplica shows what the mode does and does not
// promise, with a follower f cut off from the cell:
//
//   - f still answers a client whose token it has applied, from its old
//     state: another client's newer write is missing (not linearizable);
//   - once the client has seen a newer revision (its own write), f cannot
//     answer it, and the read goes to the master: it sees its write;
//   - a client whose session f does not know is sent to the master, not
//     told its session expired.
func TestFollowerReadStaleReplica(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 5, Inmem: true})
	m := cell.WaitMaster(t)
	f := (m + 1) % cell.N()
	fa := cell.Replica(f).Addr
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := dialCell(t, cell)
	ha, err := a.Open(ctx, "/ls/local/x", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	b := dialFollower(t, cell.Addrs())
	b.PinReadReplicaForTest(fa)
	hb, err := b.Open(ctx, "/ls/local/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := b.Open(ctx, "/ls/local/b", &cellclient.OpenOptions{Create: fsapi.CreateMust})
	if err != nil {
		t.Fatal(err)
	}
	cell.WaitApplied(t, 10*time.Second)
	fsrv := cell.Replica(f).Server()

	cell.Isolate(f)
	defer cell.Heal()
	if _, err := ha.SetContents(ctx, []byte("v2"), fsapi.AnyGeneration); err != nil {
		t.Fatal(err)
	}
	served0, _ := fsrv.FollowerReads()
	data, _, err := hb.GetContentsAndStat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if served, _ := fsrv.FollowerReads(); string(data) != "v1" || served != served0+1 {
		t.Fatalf("isolated follower: read %q, served %d→%d; want its old state v1, served by it", data, served0, served)
	}

	st, err := mine.SetContents(ctx, []byte("mine"), fsapi.AnyGeneration)
	if err != nil {
		t.Fatal(err)
	}
	_, behind0 := fsrv.FollowerReads()
	start := time.Now()
	data, rst, err := hb.GetContentsAndStat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, behind := fsrv.FollowerReads(); string(data) != "v2" || behind != behind0+1 || rst.ModifiedRevision >= st.ModifiedRevision {
		t.Fatalf("after own write at %d: read %q (modified %d), behind %d→%d; want v2 from the master", st.ModifiedRevision,
			data, rst.ModifiedRevision, behind0, behind)
	}
	t.Logf("a read the isolated follower could not serve took %v (its wait, then the master)", time.Since(start).Round(time.Millisecond))
	if b.Token() < st.ModifiedRevision {
		t.Fatalf("token %d below own write %d", b.Token(), st.ModifiedRevision)
	}

	// A session created while f is cut off.
	late := dialFollower(t, cell.Addrs())
	late.PinReadReplicaForTest(fa)
	hl, err := late.Open(ctx, "/ls/local/x", nil)
	if err != nil {
		t.Fatalf("open by a session the follower does not know: %v", err)
	}
	if data, _, err := hl.GetContentsAndStat(ctx); err != nil || string(data) != "v2" {
		t.Fatalf("read by a session the follower does not know: %q %v", data, err)
	}
}

// rawCall makes one call on its own connection, as a client in another
// language would.
func rawCall(t *testing.T, addr string, typ wire.MsgType, req, resp any) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte{wire.ConnClient}); err != nil {
		t.Fatal(err)
	}
	sess, err := yamux.Client(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wire.WriteFrame(st, typ, req); err != nil {
		t.Fatal(err)
	}
	rt, body, err := wire.ReadFrame(st, wire.MaxFrame)
	if err != nil || rt != typ {
		t.Fatalf("reply type %v, %v", rt, err)
	}
	if err := wire.Decode(body, resp); err != nil {
		t.Fatal(err)
	}
}

// TestFollowerReadWire checks a replica's answers to follower reads on the
// wire: what it serves, what it refuses, and how fast.
func TestFollowerReadWire(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	m := cell.WaitMaster(t)
	f := (m + 1) % cell.N()
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Open(ctx, "/ls/local/w", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("data")}); err != nil {
		t.Fatal(err)
	}
	cell.WaitApplied(t, 10*time.Second)
	applied := cell.Replica(f).Server().FSM().AppliedIndex()
	hdr := wire.Header{Session: c.Session()}
	ref := wire.NodeRef{Path: "/w"}
	get := func(addr string, h wire.Header, ro wire.ReadOptions, ref wire.NodeRef) (wire.GetContentsResponse, time.Duration) {
		var resp wire.GetContentsResponse
		start := time.Now()
		rawCall(t, addr, wire.MsgGetContents, &wire.GetContentsRequest{Header: h, ReadOptions: ro, NodeRef: ref}, &resp)
		return resp, time.Since(start)
	}
	fa := cell.Replica(f).Addr

	resp, _ := get(fa, hdr, wire.ReadOptions{Follower: true, MinRevision: applied}, ref)
	if resp.Err != nil || string(resp.Data) != "data" || resp.Revision < applied || resp.Cacheable || resp.Epoch != 0 {
		t.Fatalf("follower read: %+v; want the data at revision ≥ %d, not cacheable, epoch 0", resp, applied)
	}
	resp, _ = get(fa, hdr, wire.ReadOptions{}, ref)
	if resp.Err == nil || resp.Err.Code != wire.CodeNotMaster {
		t.Fatalf("default read at a follower: %+v; want NotMaster", resp.Err)
	}
	resp, took := get(fa, hdr, wire.ReadOptions{Follower: true, MinRevision: applied + 1_000_000}, ref)
	if resp.Err == nil || resp.Err.Code != wire.CodeBehind || took > 3*time.Second {
		t.Fatalf("token far ahead at a follower: %+v after %v; want Behind after about 100 ms", resp.Err, took)
	}
	t.Logf("Behind at a follower after %v", took.Round(time.Millisecond))
	resp, _ = get(fa, wire.Header{Session: 1 << 40}, wire.ReadOptions{Follower: true}, ref)
	if resp.Err == nil || resp.Err.Code != wire.CodeBehind {
		t.Fatalf("unknown session at a follower: %+v; want Behind, never SessionExpired", resp.Err)
	}
	resp, _ = get(fa, hdr, wire.ReadOptions{Follower: true}, wire.NodeRef{Path: "/w", Sequencer: []byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 1,
		0, 0, 0, 0, 0, 0, 0, 1, '/', 'w'}})
	if resp.Err == nil || resp.Err.Code != wire.CodeBehind {
		t.Fatalf("sequencer at a follower: %+v; want Behind (the master checks sequencers)", resp.Err)
	}
	resp, _ = get(fa, hdr, wire.ReadOptions{Follower: true}, wire.NodeRef{Path: "/nope"})
	if resp.Err == nil || resp.Err.Code != wire.CodeNotExist || resp.Revision < applied {
		t.Fatalf("absent node at a follower: %+v; want NotExist with its revision", resp)
	}
	resp, _ = get(fa, hdr, wire.ReadOptions{Follower: true}, wire.NodeRef{Path: "bad"})
	if resp.Err == nil || resp.Err.Code != wire.CodeBadName {
		t.Fatalf("bad path at a follower: %+v; want BadName", resp.Err)
	}
	var oresp wire.OpenResponse
	rawCall(t, fa, wire.MsgOpen, &wire.OpenRequest{Header: hdr, WriteHeader: wire.WriteHeader{Seq: 1000, AckBelow: 1},
		ReadOptions: wire.ReadOptions{Follower: true}, Path: "/new", Create: fsapi.CreateMust}, &oresp)
	if oresp.Err == nil || oresp.Err.Code != wire.CodeNotMaster {
		t.Fatalf("create at a follower with Follower set: %+v; want NotMaster (writes go to the master)", oresp.Err)
	}
	// The master honours a token too (after a ReadIndex round), and
	// serves a follower read as a master read. On a loaded machine the
	// master may change meanwhile: ask whichever replica is master now,
	// again after NotMaster, and judge the epoch only if it still is
	// master after the call.
	// atMaster sends a read to the master; MinRevision 0 means "just
	// ahead of the master's state", returned as tok.
	atMaster := func(ro wire.ReadOptions) (resp wire.GetContentsResponse, took time.Duration, m int, tok uint64) {
		for {
			m = cell.WaitMaster(t)
			r := ro
			if r.MinRevision == 0 {
				r.MinRevision = cell.Replica(m).Server().FSM().AppliedIndex() + 2
			}
			resp, took = get(cell.Replica(m).Addr, hdr, r, ref)
			if resp.Err == nil || resp.Err.Code != wire.CodeNotMaster || ctx.Err() != nil {
				return resp, took, m, r.MinRevision
			}
		}
	}
	resp, took, _, _ = atMaster(wire.ReadOptions{MinRevision: applied + 1_000_000})
	if resp.Err == nil || resp.Err.Code != wire.CodeBehind || took > 5*time.Second {
		t.Fatalf("token far ahead at the master: %+v after %v; want Behind", resp.Err, took)
	}
	// A token a little ahead of the master's state (the master commits a
	// no-op every lease third): it answers once it has applied it.
	resp, _, _, tok := atMaster(wire.ReadOptions{})
	if resp.Err != nil || string(resp.Data) != "data" || resp.Revision < tok {
		t.Fatalf("token just ahead at the master: %+v; want the data at revision ≥ %d", resp, tok)
	}
	resp, _, m, _ = atMaster(wire.ReadOptions{Follower: true, MinRevision: applied})
	if resp.Err != nil || string(resp.Data) != "data" || (resp.Epoch == 0 && cell.Replica(m).Server().IsMaster()) {
		t.Fatalf("follower read at the master: %+v; want a master answer", resp)
	}
}
