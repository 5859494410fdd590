package main

import (
	"strings"
	"testing"
)

// TestBenchEvents runs a short events benchmark: every watcher gets every
// event.
func TestBenchEvents(t *testing.T) {
	c := newTestCell(t)
	r := hasp(t, "", c.flag, "--json", "bench", "events", "--watchers", "4", "--interval", "5ms", "--duration", "1s",
		"--warmup", "200ms")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	objs := jsonLines(t, r.stdout)
	if len(objs) != 1 {
		t.Fatalf("bench events --json printed %q", r.stdout)
	}
	s := objs[0]
	hasKeys(t, s, "workload", "watchers", "writes", "events", "expected_events", "missing_events", "errors",
		"p50_ms", "p90_ms", "p99_ms", "max_ms", "write_p50_ms", "write_p99_ms")
	if s["workload"] != "events" || s["writes"].(float64) < 10 || s["events"] != s["expected_events"] ||
		s["missing_events"] != 0.0 || s["errors"] != 0.0 || s["events"].(float64) != 4*s["writes"].(float64) {
		t.Fatalf("bench events summary %v", s)
	}
	if s["p50_ms"].(float64) > s["p99_ms"].(float64) || s["p50_ms"].(float64) < s["write_p50_ms"].(float64)/4 {
		t.Fatalf("latencies %v", s)
	}
	// The run's file is gone.
	if out := c.ok(t, "", "ls", "/ls/local/bench-events"); strings.TrimSpace(out) != "" {
		t.Fatalf("bench events left %q behind", out)
	}
	r = hasp(t, "", c.flag, "bench", "events", "--watchers", "0")
	if r.code != 2 {
		t.Fatalf("--watchers 0: exit %d", r.code)
	}
}
