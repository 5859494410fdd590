// Package leasetest provides clocks for tests of lease users: Clock, a
// manual clock whose time moves only when the test says so (its rate can be
// skewed to test the clock-rate bound), modelled on tailscale's
// tstest.Clock.
//
// It is for tests only; nothing in a production path imports it.
//
// # Usage
//
//	c := leasetest.NewClock(time.Unix(0, 0))
//	t := c.NewTimer(time.Second)
//	c.Advance(time.Second) // t fires
package leasetest
