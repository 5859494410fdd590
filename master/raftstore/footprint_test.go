package raftstore

import (
	"runtime"
	"testing"
)

// TestOpenFootprint guards the small-footprint tuning: five dev-mode
// stores share a process, so an idle open store must stay in the tens of
// MiB (it is ~11 MiB: one 8 MiB memtable arena plus batch headroom).
// Write bursts transiently add badger's pooled table-builder buffers,
// which it frees after a few idle seconds; that is not measured here.
func TestOpenFootprint(t *testing.T) {
	const stores, limitPerStore = 5, 24 << 20
	before := heapInUse()
	for range stores {
		s := openTest(t, "")
		if err := s.StoreLogs(makeLogs(1, 1000, 1)); err != nil {
			t.Fatal(err)
		}
	}
	per := (heapInUse() - before) / stores
	t.Logf("heap in use per open store: %.1f MiB", float64(per)/(1<<20))
	if per > limitPerStore {
		t.Fatalf("heap per store %d MiB exceeds %d MiB", per>>20, limitPerStore>>20)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
