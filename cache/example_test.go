package cache_test

import (
	"fmt"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
)

// A reply read at revision 10 crosses an invalidation sent at revision 11:
// the cache refuses it, and caches the reply read after the change.
func Example() {
	c, err := cache.New(nil)
	if err != nil {
		panic(err)
	}
	c.PutContents("/svc/config", 5, []byte("v1"), fsapi.Stat{ContentGeneration: 1})
	data, _, rev, ok := c.GetContents("/svc/config")
	fmt.Printf("%s read at %d, hit %v\n", data, rev, ok)

	c.Invalidate("/svc/config", 11) // the master is about to change it
	fmt.Println("cache the late reply read at 10:", c.PutContents("/svc/config", 10, []byte("v1"), fsapi.Stat{}))
	fmt.Println("cache the reply read at 12:", c.PutContents("/svc/config", 12, []byte("v2"), fsapi.Stat{}))

	c.Flush(20) // master fail-over
	_, _, _, ok = c.GetContents("/svc/config")
	fmt.Println("hit after Flush:", ok)
	st := c.Stats()
	fmt.Printf("hits %d, misses %d, stale %d\n", st.Hits, st.Misses, st.Stale)
	// Output:
	// v1 read at 5, hit true
	// cache the late reply read at 10: false
	// cache the reply read at 12: true
	// hit after Flush: false
	// hits 1, misses 1, stale 1
}
