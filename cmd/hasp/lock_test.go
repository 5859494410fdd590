package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// TestLockCommands runs lock, elect, leader and stat's lock lines against
// one cell.
func TestLockCommands(t *testing.T) {
	c := newTestCell(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl, err := cellclient.Dial(ctx, cellclient.Config{Addrs: c.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	t.Run("RunsWithSequencer", func(t *testing.T) {
		r := hasp(t, "", c.flag, "lock", "/ls/test/job", "--", "sh", "-c", `echo "$HASP_SEQUENCER"; exit 7`)
		if r.code != 7 {
			t.Fatalf("exit %d, want the command's 7 (stderr %q)", r.code, r.stderr)
		}
		if !strings.HasPrefix(r.stdout, "hasp-seq:v1:/job:") || !strings.Contains(r.stdout, ":exclusive:") {
			t.Fatalf("HASP_SEQUENCER = %q", r.stdout)
		}
		// Released on exit: a second run gets it at once.
		c.ok(t, "", "lock", "--try", "/ls/test/job", "--", "true")
	})

	t.Run("TryHeld", func(t *testing.T) {
		h, err := cl.Open(ctx, "/ls/test/held", &cellclient.OpenOptions{Create: fsapi.CreateMay})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Acquire(ctx, cellclient.Exclusive); err != nil {
			t.Fatal(err)
		}
		c.fails(t, "held", "lock", "--try", "/ls/test/held", "--", "true")
		c.fails(t, "deadline", "lock", "--wait", "300ms", "/ls/test/held", "--", "true")
		out := c.ok(t, "", "stat", "/ls/test/held")
		for _, want := range []string{"lock:", "exclusive", "lock holders:", "session"} {
			if !strings.Contains(out, want) {
				t.Errorf("stat of a held lock lacks %q:\n%s", want, out)
			}
		}
		objs := jsonLines(t, c.ok(t, "", "--json", "stat", "/ls/test/held"))
		lock, _ := objs[0]["lock"].(map[string]any)
		if lock["mode"] != "exclusive" || len(lock["holders"].([]any)) != 1 {
			t.Errorf("stat --json lock = %v", lock)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if out := c.ok(t, "", "stat", "/ls/test/held"); !strings.Contains(out, "lock:") || strings.Contains(out, "lock holders:") {
			t.Errorf("stat of a free lock:\n%s", out)
		}
	})

	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"lock", "/ls/test/x", "true"},                              // no --
			{"lock", "--lock-delay", "61s", "/ls/test/x", "--", "true"}, // over the maximum
			{"lock", "--lock-delay=-1s", "/ls/test/x", "--", "true"},
			{"lock", "bad name", "--", "true"},
		} {
			if r := hasp(t, "", append([]string{c.flag}, args...)...); r.code != 2 {
				t.Errorf("hasp %v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
			}
		}
	})

	t.Run("Elect", func(t *testing.T) {
		c.fails(t, "no leader", "leader", "/ls/test/svc-leader")
		done := make(chan result, 1)
		go func() {
			done <- hasp(t, "", c.flag, "elect", "/ls/test/svc-leader", "--identity", "alpha:8080", "--", "sleep", "1.5")
		}()
		var out string
		for deadline := time.Now().Add(20 * time.Second); ; {
			r := hasp(t, "", c.flag, "leader", "/ls/test/svc-leader")
			if r.code == 0 {
				out = r.stdout
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no leader reported: %q", r.stderr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if out != "alpha:8080\n" {
			t.Fatalf("leader = %q", out)
		}
		objs := jsonLines(t, c.ok(t, "", "--json", "leader", "/ls/test/svc-leader"))
		if objs[0]["identity"] != "alpha:8080" || !strings.HasPrefix(objs[0]["sequencer"].(string), "hasp-seq:v1:/svc-leader:") {
			t.Fatalf("leader --json = %v", objs)
		}
		if r := <-done; r.code != 0 {
			t.Fatalf("elect: exit %d, stderr %q", r.code, r.stderr)
		}
		c.fails(t, "no leader", "leader", "/ls/test/svc-leader")
	})
}

// TestLockLost: when the whole cell is down long enough for the session
// to enter jeopardy, hasp lock stops the command before the lock-delay
// could let anyone else in, and exits 3.
func TestLockLost(t *testing.T) {
	c := newTestCell(t)
	done := make(chan result, 1)
	started := time.Now()
	go func() {
		done <- hasp(t, "", c.flag, "lock", "--lock-delay", "2s", "--kill-after", "500ms", "/ls/test/lost", "--", "sleep", "60")
	}()
	// Wait until the lock is held, then take the whole cell down.
	for deadline := time.Now().Add(20 * time.Second); ; {
		out := hasp(t, "", c.flag, "stat", "/ls/test/lost")
		if out.code == 0 && strings.Contains(out.stdout, "lock holders:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock was never taken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	crashed := time.Now()
	for i := range c.N() {
		c.Crash(i)
	}
	t.Logf("cell down in %v", time.Since(crashed).Round(time.Millisecond))
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("hasp lock kept running its command with the cell gone")
	}
	if r.code != exitLockLost || !strings.Contains(r.stderr, "lost") {
		t.Fatalf("exit %d, stderr %q; want 3 and a message about the lost lock", r.code, r.stderr)
	}
	t.Logf("stopped %v after the crash (%v after start): %s", time.Since(crashed).Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond), strings.TrimSpace(r.stderr))
	for i := range c.N() {
		c.Restart(i)
	}
}
