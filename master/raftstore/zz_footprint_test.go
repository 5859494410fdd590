package raftstore

import (
	"bytes"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/hashicorp/raft"
)

func TestZZFootprint(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	base := heap()
	var stores []*Store
	for range 5 {
		s := openTest(t, "")
		stores = append(stores, s)
	}
	t.Logf("after open 5: %d MiB", (heap()-base)>>20)
	data := bytes.Repeat([]byte("z"), 200)
	for _, s := range stores {
		for lo := uint64(1); lo <= 100_000; lo += 64 {
			logs := make([]*raft.Log, 64)
			for i := range logs {
				logs[i] = &raft.Log{Index: lo + uint64(i), Term: 1, Data: data}
			}
			if err := s.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		}
		s.DeleteRange(1, 50_000)
	}
	t.Logf("after 100k logs each: %d MiB", (heap()-base)>>20)
	f, _ := os.Create("/tmp/heap.out")
	pprof.WriteHeapProfile(f)
	f.Close()
}
