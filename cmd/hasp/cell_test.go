package main

import (
	"strings"
	"testing"
	"time"
)

// TestWithCell runs every command against one shared three-replica cell.
func TestWithCell(t *testing.T) {
	c := newTestCell(t)
	t.Run("FileLifecycle", func(t *testing.T) { testFileLifecycle(t, c) })
	t.Run("PutCAS", func(t *testing.T) { testPutCAS(t, c) })
	t.Run("PutEphemeral", func(t *testing.T) { testPutEphemeral(t, c) })
	t.Run("Rm", func(t *testing.T) { testRm(t, c) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, c) })
	t.Run("JSON", func(t *testing.T) { testJSON(t, c) })
	t.Run("Status", func(t *testing.T) { testStatus(t, c) })
	t.Run("StatusJSON", func(t *testing.T) { testStatusJSON(t, c) })
	t.Run("StatusUnreachable", func(t *testing.T) { testStatusUnreachable(t, c) })
	t.Run("BenchWrite", func(t *testing.T) { testBench(t, c, "write", "per-client") })
	t.Run("BenchReadShared", func(t *testing.T) { testBench(t, c, "read", "shared") })
	t.Run("BenchHuman", func(t *testing.T) { testBenchHuman(t, c) })
}

func testFileLifecycle(t *testing.T, c *testCell) {
	c.ok(t, "", "mkdir", "/ls/test/life")
	if out := c.ok(t, "", "put", "/ls/test/life/a", "hello"); !strings.Contains(out, "created /ls/test/life/a") {
		t.Errorf("put (create) printed %q", out)
	}
	c.ok(t, "from stdin\n", "put", "/ls/local/life/b")
	c.ok(t, "dash", "put", "/ls/test/life/c", "-")
	if out := c.ok(t, "", "put", "/ls/test/life/a", "hello again"); !strings.Contains(out, "content generation 2") {
		t.Errorf("put (replace) printed %q", out)
	}
	for name, want := range map[string]string{"a": "hello again", "b": "from stdin\n", "c": "dash"} {
		if got := c.ok(t, "", "cat", "/ls/test/life/"+name); got != want {
			t.Errorf("cat %s = %q, want %q", name, got, want)
		}
	}
	if out := c.ok(t, "", "ls", "/ls/test/life"); out != "a\nb\nc\n" {
		t.Errorf("ls = %q", out)
	}
	if out := c.ok(t, "", "ls", "/ls/test"); !strings.Contains(out, "life/\n") {
		t.Errorf("ls /ls/test = %q, want life/", out)
	}
	if out := c.ok(t, "", "ls", "-l", "/ls/test/life"); !strings.Contains(out, "GENERATION") || strings.Count(out, "file") != 3 {
		t.Errorf("ls -l = %q", out)
	}
	if out := c.ok(t, "", "ls", "/ls/test/life/a"); out != "a\n" {
		t.Errorf("ls of a file = %q", out)
	}
	out := c.ok(t, "", "stat", "/ls/test/life/a")
	for _, want := range []string{"path:", "/ls/test/life/a", "content generation:", "size:", "11", "checksum:"} {
		if !strings.Contains(out, want) {
			t.Errorf("stat output lacks %q:\n%s", want, out)
		}
	}
}

func testPutCAS(t *testing.T, c *testCell) {
	c.ok(t, "", "put", "/ls/test/cas", "v1")
	c.ok(t, "", "put", "--if-generation", "1", "/ls/test/cas", "v2")
	c.fails(t, "generation", "put", "--if-generation", "1", "/ls/test/cas", "v3")
	if got := c.ok(t, "", "cat", "/ls/test/cas"); got != "v2" {
		t.Fatalf("after failed CAS: %q", got)
	}
	c.fails(t, "already exists", "put", "--if-generation", "0", "/ls/test/cas", "v4")
	c.ok(t, "", "put", "--if-generation", "0", "/ls/test/cas-new", "v1")
	c.fails(t, "does not exist", "put", "--if-generation", "5", "/ls/test/cas-absent", "v1")
}

