package fsm

import (
	"fmt"
	"github.com/haspcell/hasp/locks"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ and run in plain go test.
// Regenerate them with HASP_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus.

func FuzzDecodeCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, cmd, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(typ, cmd)
		if err != nil {
			t.Fatalf("re-encode %T: %v", cmd, err)
		}
		typ2, cmd2, err := Decode(again)
		if err != nil || typ2 != typ || !reflect.DeepEqual(cmd, cmd2) {
			t.Fatalf("round trip: %v %+v -> %v %+v (%v)", typ, cmd, typ2, cmd2, err)
		}
	})
}

// fuzzFixture is an FSM with sessions 1 and 2 (indexes 1, 2), a permanent
// directory /p holding a file /p/f, and session 1's ephemeral directory /e
// holding its ephemeral file /e/x and session 2's ephemeral /e/y.
func fuzzFixture(t testing.TB) *tester {
	h := newTester(t, Config{ContentLimit: 64})
	h.must(mkdir(0, "/p"))
	h.must(mkfile(s1, "/p/f", "data"))
	h.must(ephDir(s1, "/e"))
	h.must(ephFile(s1, "/e/x"))
	h.must(ephFile(s2, "/e/y"))
	return h
}

func FuzzApply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := Decode(data); err != nil {
			return
		}
		h := fuzzFixture(t)
		for range 2 { // the second time exercises dedup
			h.index++
			if _, ok := h.f.Apply(&raft.Log{Index: h.index, Data: data}).(*Result); !ok {
				t.Fatal("Apply of a decodable command returned no *Result")
			}
		}
		checkInvariants(t, h.f)
	})
}

func corpusSeeds() map[string][]any {
	m := func(sess, seqNo, ack uint64) WriteMeta {
		return WriteMeta{Session: sess, Seq: seqNo, AckBelow: ack, Time: 7}
	}
	return map[string][]any{
		"create-session": {&CreateSession{Time: 1, LeaseMillis: 12000, ClientName: "fuzz"}},
		"close-session":  {&CloseSession{Meta: m(s1, 1, 0)}},
		"expire-session": {&CloseSession{Meta: m(s2, 0, 0), Expired: true}},
		"open-file":      {&Open{Meta: m(s1, 2, 1), Path: "/p/g", Create: 2, Contents: []byte("hi")}},
		"open-ephemeral": {&Open{Meta: m(s2, 1, 0), Path: "/e/z", Create: 1, Ephemeral: true, Directory: true}},
		"open-existing":  {&Open{Meta: m(0, 0, 0), Path: "/p", Create: 1}},
		"open-sequential": {&Open{Meta: m(s2, 4, 0), Path: "/e/q-", Create: 2, Ephemeral: true, Contents: []byte("j"),
			Sequential: true}},
		"set-cas":    {&SetContents{Meta: m(s1, 3, 0), Path: "/p/f", Instance: 4, Data: []byte("new"), IfGeneration: 1}},
		"set-stale":  {&SetContents{Meta: m(s2, 0, 0), Path: "/p/f", Instance: 3, Data: []byte("x")}},
		"delete-eph": {&Delete{Meta: m(s1, 4, 4), Path: "/e/x"}},
		"delete-dir": {&Delete{Meta: m(s1, 0, 0), Path: "/p"}},
		"noop":       {&Noop{Time: 3}},
		"multi": {&Multi{Meta: m(s1, 10, 0), Ops: []MultiOp{
			{Kind: MultiCreate, Path: "/p/d", Directory: true},
			{Kind: MultiCreate, Path: "/p/d/j-", Data: []byte("j"), Ephemeral: true, Sequential: true},
			{Kind: MultiSet, Path: "/p/f", Data: []byte("new"), Generation: 1},
			{Kind: MultiCheck, Path: "/e/x", Generation: 1},
			{Kind: MultiDelete, Path: "/e/x", Generation: 1}}}},
		"multi-fails": {&Multi{Meta: m(s2, 5, 0), Ops: []MultiOp{
			{Kind: MultiDelete, Path: "/e/y"}, {Kind: MultiSet, Path: "/p/f", Data: []byte("x"), Generation: 9}}}},
		"bad-path":     {&Open{Meta: m(s1, 5, 0), Path: "/a//b", Create: 2}},
		"acquire":      {&Acquire{Meta: m(s1, 6, 0), Path: "/p/f", Handle: 1, Mode: 1, LockDelayMillis: 10}},
		"acquire-wait": {&Acquire{Meta: m(s2, 2, 0), Path: "/p/f", Instance: 4, Handle: 2, Mode: 2, Wait: true}},
		"release":      {&Release{Meta: m(s1, 7, 0), Path: "/p/f", Handle: 1}},
		"cancel-wait":  {&CancelWait{Meta: m(s2, 3, 0), Path: "/p/f", Waiter: 1}},
		"lock-tick":    {&LockTick{Time: 1 << 40}},
		"set-fenced": {&SetContents{Meta: m(s1, 8, 0), Path: "/p/f", Data: []byte("f"),
			Sequencer: locks.Sequencer{Path: "/p/f", Instance: 4, Mode: locks.Exclusive, Generation: 1}.Encode()}},
		"delete-fenced": {&Delete{Meta: m(s1, 9, 0), Path: "/p/g",
			Sequencer: locks.Sequencer{Path: "/p/f", Instance: 4, Mode: locks.Exclusive, Generation: 1}.Encode()}},
	}
}

func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("HASP_WRITE_CORPUS") == "" {
		t.Skip("set HASP_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for name, cmds := range corpusSeeds() {
		data := encode(t, cmds[0])
		writeSeed(t, "FuzzApply", name, data)
		writeSeed(t, "FuzzDecodeCommand", name, data)
	}
	ignorable := encode(t, &Noop{Time: 1})
	ignorable[0] |= byte(IgnoreUnknown)
	writeSeed(t, "FuzzDecodeCommand", "ignorable-noop", ignorable)
	writeSeed(t, "FuzzDecodeCommand", "unknown-type", []byte{0x7f, 0x80})
	writeSeed(t, "FuzzDecodeCommand", "truncated", encode(t, corpusSeeds()["open-file"][0])[:9])
	writeSeed(t, "FuzzDecodeCommand", "empty", nil)
}

func writeSeed(t *testing.T, fuzzName, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
