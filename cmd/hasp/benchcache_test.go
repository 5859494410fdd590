package main

import (
	"strings"
	"testing"
)

// TestBenchCache runs the cache benchmarks (bench read --cache, bench
// invalidate, bench sessions) with tiny counts against a three-replica
// cell and checks their output is sane.
func TestBenchCache(t *testing.T) {
	c := newTestCell(t)
	t.Run("ReadCached", func(t *testing.T) { testBenchReadCache(t, c, "on", "batch") })
	t.Run("ReadUncached", func(t *testing.T) { testBenchReadCache(t, c, "off", "op") })
	t.Run("ReadHuman", func(t *testing.T) { testBenchReadCacheHuman(t, c) })
	t.Run("ReadFollower", func(t *testing.T) { testBenchReadFollower(t, c) })
	t.Run("Invalidate", func(t *testing.T) { testBenchInval(t, c) })
	t.Run("InvalidateHuman", func(t *testing.T) { testBenchInvalHuman(t, c) })
	t.Run("Sessions", func(t *testing.T) { testBenchSessions(t, c) })
	t.Run("SessionsHuman", func(t *testing.T) { testBenchSessionsHuman(t, c) })
}

func num(t *testing.T, m map[string]any, k string) float64 {
	t.Helper()
	v, ok := m[k].(float64)
	if !ok {
		t.Fatalf("%q = %v in %v: want a number", k, m[k], m)
	}
	return v
}

func ordered(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for i := 1; i < len(keys); i++ {
		if num(t, m, keys[i-1]) > num(t, m, keys[i]) {
			t.Fatalf("%s > %s in %v", keys[i-1], keys[i], m)
		}
	}
}

func testBenchReadCache(t *testing.T, c *testCell, cache, timing string) {
	out := c.ok(t, "", "--json", "bench", "read", "--clients", "2", "--sessions", "shared", "--duration", "300ms",
		"--warmup", "100ms", "--names", "10", "--cache", cache, "--timing", timing, "--batch", "20")
	objs := jsonLines(t, out)
	if len(objs) != 1 {
		t.Fatalf("bench read --json printed %q", out)
	}
	s := objs[0]
	hasKeys(t, s, "ops", "errors", "ops_per_sec", "p50_ms", "p99_ms", "cache", "timing", "cache_hits", "cache_misses",
		"loadavg_start", "loadavg_end")
	if num(t, s, "ops") <= 0 || num(t, s, "errors") != 0 || s["cache"] != cache || s["timing"] != timing {
		t.Fatalf("bench read summary %v", s)
	}
	ordered(t, s, "p50_ms", "p99_ms", "max_ms")
	hits := num(t, s, "cache_hits")
	if cache == "on" && (hits < num(t, s, "ops") || num(t, s, "cache_misses") < 10) {
		// Every measured read hit; the ten first reads missed.
		t.Fatalf("cached reads did not hit the cache: %v", s)
	}
	if cache == "off" && (hits != 0 || num(t, s, "cache_misses") != 0) {
		t.Fatalf("--cache off used a cache: %v", s)
	}
}

func testBenchReadCacheHuman(t *testing.T, c *testCell) {
	out := c.ok(t, "", "bench", "read", "--clients", "1", "--duration", "300ms", "--warmup", "0s", "--names", "3",
		"--timing", "batch", "--batch", "10")
	for _, want := range []string{"ops/s", "errors   0", "cache    on,", "batches of 10 reads timed", "latency", "load"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench read output lacks %q:\n%s", want, out)
		}
	}
}

func testBenchReadFollower(t *testing.T, c *testCell) {
	out := c.ok(t, "", "--json", "bench", "read", "--follower", "--clients", "2", "--duration", "300ms",
		"--warmup", "100ms", "--names", "5")
	objs := jsonLines(t, out)
	if len(objs) != 1 {
		t.Fatalf("bench read --follower --json printed %q", out)
	}
	s := objs[0]
	if num(t, s, "ops") <= 0 || num(t, s, "errors") != 0 || s["cache"] != "off" || s["follower"] != true ||
		num(t, s, "follower_replica_reads") == 0 || num(t, s, "cache_hits") != 0 ||
		num(t, s, "follower_replica_reads")+num(t, s, "follower_master_reads") < num(t, s, "ops") {
		t.Fatalf("bench read --follower summary %v; want reads answered by read replicas, no cache", s)
	}
	human := c.ok(t, "", "bench", "read", "--follower", "--clients", "1", "--duration", "200ms", "--warmup", "0s", "--names", "3")
	if !strings.Contains(human, "reads answered by read replicas") {
		t.Errorf("bench read --follower output lacks the follower line:\n%s", human)
	}
}

