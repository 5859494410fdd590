package fsm

import (
	"hash/crc64"
	"strings"
	"testing"

	"github.com/haspcell/hasp/fsapi"
)

type nsCase struct {
	name  string
	steps []step
	check func(t *testing.T, h *tester, rs []*Result)
}

func runCases(t *testing.T, cfg Config, cases []nsCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newTester(t, cfg)
			rs := h.run(c.steps)
			if c.check != nil {
				c.check(t, h, rs)
			}
		})
	}
}

func withCreate(o *Open, mode fsapi.CreateMode) *Open { o.Create = uint8(mode); return o }

func TestOpen(t *testing.T) {
	const ok = ErrKindOK
	runCases(t, Config{ContentLimit: 8}, []nsCase{
		{name: "file", steps: []step{{mkfile(s1, "/a", "hello"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				want := fsapi.Stat{Instance: 3, ContentGeneration: 1, CreatedRevision: 3, ModifiedRevision: 3,
					Size: 5, Checksum: crc64.Checksum([]byte("hello"), crc64.MakeTable(crc64.ECMA))}
				if rs[0].Stat != want || !rs[0].Created || h.node("/a").Stat != want {
					t.Fatalf("got %+v, want %+v", rs[0], want)
				}
				if string(h.node("/a").Data) != "hello" || h.node("/").Stat.Children != 1 {
					t.Fatal("bad contents or root child count")
				}
			}},
		{name: "directory tree", steps: []step{{mkdir(s1, "/d"), ok}, {mkdir(0, "/d/e"), ok}, {mkfile(s2, "/d/e/f", ""), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if d := h.node("/d").Stat; !d.IsDir || d.Children != 1 || d.Size != 0 || d.Instance != 3 {
					t.Fatalf("/d: %+v", d)
				}
				if f := h.node("/d/e/f"); f.Data != nil || f.Stat.Checksum != 0 || f.Stat.Instance != 5 {
					t.Fatalf("/d/e/f: %+v", f)
				}
			}},
		{name: "must exists", steps: []step{{mkfile(s1, "/a", "x"), ok}, {mkfile(s1, "/a", "y"), ErrKindExist}}},
		{name: "may exists", steps: []step{{mkfile(s1, "/a", "x"), ok}, {withCreate(mkdir(s2, "/a"), fsapi.CreateMay), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if rs[1].Created || rs[1].Stat != rs[0].Stat || string(h.node("/a").Data) != "x" {
					t.Fatalf("CreateMay on existing: %+v", rs[1])
				}
			}},
		{name: "may creates", steps: []step{{withCreate(mkfile(s1, "/a", "x"), fsapi.CreateMay), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !rs[0].Created {
					t.Fatal("not created")
				}
			}},
		{name: "root may", steps: []step{{withCreate(mkdir(s1, "/"), fsapi.CreateMay), ok}}},
		{name: "root must", steps: []step{{mkdir(s1, "/"), ErrKindExist}}},
		{name: "create no", steps: []step{{withCreate(mkfile(s1, "/a", ""), fsapi.CreateNo), ErrKindBadRequest}}},
		{name: "create 3", steps: []step{{withCreate(mkfile(s1, "/a", ""), 3), ErrKindBadRequest}}},
		{name: "relative", steps: []step{{mkfile(s1, "a", ""), ErrKindBadName}}},
		{name: "trailing slash", steps: []step{{mkfile(s1, "/a/", ""), ErrKindBadName}}},
		{name: "dot", steps: []step{{mkdir(s1, "/."), ErrKindBadName}}},
		{name: "nul", steps: []step{{mkfile(s1, "/a\x00b", ""), ErrKindBadName}}},
		{name: "no parent", steps: []step{{mkfile(s1, "/x/a", ""), ErrKindNotExist}}},
		{name: "parent is file", steps: []step{{mkfile(s1, "/f", ""), ok}, {mkfile(s1, "/f/a", ""), ErrKindNotDir}}},
		{name: "at limit", steps: []step{{mkfile(s1, "/a", "12345678"), ok}}},
		{name: "too large", steps: []step{{mkfile(s1, "/a", "123456789"), ErrKindTooLarge}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !strings.Contains(rs[0].ErrMsg, "9 bytes") || !strings.Contains(rs[0].ErrMsg, "8 bytes") {
					t.Fatalf("message %q lacks the sizes", rs[0].ErrMsg)
				}
				h.absent("/a")
			}},
		{name: "directory with contents", steps: []step{{&Open{Meta: WriteMeta{Session: s1}, Path: "/d",
			Create: uint8(fsapi.CreateMust), Directory: true, Contents: []byte("x")}, ErrKindBadRequest}}},
		{name: "ephemeral without session", steps: []step{{ephFile(0, "/e"), ErrKindBadRequest}}},
		{name: "unknown session", steps: []step{{mkfile(99, "/a", ""), ErrKindSessionExpired}}},
		{name: "admin write", steps: []step{{mkfile(0, "/a", "x"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if h.node("/a").Stat.EphemeralOwner != 0 {
					t.Fatal("admin write made an ephemeral")
				}
			}},
	})
}

func TestSetContents(t *testing.T) {
	const ok = ErrKindOK
	sc := func(path string, inst, ifGen uint64, data string) *SetContents {
		c := set(s1, path, data)
		c.Instance, c.IfGeneration = inst, ifGen
		return c
	}
	runCases(t, Config{ContentLimit: 8}, []nsCase{
		{name: "write", steps: []step{{mkfile(s1, "/a", "x"), ok}, {set(s2, "/a", "hello"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				st := h.node("/a").Stat
				want := rs[0].Stat
				want.ContentGeneration, want.ModifiedRevision = 2, 4
				want.Size, want.Checksum = 5, crc64.Checksum([]byte("hello"), crcTable)
				if st != want || rs[1].Stat != want || string(h.node("/a").Data) != "hello" {
					t.Fatalf("got %+v, want %+v", st, want)
				}
			}},
		{name: "empty", steps: []step{{mkfile(s1, "/a", "x"), ok}, {set(s1, "/a", ""), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if n := h.node("/a"); n.Data != nil || n.Stat.Size != 0 || n.Stat.Checksum != 0 {
					t.Fatalf("%+v", n)
				}
			}},
		{name: "missing", steps: []step{{set(s1, "/a", "x"), ErrKindNotExist}}},
		{name: "bad name", steps: []step{{set(s1, "/a/", "x"), ErrKindBadName}}},
		{name: "instance ok", steps: []step{{mkfile(s1, "/a", "x"), ok}, {sc("/a", 3, 0, "y"), ok}}},
		{name: "instance wrong", steps: []step{{mkfile(s1, "/a", "x"), ok}, {sc("/a", 2, 0, "y"), ErrKindHandleInvalid}}},
		{name: "directory", steps: []step{{mkdir(s1, "/d"), ok}, {set(s1, "/d", "x"), ErrKindIsDir}}},
		{name: "root", steps: []step{{set(s1, "/", "x"), ErrKindIsDir}}},
		{name: "cas ok", steps: []step{{mkfile(s1, "/a", "x"), ok}, {sc("/a", 0, 1, "y"), ok}, {sc("/a", 3, 2, "z"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if g := h.node("/a").Stat.ContentGeneration; g != 3 {
					t.Fatalf("generation %d", g)
				}
			}},
		{name: "cas mismatch", steps: []step{{mkfile(s1, "/a", "x"), ok}, {sc("/a", 0, 5, "y"), ErrKindGenerationMismatch}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !strings.Contains(rs[1].ErrMsg, "expected generation 5, actual 1") {
					t.Fatalf("message %q", rs[1].ErrMsg)
				}
				if string(h.node("/a").Data) != "x" {
					t.Fatal("failed CAS wrote")
				}
			}},
		{name: "too large", steps: []step{{mkfile(s1, "/a", "x"), ok}, {set(s1, "/a", "123456789"), ErrKindTooLarge}}},
		{name: "unknown session", steps: []step{{mkfile(s1, "/a", "x"), ok}, {set(7, "/a", "y"), ErrKindSessionExpired}}},
	})
}

func TestDelete(t *testing.T) {
	const ok = ErrKindOK
	delInst := func(sess uint64, path string, inst uint64) *Delete {
		d := del(sess, path)
		d.Instance = inst
		return d
	}
	runCases(t, Config{}, []nsCase{
		{name: "file", steps: []step{{mkfile(s1, "/a", "x"), ok}, {mkfile(s1, "/b", "x"), ok}, {del(s2, "/a"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				h.absent("/a")
				if c := h.node("/").Stat.Children; c != 1 || rs[2].Stat != rs[0].Stat {
					t.Fatalf("root children %d, result %+v", c, rs[2])
				}
			}},
		{name: "missing", steps: []step{{del(s1, "/a"), ErrKindNotExist}}},
		{name: "root", steps: []step{{del(s1, "/"), ErrKindBadRequest}},
			check: func(t *testing.T, h *tester, rs []*Result) {
				if !strings.Contains(rs[0].ErrMsg, "cannot delete root") {
					t.Fatalf("message %q", rs[0].ErrMsg)
				}
			}},
		{name: "bad name", steps: []step{{del(s1, "//"), ErrKindBadName}}},
		{name: "not empty", steps: []step{{mkdir(s1, "/d"), ok}, {mkfile(s1, "/d/a", ""), ok}, {del(s1, "/d"), ErrKindNotEmpty}}},
		{name: "empty dir", steps: []step{{mkdir(s1, "/d"), ok}, {mkfile(s1, "/d/a", ""), ok}, {del(s1, "/d/a"), ok}, {del(s1, "/d"), ok}},
			check: func(t *testing.T, h *tester, rs []*Result) { h.absent("/d", "/d/a") }},
		{name: "instance", steps: []step{{mkfile(s1, "/a", ""), ok}, {delInst(s1, "/a", 4), ErrKindHandleInvalid}, {delInst(s1, "/a", 3), ok}}},
		{name: "unknown session", steps: []step{{mkfile(s1, "/a", ""), ok}, {del(9, "/a"), ErrKindSessionExpired}}},
		{name: "recreate invalidates handle", steps: []step{
			{mkfile(s1, "/a", "old"), ok}, // 3
			{del(s1, "/a"), ok},           // 4
			{mkfile(s2, "/a", "new"), ok}, // 5
			{&SetContents{Meta: WriteMeta{Session: s1}, Path: "/a", Instance: 3}, ErrKindHandleInvalid},
			{delInst(s1, "/a", 3), ErrKindHandleInvalid},
			{&SetContents{Meta: WriteMeta{Session: s2}, Path: "/a", Instance: 5, Data: []byte("v")}, ok},
		}, check: func(t *testing.T, h *tester, rs []*Result) {
			n := h.node("/a")
			if n.Stat.Instance != 5 || n.Stat.CreatedRevision != 5 || n.Stat.ContentGeneration != 2 {
				t.Fatalf("%+v", n.Stat)
			}
		}},
	})
}

func TestViewList(t *testing.T) {
	h := newTester(t, Config{})
	for _, p := range []string{"/b", "/a", "/a/z", "/a/y", "/a/y/deep", "/ab", "/a-"} {
		h.must(mkdir(0, p))
	}
	v := h.f.View()
	names := func(dir string) string {
		var out []string
		for _, e := range v.List(dir) {
			out = append(out, e.Name)
		}
		return strings.Join(out, ",")
	}
	for dir, want := range map[string]string{"/": "a,a-,ab,b", "/a": "y,z", "/a/y": "deep", "/b": "", "/nope": "", "bad": ""} {
		if got := names(dir); got != want {
			t.Errorf("List(%q) = %q, want %q", dir, got, want)
		}
	}
	if v.List("/b") != nil || v.NodeCount() != 8 || v.Revision() != h.index {
		t.Fatalf("empty list non-nil, or count %d, or revision %d", v.NodeCount(), v.Revision())
	}
	if e := v.List("/a")[0]; e.Stat != h.node("/a/y").Stat {
		t.Fatalf("entry stat %+v", e.Stat)
	}
	if _, ok := v.Get("/a\x00y"); ok {
		t.Fatal("Get accepted a NUL path")
	}
	h.must(del(0, "/b"))
	if names("/") != "a,a-,ab,b" || len(h.f.View().List("/")) != 3 {
		t.Fatal("an old view changed after a later apply, or the new one did not")
	}
}
