package leasetest

import (
	"testing"
	"time"
)

func TestClockTimers(t *testing.T) {
	start := time.Unix(0, 0)
	c := NewClock(start)
	a := c.NewTimer(10 * time.Millisecond)
	b := c.NewTimer(30 * time.Millisecond)
	c.Advance(10 * time.Millisecond)
	select {
	case <-a.C():
	default:
		t.Fatal("timer a did not fire at its time")
	}
	select {
	case <-b.C():
		t.Fatal("timer b fired early")
	default:
	}
	if !b.Stop() {
		t.Fatal("Stop of an active timer returned false")
	}
	c.Advance(time.Second)
	select {
	case <-b.C():
		t.Fatal("stopped timer fired")
	default:
	}
	c.SetRate(2)
	c.Advance(time.Second)
	if got := c.Now().Sub(start); got != 3010*time.Millisecond {
		t.Fatalf("Now after skewed advance = %v", got)
	}
}
