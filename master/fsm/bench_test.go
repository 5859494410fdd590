package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplySetContents measures Apply of a 1 KiB SetContents with
// exactly-once bookkeeping (each write acknowledges the previous one), in a
// namespace of 10,000 files.
func BenchmarkApplySetContents(b *testing.B) {
	h := newTester(b, Config{})
	h.must(mkdir(0, "/d"))
	for i := range 10_000 {
		h.must(mkfile(0, fmt.Sprintf("/d/f%05d", i), "x"))
	}
	data := make([]byte, 1024)
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		c := &SetContents{Meta: WriteMeta{Session: s1, Seq: uint64(i + 1), AckBelow: uint64(i)},
			Path: fmt.Sprintf("/d/f%05d", i%10_000), Data: data}
		logs[i] = &raft.Log{Index: h.index + 1 + uint64(i), Data: encode(b, c)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range logs {
		if r := h.f.Apply(l).(*Result); r.ErrKind != ErrKindOK {
			b.Fatal(r.ErrMsg)
		}
	}
}
