package main

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/haspcell/hasp/master"
	"github.com/haspcell/hasp/master/mastertest"
)

func TestWatch(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Tune: func(cfg *master.Config) { cfg.EventHistory = 16 }})
	cell.WaitMaster(t)
	c := &testCell{cell, "--cell=" + strings.Join(cell.Addrs(), ",")}
	c.ok(t, "", "mkdir", "/ls/test/w")

	// Three events, then exit (--count); the watch starts before the writes.
	done := make(chan result, 1)
	go func() { done <- hasp(t, "", c.flag, "watch", "--recursive", "--count", "3", "/ls/test/w") }()
	// The watch has started once a Watch waits at the master.
	waitUntil(t, func() bool { return cell.Replica(cell.WaitMaster(t)).Server().FSM().EventWaiters() > 0 })
	c.ok(t, "", "put", "/ls/test/w/a", "one")
	c.ok(t, "", "put", "/ls/test/w/a", "two")
	c.ok(t, "", "rm", "/ls/test/w/a")
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("hasp watch did not exit after --count events")
	}
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	objs := jsonLines(t, r.stdout)
	if len(objs) != 3 {
		t.Fatalf("%d lines: %q", len(objs), r.stdout)
	}
	for i, kind := range []string{"created", "modified", "deleted"} {
		hasKeys(t, objs[i], "revision", "kind", "path", "stat")
		if objs[i]["kind"] != kind || objs[i]["path"] != "/ls/test/w/a" {
			t.Errorf("line %d: %v, want %s of /ls/test/w/a", i, objs[i], kind)
		}
	}
	st := objs[1]["stat"].(map[string]any)
	if st["content_generation"] != 2.0 || st["size"] != 3.0 || len(st["checksum"].(string)) != 16 {
		t.Errorf("modified stat %v", st)
	}
	rev := int(objs[0]["revision"].(float64))
	if objs[1]["revision"].(float64) <= float64(rev) {
		t.Errorf("revisions out of order: %v", objs)
	}

	// --from replays history: the same three events.
	r = hasp(t, "", c.flag, "watch", "-r", "--count", "3", "--from", fmt.Sprint(rev), "/ls/test/w")
	if r.code != 0 || !reflect.DeepEqual(jsonLines(t, r.stdout), objs) {
		t.Fatalf("--from: exit %d, stdout %q (stderr %q), want %v", r.code, r.stdout, r.stderr, objs)
	}

	// Past the history: a clear error with the way to resume.
	for range 20 {
		c.ok(t, "", "put", "/ls/test/w/b", "x")
	}
	r = hasp(t, "", c.flag, "watch", "--from", "1", "/ls/test/w/b")
	checkFailure(t, r, "no longer holds the changes from revision 1")
	if !strings.Contains(r.stderr, "the current revision is") || !strings.Contains(r.stderr, "hasp watch /ls/test/w/b --from ") {
		t.Fatalf("compaction message %q", r.stderr)
	}

	r = hasp(t, "", c.flag, "watch", "--count", "-1", "/ls/test/w")
	if r.code != 2 {
		t.Fatalf("--count -1: exit %d", r.code)
	}
	r = hasp(t, "", c.flag, "watch", "/etc/passwd")
	if r.code != 2 {
		t.Fatalf("bad name: exit %d", r.code)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
