package fsm

import (
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"
)

// testSeed returns HASP_SEED if set, else a fresh seed, and logs it.
func testSeed(t testing.TB) int64 {
	seed := time.Now().UnixNano()
	if s := os.Getenv("HASP_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("HASP_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with HASP_SEED=%d)", seed, seed)
	return seed
}

// cmdGen generates a random but plausible command log: a few sessions,
// paths from a small alphabet so that commands collide, retries, acks,
// stale handles and CAS.
type cmdGen struct {
	r        *rand.Rand
	index    uint64 // index the next command will have
	sessions []uint64
	seqs     map[uint64]uint64
}

func newCmdGen(seed int64, firstIndex uint64) *cmdGen {
	return &cmdGen{r: rand.New(rand.NewSource(seed)), index: firstIndex, seqs: map[uint64]uint64{}}
}

func (g *cmdGen) next() any {
	defer func() { g.index++ }()
	switch p := g.r.Intn(100); {
	case p < 8 || len(g.sessions) == 0:
		g.sessions = append(g.sessions, g.index)
		return &CreateSession{Time: int64(g.index) * 1000, LeaseMillis: 12000, ClientName: "c" + strconv.Itoa(p)}
	case p < 14:
		return g.closeSession()
	case p < 50:
		return g.open()
	case p < 75:
		return &SetContents{Meta: g.meta(), Path: g.path(), Instance: g.small(), Data: g.data(), IfGeneration: g.small()}
	case p < 88:
		return &Delete{Meta: g.meta(), Path: g.path(), Instance: g.small()}
	case p < 89:
		return &Noop{Time: g.now()}
	case p < 93:
		return g.multi()
	}
	return g.lockCmd()
}

// multi is a Multi of 1 to 4 ops of every kind on the same small alphabet
// of paths, so that ops depend on each other and often fail part-way.
func (g *cmdGen) multi() any {
	m := &Multi{Meta: g.meta()}
	for range 1 + g.r.Intn(4) {
		op := MultiOp{Kind: uint8(1 + g.r.Intn(4)), Path: g.path(), Generation: g.small()}
		switch op.Kind {
		case MultiCreate:
			op.Directory, op.Ephemeral, op.Sequential = g.r.Intn(2) == 0, g.r.Intn(3) == 0, g.r.Intn(5) == 0
			op.Generation = 0
			if !op.Directory {
				op.Data = g.data()
			}
		case MultiSet:
			op.Data = g.data()
		}
		m.Ops = append(m.Ops, op)
	}
	return m
}

// now is the leader's clock for the next command: 1 ms per command, so
// that generated lock-delays (0 to 20 ms) end within the log.
func (g *cmdGen) now() int64 { return int64(g.index) * int64(time.Millisecond) }

// lockCmd is an Acquire, Release, CancelWait or LockTick, on the same
// small alphabet of paths, with handles 1 to 3.
func (g *cmdGen) lockCmd() any {
	switch p := g.r.Intn(10); {
	case p < 5:
		a := &Acquire{Meta: g.meta(), Path: g.path(), Instance: g.lockInstance(), Handle: 1 + uint64(g.r.Intn(3)),
			Mode: uint8(1 + g.r.Intn(2)), LockDelayMillis: int64(g.r.Intn(21)), Wait: g.r.Intn(2) == 0}
		switch g.r.Intn(30) {
		case 0:
			a.Mode = 3
		case 1:
			a.LockDelayMillis = 60001
		case 2:
			a.LockDelayMillis = -1
		}
		return a
	case p < 8:
		return &Release{Meta: g.meta(), Path: g.path(), Instance: g.lockInstance(), Handle: 1 + uint64(g.r.Intn(3))}
	case p < 9:
		return &CancelWait{Meta: g.meta(), Path: g.path(), Waiter: uint64(g.r.Intn(40))}
	}
	return &LockTick{Time: g.now() + int64(g.r.Intn(5))*int64(time.Millisecond)}
}

func (g *cmdGen) closeSession() any {
	i := g.r.Intn(len(g.sessions))
	c := &CloseSession{Meta: g.metaFor(g.sessions[i]), Expired: g.r.Intn(2) == 0}
	g.sessions = append(g.sessions[:i], g.sessions[i+1:]...)
	return c
}

func (g *cmdGen) open() any {
	o := &Open{Meta: g.meta(), Path: g.path(), Create: uint8(1 + g.r.Intn(2)),
		Ephemeral: g.r.Intn(3) == 0, Directory: g.r.Intn(2) == 0}
	if !o.Directory {
		o.Contents = g.data()
	}
	if g.r.Intn(50) == 0 {
		o.Create = 0
	}
	o.Sequential = g.r.Intn(6) == 0
	return o
}

// lockInstance is usually 0 (any instance), so that lock commands mostly
// reach the lock table.
func (g *cmdGen) lockInstance() uint64 {
	if g.r.Intn(4) > 0 {
		return 0
	}
	return g.small()
}

// small is 0 half the time, else a small number (a likely-stale instance
// or a generation).
func (g *cmdGen) small() uint64 {
	if g.r.Intn(2) == 0 {
		return 0
	}
	return uint64(g.r.Intn(int(g.index) + 1))
}

func (g *cmdGen) path() string {
	p := ""
	for range 1 + g.r.Intn(3) {
		p += "/" + string(rune('a'+g.r.Intn(3)))
	}
	if g.r.Intn(40) == 0 {
		return p + "/"
	}
	return p
}

func (g *cmdGen) data() []byte {
	b := make([]byte, g.r.Intn(12))
	g.r.Read(b)
	return b
}

func (g *cmdGen) meta() WriteMeta {
	switch p := g.r.Intn(20); {
	case p == 0:
		return WriteMeta{Time: g.now()} // internal write
	case p == 1:
		return g.metaFor(g.index + 1000) // unknown session
	}
	return g.metaFor(g.sessions[g.r.Intn(len(g.sessions))])
}

func (g *cmdGen) metaFor(id uint64) WriteMeta {
	m := WriteMeta{Session: id, Time: g.now()}
	switch p := g.r.Intn(10); {
	case p == 0:
		return m // no dedup
	case p < 3 && g.seqs[id] > 0:
		m.Seq = 1 + uint64(g.r.Int63n(int64(g.seqs[id]))) // retry
	default:
		g.seqs[id]++
		m.Seq = g.seqs[id]
	}
	if g.r.Intn(4) == 0 && m.Seq > 3 {
		m.AckBelow = m.Seq - uint64(g.r.Intn(4))
	}
	return m
}
