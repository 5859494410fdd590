package leasetest

import (
	"sync"
	"time"

	"github.com/haspcell/hasp/lease"
)

// Clock is a manual clock. Its zero value is not usable; call NewClock.
type Clock struct {
	mu     sync.Mutex // protects following fields
	now    time.Time
	rate   float64 // how far Now moves per unit of Advance
	timers []*timer
}

// NewClock returns a clock at start, running at the true rate.
func NewClock(start time.Time) *Clock { return &Clock{now: start, rate: 1} }

var _ lease.Clock = (*Clock)(nil)

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// SetRate makes later Advance(d) move the clock by d·rate, to model a clock
// running fast (rate > 1) or slow (rate < 1).
func (c *Clock) SetRate(rate float64) {
	c.mu.Lock()
	c.rate = rate
	c.mu.Unlock()
}

// Advance moves real time forward by d (the clock moves d·rate) and fires
// every timer that became due, in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(time.Duration(float64(d) * c.rate))
	now := c.now
	var due []*timer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		select {
		case t.ch <- now:
		default:
		}
	}
}

// NewTimer returns a timer that fires when the clock reaches Now()+d.
func (c *Clock) NewTimer(d time.Duration) lease.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

type timer struct {
	c  *Clock
	ch chan time.Time
	at time.Time
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, o := range t.c.timers {
		if o == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

func (t *timer) Reset(d time.Duration) bool {
	active := t.Stop()
	t.c.mu.Lock()
	t.at = t.c.now.Add(d)
	due := d <= 0
	if !due {
		t.c.timers = append(t.c.timers, t)
	}
	now := t.c.now
	t.c.mu.Unlock()
	if due {
		select {
		case t.ch <- now:
		default:
		}
	}
	return active
}
