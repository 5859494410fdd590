package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchFailover runs one real fail-over: five haspd processes, kill -9
// of the master, and checks that the writers saw no error.
func TestBenchFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five haspd processes")
	}
	bin := filepath.Join(t.TempDir(), "haspd")
	if out, err := exec.Command("go", "build", "-o", bin, "../haspd").CombinedOutput(); err != nil {
		t.Fatalf("build haspd: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "failover", "--haspd", bin, "--runs", "1", "--settle", "500ms", "--json"}, nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var s failoverSummary
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if len(s.Runs) != 1 || s.Writes == 0 || s.Errors != 0 {
		t.Fatalf("summary %+v", s)
	}
	t.Logf("fail-over took %.0f ms", s.Runs[0])
}
