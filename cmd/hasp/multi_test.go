package main

import (
	"strings"
	"testing"
)

// TestSequentialAndTxn runs put --sequential and txn against one cell.
func TestSequentialAndTxn(t *testing.T) {
	c := newTestCell(t)
	t.Run("PutSequential", func(t *testing.T) { testPutSequential(t, c) })
	t.Run("Txn", func(t *testing.T) { testTxn(t, c) })
	t.Run("TxnFails", func(t *testing.T) { testTxnFails(t, c) })
	t.Run("TxnBadInput", func(t *testing.T) { testTxnBadInput(t, c) })
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

func testTxn(t *testing.T, c *testCell) {
	c.ok(t, "", "put", "/ls/test/t-old", "x")
	in := `# set up a directory in one step
{"op":"create","path":"/ls/test/t","dir":true}
{"op":"create","path":"/ls/test/t/a","data":"1"}

{"op":"set","path":"/ls/test/t/a","data":"two","generation":1}
{"op":"create","path":"/ls/local/t/job-","sequential":true}
{"op":"check","path":"/ls/test/t-old","generation":1}
{"op":"delete","path":"/ls/test/t-old"}
`
	out := c.ok(t, in, "txn")
	want := "created /ls/test/t\ncreated /ls/test/t/a\nwrote /ls/test/t/a: 3 bytes, content generation 2\n" +
		"created /ls/test/t/job-0000000000\nchecked /ls/test/t-old: content generation 1\ndeleted /ls/test/t-old\n"
	if out != want {
		t.Fatalf("txn printed\n%s\nwant\n%s", out, want)
	}
	if got := c.ok(t, "", "cat", "/ls/test/t/a"); got != "two" {
		t.Fatalf("cat = %q", got)
	}
	objs := jsonLines(t, c.ok(t, `{"op":"set","path":"/ls/test/t/a","data":"3"}`+"\n"+`{"op":"check","path":"/ls/test/t"}`, "--json", "txn"))
	if len(objs) != 2 || objs[0]["op"] != "set" || objs[0]["content_generation"] != float64(3) || objs[1]["op"] != "check" ||
		objs[1]["is_dir"] != true {
		t.Fatalf("txn --json = %v", objs)
	}
}

// testTxnFails: a failing op names its input line, and nothing is applied.
func testTxnFails(t *testing.T, c *testCell) {
	c.ok(t, "", "put", "/ls/test/tf", "v1")
	in := `{"op":"create","path":"/ls/test/tf-new","data":"n"}
{"op":"set","path":"/ls/test/tf","data":"v2","generation":1}
{"op":"set","path":"/ls/test/tf","data":"v3","generation":1}
`
	r := hasp(t, in, c.flag, "txn")
	checkFailure(t, r, "line 3 (set /ls/test/tf)")
	if !strings.Contains(r.stderr, "generation mismatch") || r.stdout != "" {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	c.fails(t, "does not exist", "stat", "/ls/test/tf-new")
	if got := c.ok(t, "", "cat", "/ls/test/tf"); got != "v1" {
		t.Fatalf("cat after a failed txn = %q", got)
	}
}

// testTxnBadInput: malformed input is a usage error naming the line, and
// nothing is sent.
func testTxnBadInput(t *testing.T, c *testCell) {
	for in, want := range map[string]string{
		"":                   "no operations",
		"# only a comment\n": "no operations",
		"{\"op\":\"create\"": "line 1",
		"\n{\"op\":\"rename\",\"path\":\"/ls/test/x\"}":              "line 2: op \"rename\"",
		"{\"op\":\"set\",\"path\":\"/ls/test/x\",\"gen\":1}":         "unknown field",
		"{\"op\":\"set\",\"path\":\"x\"}":                            "line 1",
		"{\"op\":\"delete\",\"path\":\"/ls/test/x\",\"data\":\"d\"}": "data is for",
		"{\"op\":\"set\",\"path\":\"/ls/test/x\",\"dir\":true}":      "are for create",
	} {
		r := hasp(t, in, c.flag, "txn")
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("input %q: exit %d, stderr %q; want 2 and %q", in, r.code, r.stderr, want)
		}
	}
}
