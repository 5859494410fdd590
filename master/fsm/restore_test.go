package fsm

import (
	"bytes"
	"hash/crc64"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/haspcell/hasp/fsapi"
)

type rec struct {
	k recKind
	v any
}

// goodSnap is a small valid snapshot: / → /d → /d/f (ephemeral of session 5).
type goodSnap struct {
	hdr     snapHeader
	root, d snapNode
	f       snapNode
	sess    snapSession
	end     snapEnd
	extra   []byte
}

func newGoodSnap() *goodSnap {
	return &goodSnap{
		hdr:  snapHeader{Version: 1, Index: 9, ContentLimit: 4},
		root: snapNode{Path: "/", Node: Node{Stat: fsapi.Stat{ContentGeneration: 1, IsDir: true, Children: 1}}},
		d:    snapNode{Path: "/d", Node: Node{Stat: fsapi.Stat{Instance: 2, IsDir: true, Children: 1}}},
		f: snapNode{Path: "/d/f", Node: Node{Data: []byte("x"), Stat: fsapi.Stat{Instance: 6, EphemeralOwner: 5,
			Size: 1, Checksum: crc64.Checksum([]byte("x"), crcTable)}}},
		sess: snapSession{ID: 5, AckBelow: 2, Ephemerals: []string{"/d/f"},
			Replies: []snapReply{{Seq: 2, Result: Result{Created: true}}, {Seq: 4}}},
		end: snapEnd{Nodes: 3, Sessions: 1},
	}
}

func (g *goodSnap) records() []rec {
	return []rec{{recNode, &g.root}, {recNode, &g.d}, {recNode, &g.f}, {recSession, &g.sess}, {recEnd, &g.end}}
}

func encodeSnap(t *testing.T, hdr *snapHeader, recs []rec, extra []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := codec.NewEncoder(&buf, handle)
	if err := enc.Encode(hdr); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := encodeRecord(enc, r.k, r.v); err != nil {
			t.Fatal(err)
		}
	}
	return append(buf.Bytes(), extra...)
}

// expectRestoreFails restores data into an FSM with state and checks that
// it fails and changes nothing.
// corruption is one way to spoil a good snapshot, and the words the
// restore error must contain.
type corruption struct {
	name   string
	mutate func(g *goodSnap) []rec // nil result: g.records()
	why    string
}

// expectCorruptionsFail checks that Restore rejects each corrupted snapshot
// and leaves the FSM it was given as it was.
func expectCorruptionsFail(t *testing.T, cases []corruption) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newTester(t, Config{ContentLimit: 4})
			h.must(mkfile(s1, "/keep", "k"))
			g := newGoodSnap()
			recs := c.mutate(g)
			if recs == nil {
				recs = g.records()
			}
			expectRestoreFails(t, h, encodeSnap(t, &g.hdr, recs, g.extra), c.why)
		})
	}
}

func expectRestoreFails(t *testing.T, h *tester, data []byte, why string) {
	t.Helper()
	before, idx := snapshotBytes(t, h.f), h.f.AppliedIndex()
	err := h.f.Restore(io.NopCloser(bytes.NewReader(data)))
	if err == nil {
		t.Fatalf("restore succeeded")
	}
	if why != "" && !strings.Contains(err.Error(), why) {
		t.Fatalf("error %q does not mention %q", err, why)
	}
	if !bytes.Equal(snapshotBytes(t, h.f), before) || h.f.AppliedIndex() != idx {
		t.Fatal("a failed restore changed the state")
	}
}

