package main

import (
	"strings"
	"testing"
)

// TestSequentialAndTxn runs put --sequential and txn against one cell.
func TestSequentialAndTxn(t *testing.T) {
	c := newTestCell(t)
	t.Run("PutSequential", func(t *testing.T) { testPutSequential(t, c) })
}

func testPutSequential(t *testing.T, c *testCell) {
	c.ok(t, "", "mkdir", "/ls/test/q")
	first := c.ok(t, "", "put", "--sequential", "/ls/test/q/job-", "one")
	second := c.ok(t, "two\n", "put", "--sequential", "/ls/local/q/job-")
	if first != "/ls/test/q/job-0000000000\n" || second != "/ls/test/q/job-0000000001\n" {
		t.Fatalf("put --sequential printed %q then %q", first, second)
	}
	if out := c.ok(t, "", "cat", strings.TrimSpace(second)); out != "two\n" {
		t.Fatalf("cat %s = %q", second, out)
	}
	objs := jsonLines(t, c.ok(t, "", "--json", "put", "--sequential", "--ephemeral", "/ls/test/q/member-", "x"))
	if len(objs) != 1 || objs[0]["path"] != "/ls/test/q/member-0000000002" || objs[0]["ephemeral_owner"] == float64(0) {
		t.Fatalf("put --sequential --ephemeral --json = %v", objs)
	}
	// The ephemeral node went with the command's session.
	c.fails(t, "does not exist", "stat", "/ls/test/q/member-0000000002")
	c.fails(t, "does not exist", "put", "--sequential", "/ls/test/none/job-", "x")
	r := hasp(t, "", c.flag, "put", "--sequential", "--if-generation", "0", "/ls/test/q/job-", "x")
	if r.code != 2 || !strings.Contains(r.stderr, "--sequential") {
		t.Fatalf("--sequential with --if-generation: exit %d, stderr %q", r.code, r.stderr)
	}
}
