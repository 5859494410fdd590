package mastertest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ProcOptions configure StartProcCell. Zero values mean the defaults.
type ProcOptions struct {
	N            int           // replicas (default 5)
	Cell         string        // cell name (default "proc")
	Heartbeat    time.Duration // --heartbeat-timeout (default 300 ms)
	SessionLease time.Duration // --session-lease (default 5 s)
	LogLevel     string        // --log-level (default "info")
	// Args are more flags for every start of every replica.
	Args []string
	// RestartDirOnly makes Restart pass only --dir (and --log-level, Args):
	// flags haspd does not store in --dir then take their defaults.
	RestartDirOnly bool
	// RestartBare makes Restart pass --dir alone (it implies
	// RestartDirOnly): not even --log-level or Args, so a restarted replica
	// logs at haspd's default level and takes everything else from --dir.
	RestartBare bool
	// ServeTimeout bounds how long a start may take to say it serves
	// (default 60 s).
	ServeTimeout time.Duration
	// LogTail is how much of each replica's log a failed test prints
	// (default 48 KiB).
	LogTail int
}

// ProcCell is a cell of real haspd processes on loopback, for tests that
// need what an in-process cell cannot do: kill -9, SIGSTOP/SIGCONT. Each
// replica writes stdout and stderr to a log file that is printed when the
// test fails. It does not know which replica is master: ask them
// (cellclient.QueryStatus).
type ProcCell struct {
	t     testing.TB
	opts  ProcOptions
	bin   string
	procs []*proc
}

type proc struct {
	id, addr, dir, logPath string

	mu      sync.Mutex // protects following fields
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the current process was waited for
	state   *os.ProcessState
	args    []string // the current process's flags
	logOff  int64    // log size when the current process started
	started int      // processes started so far
}

// StartProcCell builds cmd/haspd (once per test binary; with -race if this
// binary has it), starts N replicas on free loopback ports and waits until
// each serves. Cleanup kills them, fails the test if a log shows a data
// race or a panic, and prints the logs of a failed test.
func StartProcCell(t testing.TB, opts ProcOptions) *ProcCell {
	t.Helper()
	if opts.N == 0 {
		opts.N = 5
	}
	if opts.Cell == "" {
		opts.Cell = "proc"
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 300 * time.Millisecond
	}
	if opts.SessionLease == 0 {
		opts.SessionLease = 5 * time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ServeTimeout == 0 {
		opts.ServeTimeout = 60 * time.Second
	}
	if opts.LogTail == 0 {
		opts.LogTail = 48 << 10
	}
	c := &ProcCell{t: t, opts: opts, bin: haspdBinary(t)}
	base := t.TempDir()
	addrs := freeAddrs(t, opts.N)
	var initial []string
	for i, a := range addrs {
		id := fmt.Sprintf("r%d", i+1)
		initial = append(initial, id+"="+a)
		c.procs = append(c.procs, &proc{id: id, addr: a, dir: filepath.Join(base, id), logPath: filepath.Join(base, id+".log")})
	}
	t.Cleanup(c.Close)
	for i, p := range c.procs {
		c.start(i, c.flags("--id", p.id, "--dir", p.dir, "--listen", p.addr, "--cell-name", opts.Cell,
			"--initial-cell", strings.Join(initial, ","), "--heartbeat-timeout", opts.Heartbeat.String(),
			"--session-lease", opts.SessionLease.String()))
	}
	for i := range c.procs {
		c.waitServing(i)
	}
	return c
}

// Addrs lists every replica's address.
func (c *ProcCell) Addrs() []string {
	var out []string
	for _, p := range c.procs {
		out = append(out, p.addr)
	}
	return out
}

// Addr is replica i's address.
func (c *ProcCell) Addr(i int) string { return c.procs[i].addr }

// Index is the index of the replica at addr, or -1.
func (c *ProcCell) Index(addr string) int {
	for i, p := range c.procs {
		if p.addr == addr {
			return i
		}
	}
	return -1
}

// N is the number of replicas.
func (c *ProcCell) N() int { return len(c.procs) }

// ID is replica i's id (r1, r2, ...).
func (c *ProcCell) ID(i int) string { return c.procs[i].id }

// Options are the options the cell was started with, defaults filled in.
func (c *ProcCell) Options() ProcOptions { return c.opts }

// Dir is replica i's --dir (its Raft log, snapshots and stored flags).
func (c *ProcCell) Dir(i int) string { return c.procs[i].dir }

// LogPath is the file replica i logs to.
func (c *ProcCell) LogPath(i int) string { return c.procs[i].logPath }

// flags appends the flags common to every start (--log-level, Args) to a
// replica's own.
func (c *ProcCell) flags(own ...string) []string {
	return append(append(own, "--log-level", c.opts.LogLevel), c.opts.Args...)
}

// start starts replica i with args, all of its flags.
func (c *ProcCell) start(i int, args []string) {
	c.t.Helper()
	p := c.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited != nil {
		select {
		case <-p.exited:
		default:
			c.t.Fatalf("mastertest: start %s: already running", p.id)
		}
	}
	p.args = args
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		c.t.Fatal(err)
	}
	p.logOff = st.Size()
	p.started++
	fmt.Fprintf(f, "=== mastertest %s: start #%d: haspd %s\n", time.Now().Format(time.StampMilli), p.started, strings.Join(args, " "))
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	// If the test binary dies (e.g. -timeout), the replica goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("mastertest: start %s: %v", p.id, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited, p.state = cmd, exited, nil
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(exited)
	}()
}

