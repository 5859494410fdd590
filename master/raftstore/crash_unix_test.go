//go:build unix

package raftstore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Environment understood by the child half of TestCrashRecovery.
const (
	envCrashDir  = "RAFTSTORE_CRASH_DIR"
	envCrashMode = "RAFTSTORE_CRASH_MODE" // "exit", "selfkill" or "forever"
	crashBatches = 40
	crashBatch   = 16
)

// TestCrashRecovery re-executes the test binary as a child that stores
// logs with SyncWrites and reports each batch on stdout once StoreLogs has
// returned, then dies without Close: os.Exit, SIGKILL of itself, or SIGKILL
// from the parent while it is still writing. The parent then reopens the
// directory and requires every reported log to be present and intact.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		crashChild(dir, os.Getenv(envCrashMode))
		return
	}
	for _, mode := range []string{"exit", "selfkill", "forever"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			stored := runCrashChild(t, dir, mode)
			if len(stored) == 0 {
				t.Fatal("child reported no stored logs")
			}
			s := openTest(t, dir)
			for _, idx := range stored {
				mustLog(t, s, makeLog(idx, (idx-1)/crashBatch+1))
			}
			if v, err := s.GetUint64([]byte("LastBatch")); err != nil || v == 0 {
				t.Fatalf("LastBatch = %d, %v", v, err)
			}
			t.Logf("verified %d logs after %s", len(stored), mode)
		})
	}
}

// runCrashChild starts the child and returns the indexes it reported.
func runCrashChild(t *testing.T, dir, mode string) []uint64 {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashMode+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stored, readErr := readReports(out, mode, cmd.Process)
	waitErr := cmd.Wait()
	if readErr != nil {
		t.Fatalf("reading child output: %v; stderr:\n%s", readErr, stderr.String())
	}
	checkChildExit(t, mode, waitErr, stderr.String())
	return stored
}

// readReports parses "stored lo hi" lines. In "forever" mode it kills the
// child after half the batches, while the child is still writing.
func readReports(r io.Reader, mode string, p *os.Process) ([]uint64, error) {
	var stored []uint64
	sc := bufio.NewScanner(r)
	batches := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "stored" {
			continue
		}
		lo, err1 := strconv.ParseUint(f[1], 10, 64)
		hi, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad report %q", sc.Text())
		}
		for i := lo; i <= hi; i++ {
			stored = append(stored, i)
		}
		if batches++; mode == "forever" && batches == crashBatches/2 {
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	return stored, sc.Err()
}

func checkChildExit(t *testing.T, mode string, err error, stderr string) {
	t.Helper()
	if mode == "exit" {
		if err != nil {
			t.Fatalf("child: %v; stderr:\n%s", err, stderr)
		}
		return
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatalf("child in mode %s: err = %v, want SIGKILL; stderr:\n%s", mode, err, stderr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child in mode %s: %v, want SIGKILL; stderr:\n%s", mode, err, stderr)
	}
}

// crashChild is the child process body; it never returns normally.
func crashChild(dir, mode string) {
	s, err := Open(DefaultOptions(dir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	for b := uint64(0); mode == "forever" || b < crashBatches; b++ {
		lo := b*crashBatch + 1
		if err := s.StoreLogs(makeLogs(lo, lo+crashBatch-1, b+1)); err != nil {
			fmt.Fprintln(os.Stderr, "child store:", err)
			os.Exit(3)
		}
		if err := s.SetUint64([]byte("LastBatch"), b+1); err != nil {
			fmt.Fprintln(os.Stderr, "child set:", err)
			os.Exit(3)
		}
		// os.Stdout is unbuffered: the line is out once Fprintf returns.
		fmt.Fprintf(os.Stdout, "stored %d %d\n", lo, lo+crashBatch-1)
	}
	if mode == "selfkill" {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	os.Exit(0) // deliberately without s.Close()
}
