package lease

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestMasterLength(t *testing.T) {
	tests := []struct {
		hb, delta, want time.Duration
	}{
		{500 * time.Millisecond, 20 * time.Millisecond, 479500 * time.Microsecond},
		{time.Second, 0, 999 * time.Millisecond},
		{10 * time.Millisecond, 20 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		if got := MasterLength(tt.hb, DefaultEpsilon, tt.delta); got != tt.want {
			t.Errorf("MasterLength(%v, ε, %v) = %v, want %v", tt.hb, tt.delta, got, tt.want)
		}
	}
	if got := RestartDelay(time.Second, DefaultEpsilon); got != 1001*time.Millisecond {
		t.Errorf("RestartDelay = %v", got)
	}
}

func TestMasterLease(t *testing.T) {
	const L = 100 * time.Millisecond
	type step struct {
		op        string // start, renew, drop, check
		term      uint64
		ms        int // instant
		wantValid bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"zero value holds nothing", []step{{"check", 0, 0, false}, {"check", 1, 0, false}}},
		{"no lease before a renewal", []step{{"start", 1, 0, false}, {"check", 1, 1, false}}},
		{"renewal gives L from send time", []step{
			{"start", 1, 0, false}, {"renew", 1, 10, false},
			{"check", 1, 50, true}, {"check", 1, 109, true}, {"check", 1, 110, false}}},
		{"must wait out notBefore", []step{
			{"start", 2, 100, false}, {"renew", 2, 0, false}, {"check", 2, 50, false}, {"check", 2, 99, false}}},
		{"older send time does not shorten", []step{
			{"start", 1, 0, false}, {"renew", 1, 50, false}, {"renew", 1, 10, false}, {"check", 1, 140, true}}},
		{"other term never valid", []step{
			{"start", 1, 0, false}, {"renew", 1, 0, false}, {"check", 2, 10, false}, {"renew", 2, 0, false}, {"check", 2, 10, false}}},
		{"drop ends at once", []step{
			{"start", 1, 0, false}, {"renew", 1, 0, false}, {"drop", 1, 0, false}, {"check", 1, 10, false}, {"renew", 1, 5, false}, {"check", 1, 10, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Master
			for i, s := range tt.steps {
				switch s.op {
				case "start":
					m.Start(s.term, at(s.ms))
				case "renew":
					m.Renewed(s.term, at(s.ms), L)
				case "drop":
					m.Drop()
				case "check":
					if got := m.Valid(s.term, at(s.ms)); got != s.wantValid {
						t.Fatalf("step %d: Valid(%d, %dms) = %v, want %v", i, s.term, s.ms, got, s.wantValid)
					}
					if rem := m.Remaining(s.term, at(s.ms)); (rem > 0) != s.wantValid {
						t.Fatalf("step %d: Remaining = %v", i, rem)
					}
				}
			}
		})
	}
}

func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("HASP_SEED"); v != "" {
		s, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (rerun with HASP_SEED=%d)", s, s)
	return s
}

// TestMasterLeaseMatchesNaive runs random operations against Master and a
// naive model that remembers every renewal.
func TestMasterLeaseMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 1))
	const L = 50 * time.Millisecond
	for round := 0; round < 200; round++ {
		var m Master
		var term uint64
		var notBefore time.Time
		var renewals []time.Time
		for i := 0; i < 50; i++ {
			now := at(rng.IntN(1000))
			switch rng.IntN(4) {
			case 0:
				term++
				notBefore = at(rng.IntN(1000))
				renewals = nil
				m.Start(term, notBefore)
			case 1:
				m.Renewed(term, now, L)
				if term != 0 {
					renewals = append(renewals, now)
				}
			case 2:
				if rng.IntN(5) == 0 {
					m.Drop()
					term, renewals = 0, nil
				}
			default:
				want := false
				for _, r := range renewals {
					if term != 0 && !now.Before(notBefore) && now.Before(r.Add(L)) {
						want = true
					}
				}
				if got := m.Valid(term, now); got != want {
					t.Fatalf("round %d op %d: Valid = %v, naive model says %v", round, i, got, want)
				}
			}
		}
	}
}

// TestClientEndIsConservative checks the session-lease safety property:
// whatever the message delays and however the two clocks' rates differ
// (within the relative bound ε), the client's lease ends, in real time, no
// later than the master's.
func TestClientEndIsConservative(t *testing.T) {
	rng := rand.New(rand.NewPCG(seed(t), 2))
	const eps = DefaultEpsilon
	for i := 0; i < 100000; i++ {
		ttl := time.Duration(1+rng.IntN(60_000)) * time.Millisecond
		heldM := time.Duration(rng.IntN(int(ttl)))            // as the master's clock measured it
		toMaster := time.Duration(rng.IntN(int(time.Second))) // real
		rateM := 1 + (rng.Float64()*2-1)*eps/2                // master clock rate vs real
		rateC := rateM * (1 + (rng.Float64()*2-1)*eps)        // client within ε of the master
		real := func(d time.Duration, rate float64) float64 { return float64(d) / rate }
		replyReal := float64(toMaster) + real(heldM, rateM) // since the client sent
		masterEndReal := replyReal + real(ttl, rateM)
		clientEnd := ClientEnd(t0, heldM, ttl, eps).Sub(t0) // client clock units
		if clientEndReal := real(clientEnd, rateC); clientEndReal > masterEndReal+1 {
			t.Fatalf("case %d: client lease ends %.0fns after the master's (ttl %v held %v rates %v/%v)",
				i, clientEndReal-masterEndReal, ttl, heldM, rateM, rateC)
		}
	}
}

func TestKeepAliveHold(t *testing.T) {
	tests := []struct {
		now, end int
		ttl      time.Duration
		want     time.Duration
	}{
		{0, 12000, 12 * time.Second, 9 * time.Second},
		{0, 3000, 3 * time.Second, 2 * time.Second},
		{0, 500, 500 * time.Millisecond, 0},
		{5000, 4000, 12 * time.Second, 0},
		{0, 30000, 12 * time.Second, 9 * time.Second}, // lengthened after a fail-over
	}
	for _, tt := range tests {
		if got := KeepAliveHold(at(tt.now), at(tt.end), tt.ttl); got != tt.want {
			t.Errorf("KeepAliveHold(%d, %d, %v) = %v, want %v", tt.now, tt.end, tt.ttl, got, tt.want)
		}
	}
}

func TestClientState(t *testing.T) {
	end := at(1000)
	tests := []struct {
		now  int
		want State
	}{{0, Safe}, {999, Safe}, {1000, Jeopardy}, {45999, Jeopardy}, {46000, Expired}}
	for _, tt := range tests {
		if got := ClientState(at(tt.now), end, 45*time.Second); got != tt.want {
			t.Errorf("ClientState(%d) = %v, want %v", tt.now, got, tt.want)
		}
	}
}
