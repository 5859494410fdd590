package leasetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/haspcell/hasp/lease"
)

// SkewedClock is a real clock whose time runs at rate × real time:
// Now = start + rate·elapsed, and a timer of d fires after d/rate of real
// time. Give a replica one (master.Config.Clock) to model a clock that runs
// fast (rate > 1) or slow (rate < 1); within 1 ± lease.DefaultEpsilon the
// master lease must stay safe. A slow clock on the master is the dangerous
// one: its lease then lasts longer in real time than it believes.
//
// Times it returns carry Go's monotonic reading, so they compare correctly
// with each other (and must not be compared with time.Now()). It is safe for
// concurrent use.
type SkewedClock struct {
	mu       sync.Mutex // protects following fields
	baseReal time.Time  // real time of the last rate change
	baseNow  time.Time  // the clock's time then
	rate     float64
}

var _ lease.Clock = (*SkewedClock)(nil)

// NewSkewedClock returns a clock that reads the real time now and from then
// on runs at rate (> 0).
func NewSkewedClock(rate float64) *SkewedClock {
	checkRate(rate)
	now := time.Now()
	return &SkewedClock{baseReal: now, baseNow: now, rate: rate}
}

func checkRate(rate float64) {
	if !(rate > 0) {
		panic(fmt.Sprintf("leasetest: clock rate %v must be positive", rate))
	}
}

// Now is the clock's time.
func (c *SkewedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(time.Now())
}

func (c *SkewedClock) nowLocked(real time.Time) time.Time {
	return c.baseNow.Add(time.Duration(float64(real.Sub(c.baseReal)) * c.rate))
}

// Rate is the clock's current rate.
func (c *SkewedClock) Rate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// SetRate changes the rate from now on. The clock's time stays continuous
// (it never jumps, and never goes back). Timers already running keep the
// real duration they were given.
func (c *SkewedClock) SetRate(rate float64) {
	checkRate(rate)
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Now()
	c.baseNow = c.nowLocked(real)
	c.baseReal = real
	c.rate = rate
}

// real converts a duration on this clock to real time.
func (c *SkewedClock) real(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.Rate())
}

// NewTimer returns a timer that fires when the clock has moved by d.
func (c *SkewedClock) NewTimer(d time.Duration) lease.Timer {
	return &skewedTimer{c: c, t: time.NewTimer(c.real(d))}
}

type skewedTimer struct {
	c *SkewedClock
	t *time.Timer
}

func (t *skewedTimer) C() <-chan time.Time        { return t.t.C }
func (t *skewedTimer) Stop() bool                 { return t.t.Stop() }
func (t *skewedTimer) Reset(d time.Duration) bool { return t.t.Reset(t.c.real(d)) }