func testPutEphemeral(t *testing.T, c *testCell) {
	objs := jsonLines(t, c.ok(t, "", "--json", "put", "--ephemeral", "/ls/test/eph", "x"))
	if len(objs) != 1 || objs[0]["ephemeral_owner"] == float64(0) || objs[0]["created"] != true {
		t.Fatalf("put --ephemeral --json = %v", objs)
	}
	// The command's session ended when it exited, and the node with it.
	c.fails(t, "does not exist", "stat", "/ls/test/eph")
	c.ok(t, "", "put", "/ls/test/perm", "x")
	c.fails(t, "already exists", "put", "--ephemeral", "/ls/test/perm", "y")
}

func testRm(t *testing.T, c *testCell) {
	c.ok(t, "", "mkdir", "/ls/test/rmdir")
	c.ok(t, "", "put", "/ls/test/rmdir/f", "x")
	c.fails(t, "not empty", "rm", "/ls/test/rmdir")
	c.ok(t, "", "rm", "/ls/test/rmdir/f")
	c.ok(t, "", "rm", "/ls/test/rmdir")
	c.fails(t, "does not exist", "rm", "/ls/test/rmdir")
	c.fails(t, "does not exist", "rm", "/ls/test/never-was")
}

func testErrors(t *testing.T, c *testCell) {
	c.ok(t, "", "mkdir", "/ls/test/errs")
	c.fails(t, "does not exist", "ls", "/ls/test/missing")
	c.fails(t, "does not exist", "cat", "/ls/test/missing")
	c.fails(t, "is a directory", "cat", "/ls/test/errs")
	c.fails(t, "is a directory", "put", "/ls/test/errs", "data")
	c.fails(t, "already exists", "mkdir", "/ls/test/errs")
	c.fails(t, "does not exist", "mkdir", "/ls/test/no/parent")
	c.fails(t, "another cell", "stat", "/ls/othercell/x")
}

var statKeys = []string{"path", "name", "instance", "content_generation", "lock_generation", "acl_generation",
	"checksum", "created_revision", "modified_revision", "ephemeral_owner", "children", "size", "is_dir"}

func testJSON(t *testing.T, c *testCell) {
	c.ok(t, "", "mkdir", "/ls/test/js")
	c.ok(t, "", "put", "/ls/test/js/one", "1")
	c.ok(t, "", "mkdir", "/ls/test/js/two")
	objs := jsonLines(t, c.ok(t, "", "--json", "ls", "/ls/test/js"))
	if len(objs) != 2 || objs[0]["name"] != "one" || objs[1]["path"] != "/ls/test/js/two" || objs[1]["is_dir"] != true {
		t.Fatalf("ls --json = %v", objs)
	}
	for _, o := range objs {
		hasKeys(t, o, statKeys...)
	}
	objs = jsonLines(t, c.ok(t, "", "--json", "stat", "/ls/test/js/one"))
	if len(objs) != 1 || objs[0]["size"] != float64(1) || objs[0]["content_generation"] != float64(1) {
		t.Fatalf("stat --json = %v", objs)
	}
	hasKeys(t, objs[0], statKeys...)
	objs = jsonLines(t, c.ok(t, "", "--json", "stat", "/ls/test/js"))
	if objs[0]["children"] != float64(2) || objs[0]["is_dir"] != true {
		t.Fatalf("stat --json of a directory = %v", objs)
	}
	objs = jsonLines(t, c.ok(t, "", "--json", "cat", "/ls/test/js/one"))
	if objs[0]["data"] != "MQ==" { // base64 of "1"
		t.Fatalf("cat --json = %v", objs)
	}
	objs = jsonLines(t, c.ok(t, "", "--json", "put", "/ls/test/js/one", "11"))
	if objs[0]["created"] != false || objs[0]["content_generation"] != float64(2) {
		t.Fatalf("put --json = %v", objs)
	}
	objs = jsonLines(t, c.ok(t, "", "--json", "rm", "/ls/test/js/one"))
	if objs[0]["deleted"] != true {
		t.Fatalf("rm --json = %v", objs)
	}
}

