package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/haspcell/hasp/master/mastertest"
)

// TestMain checks that hasp leaves no goroutine behind: every command
// closes its clients and stops its progress printer.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// badger's and raft's background goroutines end asynchronously after Close.
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*Cache[...]).processItems"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/badger/v4/y.(*WaterMark).process"),
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*NetworkTransport).listen"),
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// result is one in-process run of hasp.
type result struct {
	stdout, stderr string
	code           int
}

// hasp runs the command line args with stdin as its input.
func hasp(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{out.String(), errb.String(), code}
}

// testCell is a running cell and the --cell flag that reaches it.
type testCell struct {
	*mastertest.Cell
	flag string
}

func newTestCell(t *testing.T) *testCell {
	t.Helper()
	cell := mastertest.New(t, mastertest.Options{N: 3})
	cell.WaitMaster(t)
	return &testCell{cell, "--cell=" + strings.Join(cell.Addrs(), ",")}
}

// ok runs hasp against the cell and fails the test unless it exits 0.
func (c *testCell) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := hasp(t, stdin, append([]string{c.flag}, args...)...)
	if r.code != 0 {
		t.Fatalf("hasp %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	return r.stdout
}

// fails runs hasp against the cell and checks it exits 1 with one line on
// stderr that contains want.
func (c *testCell) fails(t *testing.T, want string, args ...string) {
	t.Helper()
	r := hasp(t, "", append([]string{c.flag}, args...)...)
	checkFailure(t, r, want)
}

func checkFailure(t *testing.T, r result, want string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (stdout %q, stderr %q)", r.code, r.stdout, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hasp: ") {
		t.Fatalf("stderr %q: want one line starting \"hasp: \"", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q does not mention %q", r.stderr, want)
	}
}

// jsonLines parses output of one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}

func hasKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %v lacks %q", m, k)
		}
	}
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUsageErrors(t *testing.T) {
	cell := "--cell=" + deadAddr(t)
	tests := []struct {
		name string
		args []string
	}{
		{"unknown command", []string{cell, "frobnicate"}},
		{"unknown flag", []string{cell, "ls", "--frob", "/ls/x/y"}},
		{"missing arg", []string{cell, "ls"}},
		{"extra arg", []string{cell, "stat", "/ls/x/a", "/ls/x/b"}},
		{"put too many args", []string{cell, "put", "/ls/x/a", "b", "c"}},
		{"status args", []string{cell, "status", "extra"}},
		{"bad timeout", []string{cell, "--timeout", "soon", "status"}},
		{"zero timeout", []string{cell, "--timeout", "0s", "status"}},
		{"empty cell", []string{"--cell", ",", "status"}},
		{"bad name", []string{cell, "cat", "/etc/passwd"}},
		{"bad generation", []string{cell, "put", "--if-generation", "-1", "/ls/x/a", "b"}},
		{"ephemeral CAS", []string{cell, "put", "--ephemeral", "--if-generation", "3", "/ls/x/a", "b"}},
		{"bench without workload", []string{cell, "bench"}},
		{"bench unknown workload", []string{cell, "bench", "delete"}},
		{"bench bad sessions", []string{cell, "bench", "write", "--sessions", "some"}},
		{"bench zero clients", []string{cell, "bench", "read", "--clients", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hasp(t, "", tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "hasp: ") || !strings.Contains(r.stderr, "--help' for usage") {
				t.Fatalf("stderr %q: want the error and a usage hint", r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	r := hasp(t, "", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, c := range []string{"ls", "stat", "cat", "mkdir", "rm", "put", "status", "bench"} {
		if !strings.Contains(r.stdout, "\n  "+c+" ") {
			t.Errorf("help does not list %q:\n%s", c, r.stdout)
		}
	}
	r = hasp(t, "", "put", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "disappears when the command's session ends") {
		t.Errorf("put --help: exit %d, %q", r.code, r.stdout)
	}
}

// TestNoCell covers a cell that cannot be reached at all.
func TestNoCell(t *testing.T) {
	dead := deadAddr(t)
	t.Run("ls", func(t *testing.T) {
		r := hasp(t, "", "--cell", dead, "--timeout", "300ms", "ls", "/ls/local")
		checkFailure(t, r, "cannot reach a master")
	})
	t.Run("status", func(t *testing.T) {
		r := hasp(t, "", "--cell", dead, "--json", "status")
		checkFailure(t, r, "no replica answered")
		objs := jsonLines(t, r.stdout)
		if len(objs) != 1 || objs[0]["state"] != "unreachable" || objs[0]["address"] != dead || objs[0]["error"] == "" {
			t.Fatalf("status --json = %v", objs)
		}
	})
	t.Run("HASP_CELL", func(t *testing.T) {
		t.Setenv("HASP_CELL", dead)
		r := hasp(t, "", "status")
		if r.code != 1 || !strings.Contains(r.stdout, dead) || !strings.Contains(r.stdout, "unreachable") {
			t.Fatalf("status with HASP_CELL: exit %d, stdout %q", r.code, r.stdout)
		}
	})
}
