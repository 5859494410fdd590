package leasetest

import (
	"testing"
	"time"

	"github.com/haspcell/hasp/lease"
)

func TestSkewedClockRate(t *testing.T) {
	tests := []struct {
		name string
		rate float64
	}{
		{"true", 1},
		{"fast", 2},
		{"slow", 0.5},
		{"within epsilon", 1 - lease.DefaultEpsilon},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewSkewedClock(tt.rate)
			realStart, clockStart := time.Now(), c.Now()
			time.Sleep(100 * time.Millisecond)
			clockElapsed, realElapsed := c.Now().Sub(clockStart), time.Since(realStart)
			// Now is read after time.Now above and before time.Since: the
			// clock's elapsed time lies within rate × those bounds (less
			// a scheduling margin).
			lo := time.Duration(float64(realElapsed-20*time.Millisecond) * tt.rate)
			hi := time.Duration(float64(realElapsed) * tt.rate)
			if clockElapsed < lo || clockElapsed > hi {
				t.Errorf("clock moved %v in %v real at rate %v; want in [%v, %v]", clockElapsed, realElapsed, tt.rate, lo, hi)
			}
		})
	}
}

func TestSkewedClockTimer(t *testing.T) {
	for _, rate := range []float64{0.5, 2} {
		c := NewSkewedClock(rate)
		const d = 100 * time.Millisecond
		start, clockStart := time.Now(), c.Now()
		tm := c.NewTimer(d)
		<-tm.C()
		realElapsed := time.Since(start)
		want := time.Duration(float64(d) / rate)
		if realElapsed < want || realElapsed > want+100*time.Millisecond {
			t.Errorf("rate %v: timer of %v fired after %v real, want about %v", rate, d, realElapsed, want)
		}
		if got := c.Now().Sub(clockStart); got < d {
			t.Errorf("rate %v: timer fired when the clock had moved only %v", rate, got)
		}
		if tm.Reset(time.Hour) || !tm.Stop() {
			t.Errorf("rate %v: Reset/Stop report the wrong activity", rate)
		}
	}
}

func TestSkewedClockSetRateIsContinuous(t *testing.T) {
	c := NewSkewedClock(3)
	time.Sleep(20 * time.Millisecond)
	before := c.Now()
	c.SetRate(0.25)
	after := c.Now()
	if after.Before(before) || after.Sub(before) > 5*time.Millisecond {
		t.Fatalf("SetRate jumped the clock from %v to %v", before, after)
	}
	if c.Rate() != 0.25 {
		t.Fatalf("Rate = %v", c.Rate())
	}
	prev := after
	for range 1000 {
		now := c.Now()
		if now.Before(prev) {
			t.Fatalf("clock went back from %v to %v", prev, now)
		}
		prev = now
	}
}

func TestSkewedClockRejectsBadRate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewSkewedClock(0) did not panic")
		}
	}()
	NewSkewedClock(0)
}
