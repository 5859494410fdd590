package cellclient

import "time"

// SetBeforeCachePutForTest runs f before every cacheable reply is put in
// a cache (nil removes it). Tests use it to hold a reply back while an
// invalidation overtakes it.
func SetBeforeCachePutForTest(f func()) { beforePut = f }

// LocalLeaseEndForTest is the end of the session's conservative local
// lease (the cache serves hits only before it).
func (c *Client) LocalLeaseEndForTest() time.Time { return time.Unix(0, c.leaseEndNanos.Load()) }
