package cache_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
)

const benchFiles = 1024

func benchPaths() []string {
	paths := make([]string, benchFiles)
	for i := range paths {
		paths[i] = fmt.Sprintf("/svc/s%02d/f%04d", i%32, i)
	}
	return paths
}

// BenchmarkGetParallel reads cached 100-byte files from 8 goroutines (more
// than the cores, as in a busy client), with one shard and with the default.
func BenchmarkGetParallel(b *testing.B) {
	paths := benchPaths()
	data := make([]byte, 100)
	for _, shards := range []int{1, cache.DefaultShards} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			c, err := cache.New(&cache.Config{Shards: shards})
			if err != nil {
				b.Fatal(err)
			}
			for i, p := range paths {
				c.PutContents(p, uint64(i+1), data, fsapi.Stat{Size: 100})
			}
			var next atomic.Uint64
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919) // each goroutine starts elsewhere
				for pb.Next() {
					if _, _, _, ok := c.GetContents(paths[i%benchFiles]); !ok {
						b.Error("miss")
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// BenchmarkPutInvalidate caches a 100-byte file and invalidates it, from
// 8 goroutines: the cost of one change seen by a caching client.
func BenchmarkPutInvalidate(b *testing.B) {
	paths := benchPaths()
	data := make([]byte, 100)
	c, err := cache.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	var rev atomic.Uint64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := rev.Add(2)
			p := paths[r/2%benchFiles]
			c.PutContents(p, r, data, fsapi.Stat{Size: 100})
			c.Invalidate(p, r+1)
		}
	})
}