func testBenchInval(t *testing.T, c *testCell) {
	const sessions, writes = 5, 4
	out := c.ok(t, "", "--json", "bench", "invalidate", "--sessions", "5", "--writes", "4", "--size", "16")
	objs := jsonLines(t, out)
	if len(objs) != 1 {
		t.Fatalf("bench invalidate --json printed %q", out)
	}
	s := objs[0]
	hasKeys(t, s, "workload", "sessions", "file", "phases", "invalidations_received", "bench_rss_mb")
	phases, _ := s["phases"].([]any)
	if s["workload"] != "invalidate" || num(t, s, "sessions") != sessions || len(phases) != 2 {
		t.Fatalf("bench invalidate summary %v", s)
	}
	for i, want := range []string{"all", "none"} {
		p := phases[i].(map[string]any)
		hasKeys(t, p, "recache", "writes", "errors", "targets_min", "targets_mean", "p50_ms", "p99_ms", "max_ms",
			"stale_reads")
		if p["recache"] != want || num(t, p, "writes") != writes || num(t, p, "errors") != 0 ||
			num(t, p, "stale_reads") != 0 || num(t, p, "read_errors") != 0 {
			t.Fatalf("phase %d: %v", i, p)
		}
		ordered(t, p, "p50_ms", "p90_ms", "p99_ms", "max_ms")
		// Each write of the first phase invalidates every session's copy;
		// in the second nobody caches the file.
		if want == "all" && num(t, p, "targets_min") < sessions || want == "none" && num(t, p, "targets_mean") != 0 {
			t.Fatalf("phase %s: targets %v", want, p)
		}
	}
	if got := num(t, s, "invalidations_received"); got < sessions*writes {
		t.Fatalf("sessions received %v invalidations, want at least %d", got, sessions*writes)
	}
	// The run's file is gone.
	if out := c.ok(t, "", "ls", benchInvalRoot); out != "" {
		t.Fatalf("bench invalidate left %q behind", out)
	}
}

func testBenchInvalHuman(t *testing.T, c *testCell) {
	out := c.ok(t, "", "bench", "invalidate", "--sessions", "3", "--writes", "2", "--recache", "all")
	for _, want := range []string{"bench invalidate: 3 caching sessions", "RECACHE", "P99", "invalidations received 6"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench invalidate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\nnone") {
		t.Errorf("--recache all ran the none phase:\n%s", out)
	}
}

func testBenchSessions(t *testing.T, c *testCell) {
	out := c.ok(t, "", "--json", "bench", "sessions", "--count", "6", "--duration", "1s", "--sample", "300ms", "--source-addrs", "3")
	objs := jsonLines(t, out)
	if len(objs) != 1 {
		t.Fatalf("bench sessions --json printed %q", out)
	}
	s := objs[0]
	hasKeys(t, s, "count", "made", "live_end", "jeopardy_events", "expired_events", "master_pid",
		"master_cpu_cores_hold", "master_rss_made_mb", "bench_rss_made_mb", "bench_goroutines", "loadavg_end")
	if num(t, s, "made") != 6 || num(t, s, "live_end") != 6 || num(t, s, "expired_events") != 0 ||
		num(t, s, "dial_errors") != 0 || num(t, s, "hold_s") < 1 {
		t.Fatalf("bench sessions summary %v", s)
	}
	// The test cell runs in this process: it is the master's process.
	if num(t, s, "master_pid") <= 0 || num(t, s, "master_rss_made_mb") <= 0 || num(t, s, "master_cpu_cores_hold") < 0 {
		t.Fatalf("master process not measured: %v", s)
	}
	if num(t, s, "master_sessions_made") < 6 || num(t, s, "bench_goroutines") < 6 {
		t.Fatalf("bench sessions summary %v", s)
	}
}

func testBenchSessionsHuman(t *testing.T, c *testCell) {
	r := hasp(t, "", c.flag, "bench", "sessions", "--count", "3", "--duration", "700ms", "--sample", "300ms")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"3 of 3 sessions made", "alive at the end  3", "0 expired", "master CPU", "master RSS"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench sessions output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "bench sessions:") { // progress every --sample
		t.Errorf("no progress line on stderr: %q", r.stderr)
	}
}

func TestBenchCacheUsage(t *testing.T) {
	cell := "--cell=" + deadAddr(t)
	for _, args := range [][]string{
		{cell, "bench", "read", "--cache", "maybe"},
		{cell, "bench", "read", "--timing", "sometimes"},
		{cell, "bench", "read", "--batch", "0"},
		{cell, "bench", "read", "--follower", "--cache", "on"},
		{cell, "bench", "invalidate", "--sessions", "0"},
		{cell, "bench", "invalidate", "--writes", "0"},
		{cell, "bench", "invalidate", "--recache", "some"},
		{cell, "bench", "invalidate", "--size", "4"},
		{cell, "bench", "sessions", "--count", "0"},
		{cell, "bench", "sessions", "--sample", "0s"},
		{cell, "bench", "sessions", "extra"},
	} {
		r := hasp(t, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
}