func TestRestoreValidation(t *testing.T) {
	cases := []corruption{
		{"version", func(g *goodSnap) []rec { g.hdr.Version = 2; return nil }, "version"},
		{"content limit", func(g *goodSnap) []rec { g.hdr.ContentLimit = 5; return nil }, "content limit"},
		{"no root", func(g *goodSnap) []rec { return g.records()[1:] }, "root"},
		{"root is file", func(g *goodSnap) []rec { g.root.Node.Stat.IsDir = false; return nil }, "root"},
		{"child count", func(g *goodSnap) []rec { g.root.Node.Stat.Children = 2; return nil }, "child count"},
		{"file with child count", func(g *goodSnap) []rec { g.f.Node.Stat.Children = 1; return nil }, "child count"},
		{"order", func(g *goodSnap) []rec { r := g.records(); r[1], r[2] = r[2], r[1]; return r }, ""},
		{"parent missing", func(g *goodSnap) []rec { g.d.Path = "/e"; return nil }, "parent"},
		{"parent is file", func(g *goodSnap) []rec { g.d.Node.Stat.IsDir = false; return nil }, "parent"},
		{"checksum", func(g *goodSnap) []rec { g.f.Node.Stat.Checksum++; return nil }, "checksum"},
		{"size", func(g *goodSnap) []rec { g.f.Node.Stat.Size = 2; return nil }, "size"},
		{"too large", func(g *goodSnap) []rec { g.f.Node.Data = []byte("xxxxx"); return nil }, "limit"},
		{"dir with data", func(g *goodSnap) []rec { g.d.Node.Data = []byte("x"); return nil }, "directory"},
		{"bad path", func(g *goodSnap) []rec { g.f.Path = "/d/f/"; return nil }, "bad name"},
		{"file with counter", func(g *goodSnap) []rec { g.f.Node.NextSequence = 1; return nil }, "sequence counter"},
		{"counter past limit", func(g *goodSnap) []rec { g.d.Node.NextSequence = fsapi.MaxSequence + 2; return nil }, "sequence counter"},
		{"unlisted ephemeral", func(g *goodSnap) []rec { g.sess.Ephemerals = nil; return nil }, "ephemerals"},
		{"listed non-ephemeral", func(g *goodSnap) []rec { g.sess.Ephemerals = []string{"/d"}; return nil }, "ephemeral"},
		{"session 0", func(g *goodSnap) []rec { g.sess.ID = 0; return nil }, "session 0"},
		{"duplicate session", func(g *goodSnap) []rec {
			r := g.records()
			return append(r[:4:4], r[3], r[4])
		}, "out of order"},
		{"acknowledged reply", func(g *goodSnap) []rec { g.sess.AckBelow = 3; return nil }, "reply 2"},
		{"replies order", func(g *goodSnap) []rec { g.sess.Replies[1].Seq = 2; return nil }, "reply 2"},
		{"node after session", func(g *goodSnap) []rec {
			r := g.records()
			z := &snapNode{Path: "/z", Node: Node{Stat: fsapi.Stat{Instance: 7}}}
			return []rec{r[0], r[1], r[2], r[3], {recNode, z}, r[4]}
		}, "after sessions"},
		{"unknown record", func(g *goodSnap) []rec { return append([]rec{{9, &g.end}}, g.records()...) }, "record kind"},
		{"end counts", func(g *goodSnap) []rec { g.end.Nodes = 4; return nil }, "end record"},
		{"no end", func(g *goodSnap) []rec { return g.records()[:4] }, "EOF"},
		{"trailing", func(g *goodSnap) []rec { g.extra = []byte{0}; return nil }, "trailing"},
	}
	expectCorruptionsFail(t, cases)
	t.Run("good", func(t *testing.T) {
		g := newGoodSnap()
		data := encodeSnap(t, &g.hdr, g.records(), nil)
		h := restored(t, data, Config{ContentLimit: 4})
		if info, _ := h.f.Session(5); info.Ephemerals != 1 || !bytes.Equal(snapshotBytes(t, h.f), data) {
			t.Fatal("the valid hand-made snapshot did not round-trip")
		}
	})
}

func TestRestoreCorrupt(t *testing.T) {
	src := newTester(t, Config{ContentLimit: 10})
	applyLog(t, newCmdGen(testSeed(t), 3), 300, src)
	data := snapshotBytes(t, src.f)
	h := newTester(t, Config{ContentLimit: 10})
	h.must(mkdir(s1, "/old"))
	r := rand.New(rand.NewSource(int64(len(data))))
	t.Run("truncated", func(t *testing.T) {
		for _, n := range append([]int{0, 1, len(data) - 1}, r.Perm(len(data))[:200]...) {
			expectRestoreFails(t, h, data[:n], "")
		}
	})
	t.Run("bit flips", func(t *testing.T) {
		for range 300 {
			bad := bytes.Clone(data)
			bad[r.Intn(len(bad))] ^= 1 << r.Intn(8)
			f := New(Config{ContentLimit: 10})
			if f.Restore(io.NopCloser(bytes.NewReader(bad))) == nil {
				checkInvariants(t, f) // a harmless flip (a name, a time) must still be consistent
			}
		}
		expectRestoreFails(t, h, []byte("garbage"), "")
	})
}