// Log is what the current process of replica i has logged (since its
// start).
func (c *ProcCell) Log(i int) string {
	p := c.procs[i]
	p.mu.Lock()
	off := p.logOff
	p.mu.Unlock()
	b, _ := os.ReadFile(p.logPath)
	if int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// waitServing waits until replica i says it serves, starting it again
// while its port is taken (a port from freeAddrs may be grabbed, or linger).
func (c *ProcCell) waitServing(i int) {
	c.t.Helper()
	p := c.procs[i]
	deadline := time.Now().Add(c.opts.ServeTimeout)
	for tries := 0; ; {
		text := c.Log(i)
		if strings.Contains(text, "serving on") {
			return
		}
		if !c.Alive(i) {
			if strings.Contains(text, "address already in use") && tries < 40 {
				tries++
				time.Sleep(250 * time.Millisecond)
				p.mu.Lock()
				args := p.args
				p.mu.Unlock()
				c.start(i, args)
				continue
			}
			c.t.Fatalf("mastertest: %s exited while starting (%s):\n%s", p.id, c.ExitState(i), text)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("mastertest: %s not serving after %v:\n%s", p.id, c.opts.ServeTimeout, text)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Alive reports whether replica i's process runs (stopped counts).
func (c *ProcCell) Alive(i int) bool {
	p := c.procs[i]
	p.mu.Lock()
	ch := p.exited
	p.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// ExitState describes how replica i's last process ended, or "running".
func (c *ProcCell) ExitState(i int) string {
	p := c.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return "running"
	}
	return p.state.String()
}

// Pid is the process id of replica i's current process.
func (c *ProcCell) Pid(i int) int {
	p := c.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// CheckAlive fails t at once if any replica's process has exited, with the
// end of what that process logged.
func (c *ProcCell) CheckAlive(t testing.TB) {
	t.Helper()
	for i, p := range c.procs {
		if !c.Alive(i) {
			t.Fatalf("replica %s exited (%s); its log ends:\n%s", p.id, c.ExitState(i), tail(c.Log(i), 16<<10))
		}
	}
}

// Kill sends SIGKILL to replica i and waits until it is gone.
func (c *ProcCell) Kill(i int) {
	p := c.procs[i]
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Errorf("mastertest: kill %s: %v", p.id, err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		c.t.Errorf("mastertest: %s still there 30s after SIGKILL", p.id)
	}
}

// KillAll kills every replica.
func (c *ProcCell) KillAll() {
	var wg sync.WaitGroup
	for i := range c.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Kill(i)
		}()
	}
	wg.Wait()
}

// Stop pauses replica i (SIGSTOP): it keeps its sockets but does nothing,
// as a process stalled by the OS, a VM pause or a long GC would.
//
// Signals are delivered asynchronously, so Stop waits (up to 5 s) until the
// kernel reports the process stopped: tests may assume it is paused.
func (c *ProcCell) Stop(i int) {
	c.t.Helper()
	c.signal(i, syscall.SIGSTOP)
	pid := c.Pid(i)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if st, ok := procState(pid); !ok || st == "T" || st == "t" {
			return // stopped, or no /proc to tell
		}
	}
	c.t.Fatalf("mastertest: %s not stopped 5 s after SIGSTOP", c.procs[i].id)
}

// procState is the state letter of a process from /proc (R, S, T, ...).
func procState(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

// Cont resumes a replica paused by Stop (SIGCONT).
func (c *ProcCell) Cont(i int) { c.signal(i, syscall.SIGCONT) }

func (c *ProcCell) signal(i int, sig syscall.Signal) {
	c.t.Helper()
	p := c.procs[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		c.t.Fatalf("mastertest: signal %s: never started", p.id)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("mastertest: %v to %s: %v", sig, p.id, err)
	}
}

// Restart starts a killed replica again on its directory and waits until
// it serves. It passes --dir and the timing flags haspd does not keep in
// --dir (--heartbeat-timeout, --session-lease), so that the cell keeps one
// configuration, unless ProcOptions.RestartDirOnly or RestartBare.
func (c *ProcCell) Restart(i int) {
	c.t.Helper()
	c.start(i, c.restartFlags(i))
	c.waitServing(i)
}

// RestartAll starts every (killed) replica again, all at once, as Restart
// does, and waits until each serves.
func (c *ProcCell) RestartAll() {
	c.t.Helper()
	for i := range c.procs {
		c.start(i, c.restartFlags(i))
	}
	for i := range c.procs {
		c.waitServing(i)
	}
}

func (c *ProcCell) restartFlags(i int) []string {
	args := []string{"--dir", c.procs[i].dir}
	if c.opts.RestartBare {
		return args
	}
	if !c.opts.RestartDirOnly {
		args = append(args, "--heartbeat-timeout", c.opts.Heartbeat.String(), "--session-lease", c.opts.SessionLease.String())
	}
	return c.flags(args...)
}

// Close kills every replica (once), fails the test if any log reports a
// data race, a panic or a fatal error, and prints the logs of a failed
// test. StartProcCell registers it with t.Cleanup.
func (c *ProcCell) Close() {
	c.KillAll()
	for _, p := range c.procs {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		s := string(b)
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if strings.Contains(s, bad) {
				c.t.Errorf("mastertest: replica %s logged %q (log %s)", p.id, bad, p.logPath)
			}
		}
		if c.t.Failed() {
			c.t.Logf("==== log of %s (%s), last %d KiB ====\n%s", p.id, p.logPath, c.opts.LogTail>>10, tail(s, c.opts.LogTail))
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		if a := FreeAddr(t); !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

var haspd struct {
	once sync.Once
	bin  string
	err  error
}

// haspdBinary builds cmd/haspd once per test binary into a directory named
// after this process, and removes such directories left by processes that
// are gone (there is no TestMain here to clean up after the run).
func haspdBinary(t testing.TB) string {
	t.Helper()
	haspd.once.Do(func() { haspd.bin, haspd.err = buildHaspd() })
	if haspd.err != nil {
		t.Fatal(haspd.err)
	}
	return haspd.bin
}

const buildDirPrefix = "hasp-haspd-"

func buildHaspd() (string, error) {
	sweepBuildDirs()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goTool); serr != nil {
			return "", fmt.Errorf("mastertest: no go tool to build haspd: %w", err)
		}
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("mastertest: cannot find the module root (go env GOMOD = %q): %v", gomod, err)
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", buildDirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "haspd")
	args := []string{"build", "-o", bin}
	if raceEnabled && os.Getenv("HASP_PROC_RACE") != "0" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/haspd")
	cmd := exec.Command(goTool, args...)
	cmd.Dir = filepath.Dir(gomod)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mastertest: go %s: %v\n%s", strings.Join(args, " "), err, buf.String())
	}
	fmt.Fprintf(os.Stderr, "mastertest: built haspd (go %s) in %v\n", strings.Join(args[3:], " "), time.Since(start).Round(time.Millisecond))
	return bin, nil
}

// sweepBuildDirs removes the build directories of test processes that no
// longer run.
func sweepBuildDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), buildDirPrefix+"*"))
	for _, d := range dirs {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), buildDirPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
