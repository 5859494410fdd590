package mastertest

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcCellLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts haspd processes")
	}
	c := StartProcCell(t, ProcOptions{N: 3})
	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("%d addresses", got)
	}
	for i := range c.N() {
		if !c.Alive(i) {
			t.Fatalf("%s not running", c.ID(i))
		}
		if c.Index(c.Addr(i)) != i {
			t.Fatalf("Index(Addr(%d)) = %d", i, c.Index(c.Addr(i)))
		}
		nc, err := net.DialTimeout("tcp", c.Addr(i), time.Second)
		if err != nil {
			t.Fatalf("%s does not accept connections: %v", c.ID(i), err)
		}
		nc.Close()
	}
	c.Stop(0)
	if state := procStateT(t, c.Pid(0)); state != "T" && state != "t" {
		t.Errorf("after Stop, %s is in state %q, want stopped", c.ID(0), state)
	}
	c.Cont(0)
	c.Kill(1)
	if c.Alive(1) {
		t.Fatalf("%s alive after Kill", c.ID(1))
	}
	c.Restart(1)
	if !c.Alive(1) {
		t.Fatalf("%s not running after Restart", c.ID(1))
	}
	b, err := os.ReadFile(c.LogPath(1))
	if err != nil || strings.Count(string(b), "=== mastertest") != 2 {
		t.Fatalf("log of %s does not show two starts (err %v)", c.ID(1), err)
	}
	if !strings.Contains(string(b), "--heartbeat-timeout 300ms") || !strings.Contains(string(b), "haspd --dir ") {
		t.Errorf("restart flags not as documented:\n%s", b)
	}
}

// procState is the state letter of process pid (/proc/PID/stat).
func procStateT(t *testing.T, pid int) string {
	st, ok := procState(pid)
	if !ok {
		t.Skip("no /proc")
	}
	return st
}
