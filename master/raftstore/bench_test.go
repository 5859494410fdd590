package raftstore

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkStoreLogs appends batches of 64 small (100-byte) logs, as raft
// does under load; each iteration is one batch and one fsync.
func BenchmarkStoreLogs(b *testing.B) {
	s := openTest(b, "")
	const batch = 64
	data := bytes.Repeat([]byte("x"), 100)
	logs := make([]*raft.Log, batch)
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		for i := range logs {
			logs[i] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch), "logs/op")
}

// BenchmarkGetLog reads random logs from a store of 10,000 small logs.
func BenchmarkGetLog(b *testing.B) {
	s := openTest(b, "")
	const n = 10_000
	data := bytes.Repeat([]byte("y"), 100)
	for lo := uint64(1); lo <= n; lo += 500 {
		logs := make([]*raft.Log, 0, 500)
		for i := lo; i < lo+500; i++ {
			logs = append(logs, &raft.Log{Index: i, Term: 1, Data: data})
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
	var l raft.Log
	idx := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		idx = (idx*7919 + 1) % n
		if err := s.GetLog(idx+1, &l); err != nil {
			b.Fatal(err)
		}
	}
}