func testStatus(t *testing.T, c *testCell) {
	out := c.ok(t, "", "status")
	if strings.Count(out, "*") != 1 || !strings.Contains(out, "master") || !strings.Contains(out, "3 of 3 replicas answered") {
		t.Fatalf("status:\n%s", out)
	}
	for _, a := range c.Addrs() {
		if !strings.Contains(out, a) {
			t.Errorf("status lacks %s:\n%s", a, out)
		}
	}
}

func testStatusJSON(t *testing.T, c *testCell) {
	c.WaitMaster(t)
	objs := jsonLines(t, c.ok(t, "", "--json", "status"))
	masters, seen := 0, map[any]bool{}
	for _, o := range objs {
		hasKeys(t, o, "id", "address", "state", "term", "last_index", "applied_index", "commit_index",
			"leader_id", "sessions", "nodes", "follower_reads", "follower_behind")
		if o["state"] == "master" {
			masters++
		}
		seen[o["address"]] = true
	}
	if masters != 1 {
		t.Errorf("%d masters in %v", masters, objs)
	}
	for _, a := range c.Addrs() {
		if !seen[a] {
			t.Errorf("status --json lacks %s: %v", a, objs)
		}
	}
	// The master shows its lease: valid within a lease length of election.
	deadline := time.Now().Add(5 * time.Second)
	for !masterHasLease(t, c) {
		if time.Now().After(deadline) {
			t.Fatal("the master never reported a valid lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func masterHasLease(t *testing.T, c *testCell) bool {
	for _, o := range jsonLines(t, c.ok(t, "", "--json", "status")) {
		if o["state"] == "master" {
			ms, _ := o["lease_remaining_ms"].(float64)
			return ms > 0
		}
	}
	return false
}

func testStatusUnreachable(t *testing.T, c *testCell) {
	dead := deadAddr(t)
	flag := c.flag + "," + dead
	r := hasp(t, "", flag, "--json", "status")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	objs := jsonLines(t, r.stdout)
	if len(objs) != len(c.Addrs())+1 {
		t.Fatalf("status --json = %v", objs)
	}
	last := objs[len(objs)-1]
	if last["address"] != dead || last["state"] != "unreachable" || last["error"] == "" {
		t.Fatalf("unreachable replica shown as %v", last)
	}
	r = hasp(t, "", flag, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "unreachable") || !strings.Contains(r.stdout, "3 of 4 replicas answered") {
		t.Fatalf("status: exit %d\n%s", r.code, r.stdout)
	}
}

func testBench(t *testing.T, c *testCell, workload, sessions string) {
	out := c.ok(t, "", "--json", "bench", workload, "--clients", "2", "--duration", "300ms", "--warmup", "100ms",
		"--names", "20", "--size", "64", "--sessions", sessions)
	objs := jsonLines(t, out)
	if len(objs) != 1 {
		t.Fatalf("bench --json printed %q", out)
	}
	s := objs[0]
	hasKeys(t, s, "ops", "errors", "ops_per_sec", "p50_ms", "p99_ms", "max_ms")
	if s["ops"].(float64) <= 0 || s["errors"] != float64(0) || s["workload"] != workload || s["sessions"] != sessions {
		t.Fatalf("bench summary %v", s)
	}
	if s["p50_ms"].(float64) > s["p99_ms"].(float64) || s["p99_ms"].(float64) > s["max_ms"].(float64) {
		t.Fatalf("percentiles out of order: %v", s)
	}
}

func testBenchHuman(t *testing.T, c *testCell) {
	r := hasp(t, "", c.flag, "bench", "read", "--clients", "1", "--duration", "1100ms", "--warmup", "0s", "--names", "5")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"ops/s", "p50", "p99", "max", "errors   0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("bench output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "bench read:") { // progress, once a second
		t.Errorf("no progress line on stderr: %q", r.stderr)
	}
}
