package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchFloor runs a small floor measurement with the peer in this
// process, and checks what it reports.
func TestBenchFloor(t *testing.T) {
	r := hasp(t, "", "--json", "bench", "floor", "--sessions", "20", "--rounds", "5", "--in-process")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	checkFloorLines(t, r.stdout, "in-process", 20)

	r = hasp(t, "", "bench", "floor", "--sessions", "3", "--rounds", "2", "--in-process", "--transport", "yamux")
	if r.code != 0 || !strings.Contains(r.stdout, "yamux") || strings.Contains(r.stdout, "tcp") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, bad := range [][]string{{"--sessions", "0"}, {"--rounds", "0"}, {"--transport", "udp"}, {"--size", "0"}} {
		if r := hasp(t, "", append([]string{"bench", "floor", "--in-process"}, bad...)...); r.code != 2 {
			t.Errorf("%v: exit %d, stderr %q", bad, r.code, r.stderr)
		}
	}
}

// TestBenchFloorProcess runs the floor as users do, with the peer side in
// another hasp process.
func TestBenchFloorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hasp")
	}
	bin := filepath.Join(t.TempDir(), "hasp")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build hasp: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--json", "bench", "floor", "--sessions", "50", "--rounds", "5")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	checkFloorLines(t, stdout.String(), "process", 50)
}

func checkFloorLines(t *testing.T, out, peer string, sessions int) {
	t.Helper()
	var seen []string
	for line := range strings.Lines(out) {
		var r floorResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		if r.Workload != "floor" || r.Peer != peer || r.Sessions != sessions || r.Rounds != 5 ||
			r.P50Ms <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs || r.PerSessionUs <= 0 {
			t.Errorf("result %+v", r)
		}
		seen = append(seen, r.Transport)
	}
	if strings.Join(seen, ",") != strings.Join(floorTransports, ",") {
		t.Errorf("transports %v, want %v", seen, floorTransports)
	}
}
