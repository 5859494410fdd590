package cellclient_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// The caching client of TestProcCacheStoppedClient runs in its own
// process (this test binary, re-executed), so that it can be stopped.
const cacheChildEnv = "HASP_CACHE_CHILD"

func init() {
	if os.Getenv(cacheChildEnv) == "" {
		return
	}
	os.Exit(cacheChild(os.Getenv(cacheChildEnv), os.Getenv("HASP_CACHE_CHILD_FILE")))
}

// cacheChild caches a file and then answers "read" lines on stdin with
// one line: "data <contents>" or "error <message>". After its first two
// reads it prints "ready <hits> <local lease end, Unix ns>".
func cacheChild(addrs, name string) int {
	ctx := context.Background()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: strings.Split(addrs, ","), AttemptTimeout: time.Second})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	h, err := c.Open(ctx, name, nil)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	read := func() {
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		data, _, err := h.GetContentsAndStat(rctx)
		if err != nil {
			fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
			return
		}
		fmt.Println("data", string(data))
	}
	h.GetContentsAndStat(ctx)
	h.GetContentsAndStat(ctx)
	fmt.Println("ready", c.CacheStats().Hits, c.LocalLeaseEndForTest().UnixNano())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "read" {
			read()
		}
	}
	return 0
}

// TestProcCacheStoppedClient: a write to a file that a stopped client
// caches completes only once that client's lease has run out (the master
// cannot get its acknowledgement), and the client, resumed, never returns
// the old contents from its cache.
func TestProcCacheStoppedClient(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped under -short")
	}
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 5})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	writer := procDial(t, ctx, cell.Addrs(), time.Second)
	name := "/ls/proc/cached"
	f, err := writer.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}

	for round := range 2 {
		if _, err := f.SetContents(ctx, []byte("old"), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), cacheChildEnv+"="+strings.Join(cell.Addrs(), ","), "HASP_CACHE_CHILD_FILE="+name)
		stdin, _ := child.StdinPipe()
		stdout, _ := child.StdoutPipe()
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewReader(stdout)
		ready := readLine(t, lines)
		f := strings.Fields(ready)
		if len(f) != 3 || f[0] != "ready" || f[1] == "0" {
			t.Fatalf("child: %q (want ready with cache hits)", ready)
		}
		leaseEndNs, _ := strconv.ParseInt(f[2], 10, 64)
		leaseEnd := time.Unix(0, leaseEndNs)

		if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, child.Process.Pid)
		start := time.Now()
		if _, err := f0(writer, ctx, name).SetContents(ctx, []byte("new"), fsapi.AnyGeneration); err != nil {
			t.Fatal(err)
		}
		done := time.Now()
		t.Logf("round %d: write to a file cached by a stopped client took %v; the client's local lease ended %v after the write began",
			round, done.Sub(start).Round(time.Millisecond), leaseEnd.Sub(start).Round(time.Millisecond))
		if done.Before(leaseEnd) {
			t.Errorf("round %d: the write completed %v before the stopped client's lease ended: its cache still held the old contents",
				round, leaseEnd.Sub(done))
		}
		if round == 1 {
			// Let the master expire the stopped client's session too.
			time.Sleep(6 * time.Second)
		}
		if err := child.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			io.WriteString(stdin, "read\n")
			got := readLine(t, lines)
			t.Logf("round %d: resumed client read: %s", round, got)
			if got == "data old" {
				t.Fatalf("round %d: the resumed client returned the old contents", round)
			}
		}
		stdin.Close()
		child.Wait()
	}
}

// f0 opens name again (a fresh handle).
func f0(c *cellclient.Client, ctx context.Context, name string) *cellclient.Handle {
	h, err := c.Open(ctx, name, nil)
	if err != nil {
		panic(err)
	}
	return h
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := r.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("child: %v (after %q)", r.err, r.s)
		}
		return r.s
	case <-time.After(60 * time.Second):
		t.Fatal("child: no answer in 60 s")
	}
	return ""
}

func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && (f[0] == "T" || f[0] == "t") {
			return
		}
	}
	t.Fatal("child not stopped 5 s after SIGSTOP")
}
