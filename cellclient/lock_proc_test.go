package cellclient_test

// Fault tests for locks against real haspd processes, with lock holders in
// processes of their own (this test binary, re-executed with
// HASP_LOCK_HOLDER=1: see init), so that a holder can be paused with
// SIGSTOP or killed with SIGKILL like any process.

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/fsapitest"
	"github.com/haspcell/hasp/locks"
	"github.com/haspcell/hasp/master/fsm"
	"github.com/haspcell/hasp/master/mastertest"
	"github.com/haspcell/hasp/master/raftstore"
)

// ---- The lock-holder process ----

const (
	lockHolderEnv      = "HASP_LOCK_HOLDER"
	lockHolderAddrsEnv = "HASP_LOCK_HOLDER_ADDRS"
	lockHolderDelayEnv = "HASP_LOCK_HOLDER_DELAY"
	lockHolderGraceEnv = "HASP_LOCK_HOLDER_GRACE"
)

// init turns this test binary into a lock holder when started by
// startHolderProc: it runs the holder and exits before any test (and
// before TestMain) runs.
func init() {
	if os.Getenv(lockHolderEnv) != "1" {
		return
	}
	os.Exit(runLockHolder())
}

// lockHolder serves commands, one per line on stdin: "ID VERB ARGS...".
// It answers each on stdout with "ID ok ..." or "ID err CLASS MESSAGE",
// running each command in its own goroutine (a blocked Acquire does not
// hold up a "check"). Verbs:
//
//	dial                  new session (the old client is closed) → ok SESSION
//	acquire NAME          Acquire (no deadline) → ok GEN SEQUENCER-HEX
//	try NAME              TryAcquire → ok GEN SEQUENCER-HEX
//	release NAME          Release (no deadline) → ok
//	check                 → ok safe REMAINING-NS | ok unsafe: is the session lease still valid?
//	state                 → ok alive | ok ended ERROR
//	write NAME URL VALUE  POST VALUE to the fenced store at URL with the
//	                      sequencer of NAME's last grant → ok STATUS BODY
//	close                 Client.Close → ok
//
// Error classes: ended (the session is over), held, lockdelay, notheld,
// other.
type lockHolder struct {
	addrs []string
	delay time.Duration
	grace time.Duration
	http  *http.Client

	outMu sync.Mutex // protects out
	out   *bufio.Writer

	// closing is set when a close begins: from then the client's
	// CloseSession may free its locks at any moment, while its own lease
	// still looks valid, so check must no longer answer "safe".
	closing atomic.Bool

	mu   sync.Mutex // protects following fields
	c    *cellclient.Client
	hs   map[string]*cellclient.Handle
	seqs map[string]locks.Sequencer
}

func runLockHolder() int {
	lh := &lockHolder{addrs: strings.Split(os.Getenv(lockHolderAddrsEnv), ","), out: bufio.NewWriter(os.Stdout),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	var err error
	if lh.delay, err = time.ParseDuration(os.Getenv(lockHolderDelayEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "lock holder:", err)
		return 2
	}
	if lh.grace, err = time.ParseDuration(os.Getenv(lockHolderGraceEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "lock holder:", err)
		return 2
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		go lh.serve(f[0], f[1], f[2:])
	}
	// stdin closed: the test is done with this holder.
	lh.mu.Lock()
	c := lh.c
	lh.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return 0
}

func (lh *lockHolder) reply(id, format string, args ...any) {
	lh.outMu.Lock()
	defer lh.outMu.Unlock()
	fmt.Fprintf(lh.out, "%s "+format+"\n", append([]any{id}, args...)...)
	lh.out.Flush()
}

func (lh *lockHolder) fail(id string, c *cellclient.Client, err error) {
	class := "other"
	switch {
	case errors.Is(err, fsapi.ErrSessionExpired) || errors.Is(err, fsapi.ErrClosed) || (c != nil && c.Err() != nil):
		class = "ended"
	case errors.Is(err, fsapi.ErrLockDelay):
		class = "lockdelay"
	case errors.Is(err, fsapi.ErrHeld):
		class = "held"
	case errors.Is(err, fsapi.ErrNotHeld):
		class = "notheld"
	}
	lh.reply(id, "err %s %s", class, strings.ReplaceAll(err.Error(), "\n", " "))
}

func (lh *lockHolder) client() *cellclient.Client {
	lh.mu.Lock()
	defer lh.mu.Unlock()
	return lh.c
}

// handle opens name once per session, with the holder's lock-delay.
func (lh *lockHolder) handle(c *cellclient.Client, name string) (*cellclient.Handle, error) {
	lh.mu.Lock()
	h := lh.hs[name]
	lh.mu.Unlock()
	if h != nil {
		return h, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMay, LockDelay: cellclient.LockDelay(lh.delay)})
	if err != nil {
		return nil, err
	}
	lh.mu.Lock()
	defer lh.mu.Unlock()
	if lh.c != c {
		return nil, fmt.Errorf("%w: redialled meanwhile", fsapi.ErrClosed)
	}
	if old := lh.hs[name]; old != nil {
		h.Close()
		return old, nil
	}
	lh.hs[name] = h
	return h, nil
}

func (lh *lockHolder) serve(id, verb string, args []string) {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	c := lh.client()
	if c == nil && verb != "dial" {
		lh.reply(id, "err other no session: dial first")
		return
	}
	switch verb {
	case "dial":
		if c != nil {
			c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, err := cellclient.Dial(ctx, cellclient.Config{Addrs: lh.addrs, AttemptTimeout: time.Second,
			GracePeriod: lh.grace, ClientName: "lock-holder-" + strconv.Itoa(os.Getpid())})
		if err != nil {
			lh.fail(id, nil, err)
			return
		}
		lh.mu.Lock()
		lh.c, lh.hs, lh.seqs = nc, map[string]*cellclient.Handle{}, map[string]locks.Sequencer{}
		lh.mu.Unlock()
		lh.closing.Store(false)
		lh.reply(id, "ok %d", nc.Session())
	case "acquire", "try":
		h, err := lh.handle(c, arg(0))
		if err == nil {
			if verb == "acquire" {
				err = h.Acquire(context.Background(), cellclient.Exclusive)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = h.TryAcquire(ctx, cellclient.Exclusive)
				cancel()
			}
		}
		var seq locks.Sequencer
		if err == nil {
			seq, err = h.GetSequencer()
		}
		if err != nil {
			lh.fail(id, c, err)
			return
		}
		lh.mu.Lock()
		lh.seqs[arg(0)] = seq
		lh.mu.Unlock()
		lh.reply(id, "ok %d %x", seq.Generation, seq.Encode())
	case "release":
		h, err := lh.handle(c, arg(0))
		if err == nil {
			err = h.Release(context.Background())
		}
		if err != nil {
			lh.fail(id, c, err)
			return
		}
		lh.reply(id, "ok")
	case "check":
		end := c.LeaseEndForTest()
		if rem := time.Until(end); rem > 0 && !lh.closing.Load() {
			lh.reply(id, "ok safe %d", rem.Nanoseconds())
		} else {
			lh.reply(id, "ok unsafe")
		}
	case "state":
		if err := c.Err(); err != nil {
			lh.reply(id, "ok ended %s", err)
		} else {
			lh.reply(id, "ok alive")
		}
	case "write":
		// The sequencer of the last grant, even if the session has ended
		// since: a holder that was paused does not know it lost the lock.
		lh.mu.Lock()
		seq := lh.seqs[arg(0)]
		lh.mu.Unlock()
		req, err := http.NewRequest(http.MethodPost, arg(1)+"?value="+url.QueryEscape(arg(2)), nil)
		if err != nil {
			lh.fail(id, c, err)
			return
		}
		req.Header.Set(fencedStoreHeader, hex.EncodeToString(seq.Encode()))
		resp, err := lh.http.Do(req)
		if err != nil {
			lh.fail(id, c, err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lh.reply(id, "ok %d %s", resp.StatusCode, strings.ReplaceAll(string(body), "\n", " "))
	case "close":
		lh.closing.Store(true)
		c.Close()
		lh.reply(id, "ok")
	default:
		lh.reply(id, "err other unknown verb %q", verb)
	}
}

// ---- The test's side of a holder process ----

var (
	errHolderGone    = errors.New("lock holder process exited")
	errHolderTimeout = errors.New("lock holder did not answer in time")
)

// holderProc is a lock-holder process.
type holderProc struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}

	inMu  sync.Mutex // protects stdin
	stdin io.WriteCloser

	mu      sync.Mutex // protects following fields
	next    int
	waiting map[int]chan string
	gone    bool
}

// startHolderProc starts a holder process for a cell at addrs whose
// handles have lock-delay delay and whose clients have grace period grace.
// Cleanup kills it and fails the test if it logged a data race or a panic.
func startHolderProc(t testing.TB, name string, addrs []string, delay, grace time.Duration) *holderProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &holderProc{t: t, name: name, exited: make(chan struct{}), waiting: map[int]chan string{},
		logPath: filepath.Join(t.TempDir(), name+".log")}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), lockHolderEnv+"=1", lockHolderAddrsEnv+"="+strings.Join(addrs, ","),
		lockHolderDelayEnv+"="+delay.String(), lockHolderGraceEnv+"="+grace.String())
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start lock holder %s: %v", name, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		p.kill()
		b, _ := os.ReadFile(p.logPath)
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if strings.Contains(string(b), bad) {
				t.Errorf("lock holder %s logged %q:\n%s", name, bad, tail(string(b), 16<<10))
			}
		}
	})
	return p
}

// tail is the end of s, at most n bytes from a line start.
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

func (p *holderProc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		idStr, rest, _ := strings.Cut(sc.Text(), " ")
		id, err := strconv.Atoi(idStr)
		if err != nil {
			continue
		}
		p.mu.Lock()
		ch := p.waiting[id]
		delete(p.waiting, id)
		p.mu.Unlock()
		if ch != nil {
			ch <- rest
		}
	}
	p.cmd.Wait()
	p.mu.Lock()
	p.gone = true
	for id, ch := range p.waiting {
		close(ch)
		delete(p.waiting, id)
	}
	p.mu.Unlock()
	close(p.exited)
}

// call sends a command and returns the holder's answer after the id
// ("ok ..." or "err ..."), errHolderGone if the process exits first, or
// errHolderTimeout.
func (p *holderProc) call(timeout time.Duration, verb string, args ...string) (string, error) {
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return "", errHolderGone
	}
	p.next++
	id := p.next
	ch := make(chan string, 1)
	p.waiting[id] = ch
	p.mu.Unlock()
	p.inMu.Lock()
	_, err := fmt.Fprintf(p.stdin, "%d %s\n", id, strings.Join(append([]string{verb}, args...), " "))
	p.inMu.Unlock()
	if err != nil {
		p.mu.Lock()
		delete(p.waiting, id)
		p.mu.Unlock()
		return "", errHolderGone
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r, ok := <-ch:
		if !ok {
			return "", errHolderGone
		}
		return r, nil
	case <-t.C:
		p.mu.Lock()
		delete(p.waiting, id)
		p.mu.Unlock()
		return "", fmt.Errorf("%w: %s %s after %v", errHolderTimeout, verb, strings.Join(args, " "), timeout)
	}
}

// mustOK calls and fails the test unless the answer is "ok ...": it returns
// the fields after "ok".
func (p *holderProc) mustOK(timeout time.Duration, verb string, args ...string) []string {
	p.t.Helper()
	r, err := p.call(timeout, verb, args...)
	if err != nil || !strings.HasPrefix(r, "ok") {
		p.t.Fatalf("holder %s: %s %v: %q %v", p.name, verb, args, r, err)
	}
	return strings.Fields(r)[1:]
}

// stop pauses the holder (SIGSTOP) and waits until the kernel says it is
// stopped.
func (p *holderProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("SIGSTOP holder %s: %v", p.name, err)
	}
	path := fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			return // no /proc to tell
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && (f[0] == "T" || f[0] == "t") {
			return
		}
	}
	p.t.Fatalf("holder %s not stopped 5 s after SIGSTOP", p.name)
}

func (p *holderProc) cont() {
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Errorf("SIGCONT holder %s: %v", p.name, err)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *holderProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("holder %s still there 30 s after SIGKILL", p.name)
	}
}

// exit closes the holder's stdin: it closes its client cleanly and exits.
func (p *holderProc) exit() {
	p.inMu.Lock()
	p.stdin.Close()
	p.inMu.Unlock()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("holder %s did not exit within 30 s of its stdin closing", p.name)
		p.kill()
	}
}

// parseGrant parses an "ok GEN SEQUENCER-HEX" answer.
func parseGrant(fields []string) (locks.Sequencer, error) {
	if len(fields) != 2 {
		return locks.Sequencer{}, fmt.Errorf("grant answer %q", fields)
	}
	b, err := hex.DecodeString(fields[1])
	if err != nil {
		return locks.Sequencer{}, err
	}
	seq, err := locks.ParseSequencer(b)
	if err == nil && strconv.FormatUint(seq.Generation, 10) != fields[0] {
		err = fmt.Errorf("generation %s, sequencer %v", fields[0], seq)
	}
	return seq, err
}

// holderCheck asks the holder whether its session lease holds, and returns
// the latest instant (test process clock) until which the master cannot
// have expired its session: the lease end the holder reported, counted
// from when the question was sent (the holder read its lease later).
func holderCheck(p *holderProc, timeout time.Duration) (sent time.Time, validUntil time.Time, ok bool, err error) {
	sent = time.Now()
	r, err := p.call(timeout, "check")
	if err != nil {
		return sent, time.Time{}, false, err
	}
	f := strings.Fields(r)
	if len(f) == 3 && f[0] == "ok" && f[1] == "safe" {
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return sent, time.Time{}, false, err
		}
		return sent, sent.Add(time.Duration(ns)), true, nil
	}
	if len(f) == 2 && f[0] == "ok" && f[1] == "unsafe" {
		return sent, time.Time{}, false, nil
	}
	return sent, time.Time{}, false, fmt.Errorf("check answer %q", r)
}

// ---- The fenced storage server ----

const fencedStoreHeader = "X-Hasp-Sequencer"

// fencedStore is a storage server on 127.0.0.1 that accepts a write only
// with a current sequencer, checked two ways: against the newest sequencer
// it has seen (locks.Fence, no master needed) and with the master
// (Client.CheckSequencer). It keeps every verdict.
type fencedStore struct {
	c     *cellclient.Client
	srv   *httptest.Server
	fence locks.Fence

	mu       sync.Mutex // protects following fields
	value    string
	applied  []string
	verdicts map[string]storeVerdict // by value written
}

type storeVerdict struct {
	seq       locks.Sequencer
	fenceErr  error
	masterErr error
	applied   bool
}

func newFencedStore(t *testing.T, c *cellclient.Client) *fencedStore {
	s := &fencedStore{c: c, verdicts: map[string]storeVerdict{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fencedStore) serveHTTP(w http.ResponseWriter, r *http.Request) {
	value := r.URL.Query().Get("value")
	b, err := hex.DecodeString(r.Header.Get(fencedStoreHeader))
	var seq locks.Sequencer
	if err == nil {
		seq, err = locks.ParseSequencer(b)
	}
	if err != nil {
		http.Error(w, "bad sequencer: "+err.Error(), http.StatusBadRequest)
		return
	}
	// One write at a time: the check and the application are atomic with
	// respect to other writes.
	s.mu.Lock()
	defer s.mu.Unlock()
	v := storeVerdict{seq: seq, fenceErr: s.fence.Check(seq)}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	v.masterErr = s.c.CheckSequencer(ctx, seq)
	cancel()
	v.applied = v.fenceErr == nil && v.masterErr == nil
	s.verdicts[value] = v
	if !v.applied {
		http.Error(w, fmt.Sprintf("rejected: fence: %v; master: %v", v.fenceErr, v.masterErr), http.StatusConflict)
		return
	}
	s.value = value
	s.applied = append(s.applied, value)
	fmt.Fprintln(w, "applied")
}

func (s *fencedStore) url() string { return s.srv.URL + "/write" }

func (s *fencedStore) verdict(value string) (storeVerdict, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.verdicts[value]
	return v, ok
}

func (s *fencedStore) state() (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value, append([]string(nil), s.applied...)
}

// ---- Fencing ----

// TestLockProcFencing: holder A (its own process) takes the lock, gets its
// sequencer and writes "a1" through a fenced storage server. A is then
// paused (SIGSTOP) with a write of "a-stale" queued on its stdin, until the
// master expires its session (2 s lease). Holder B then takes the lock —
// a TryAcquire during A's 1 s lock-delay is refused, the blocking Acquire
// is granted no earlier than A's lease end plus the lock-delay — and
// writes "b1". A resumes and sends its delayed write with its old
// sequencer: the store must reject it by both checks (the fence has seen
// B's newer sequencer; the master says A's is stale) and not apply it.
//
// Then B is paused the same way, and resumes while the lock is free, before
// anyone else has written: its stale write passes the fence (its sequencer
// is still the newest the store has seen) but the master rejects it, so it
// is not applied either. (A server that only keeps a Fence relies on
// lock-delay for this window.)
func TestLockProcFencing(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped under -short")
	}
	const (
		lockDelay = time.Second
		name      = "/ls/local/fenced"
	)
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 3, SessionLease: 2 * time.Second})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	obs := procDial(t, ctx, cell.Addrs(), time.Second)
	store := newFencedStore(t, obs)
	ho, err := obs.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMay})
	if err != nil {
		t.Fatal(err)
	}
	a := startHolderProc(t, "a", cell.Addrs(), lockDelay, time.Second)
	b := startHolderProc(t, "b", cell.Addrs(), lockDelay, time.Second)
	sessA, _ := strconv.ParseUint(a.mustOK(30*time.Second, "dial")[0], 10, 64)
	b.mustOK(30*time.Second, "dial")

	seqA, err := parseGrant(a.mustOK(30*time.Second, "acquire", name))
	if err != nil {
		t.Fatal(err)
	}
	if r := a.mustOK(30*time.Second, "write", name, store.url(), "a1"); r[0] != "200" {
		t.Fatalf("A's write while holding the lock: %v", r)
	}

	// Pause A with a write queued, until the master expires its session.
	_, aLease, ok, err := holderCheck(a, 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("holder A's lease before the pause: %v %v", ok, err)
	}
	a.stop()
	staleA := make(chan string, 1)
	go func() {
		r, err := a.call(60*time.Second, "write", name, store.url(), "a-stale")
		staleA <- fmt.Sprintf("%s%v", r, errOrEmpty(err))
	}()
	info, freed := waitLockFree(t, ctx, func() *cellclient.Handle { return ho }, sessA)
	if freed.Before(aLease) {
		t.Errorf("the master dropped A's hold %v before A's own lease said it could", aLease.Sub(freed))
	}
	if info.DelayUntil.IsZero() {
		t.Errorf("A's lock, freed by its session's expiry, shows no lock-delay: %+v", info)
	}
	r, err := b.call(30*time.Second, "try", name)
	if err != nil || !strings.HasPrefix(r, "err lockdelay") && time.Now().Before(info.DelayUntil) {
		t.Errorf("B's TryAcquire during A's lock-delay: %q %v; want a lock-delay error", r, err)
	}
	if strings.HasPrefix(r, "ok") {
		t.Fatalf("B was granted the lock during A's lock-delay (ends %v): %q", info.DelayUntil, r)
	}
	seqB, err := parseGrant(b.mustOK(30*time.Second, "acquire", name))
	grantedB := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if waited := grantedB.Sub(aLease); waited < lockDelay {
		t.Errorf("B was granted the lock %v after A's lease could have ended; A's lock-delay is %v", waited, lockDelay)
	}
	if seqB.Generation <= seqA.Generation {
		t.Fatalf("B's sequencer %v is not newer than A's %v", seqB, seqA)
	}
	if r := b.mustOK(30*time.Second, "write", name, store.url(), "b1"); r[0] != "200" {
		t.Fatalf("B's write while holding the lock: %v", r)
	}

	a.cont()
	got := <-staleA
	t.Logf("A's delayed write after SIGCONT: %s", got)
	v, ok := store.verdict("a-stale")
	switch {
	case !ok:
		t.Errorf("A's delayed write never reached the store (%s)", got)
	case v.applied || !strings.HasPrefix(got, "ok 409"):
		t.Errorf("A's delayed write with its old sequencer %v was accepted: %s", v.seq, got)
	default:
		if !errors.Is(v.fenceErr, locks.ErrStaleSequencer) {
			t.Errorf("the fence, having seen B's %v, let A's %v through: %v", seqB, v.seq, v.fenceErr)
		}
		if !errors.Is(v.masterErr, fsapi.ErrStaleSequencer) {
			t.Errorf("the master called A's old sequencer %v current: %v", v.seq, v.masterErr)
		}
	}
	if val, applied := store.state(); val != "b1" || strings.Join(applied, ",") != "a1,b1" {
		t.Errorf("store holds %q after writes %v; want b1 after a1,b1", val, applied)
	}
	// A learns that its session (and lock) is gone.
	if r, err := a.call(30*time.Second, "release", name); err != nil || !strings.HasPrefix(r, "err ended") {
		t.Errorf("A's release after its session expired: %q %v", r, err)
	}

	// B paused past its lease and resumed while the lock is free: only the
	// master check stops its write.
	sessB := obsHolder(t, ctx, ho)
	_, bLease, ok, err := holderCheck(b, 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("holder B's lease before the pause: %v %v", ok, err)
	}
	b.stop()
	staleB := make(chan string, 1)
	go func() {
		r, err := b.call(60*time.Second, "write", name, store.url(), "b-stale")
		staleB <- fmt.Sprintf("%s%v", r, errOrEmpty(err))
	}()
	_, freed = waitLockFree(t, ctx, func() *cellclient.Handle { return ho }, sessB)
	if freed.Before(bLease) {
		t.Errorf("the master dropped B's hold %v before B's own lease said it could", bLease.Sub(freed))
	}
	b.cont()
	got = <-staleB
	t.Logf("B's delayed write after SIGCONT: %s", got)
	v, ok = store.verdict("b-stale")
	switch {
	case !ok:
		t.Errorf("B's delayed write never reached the store (%s)", got)
	case v.applied || !strings.HasPrefix(got, "ok 409"):
		t.Errorf("B's delayed write with its old sequencer %v was accepted: %s", v.seq, got)
	default:
		if v.fenceErr != nil {
			t.Errorf("the fence refused B's sequencer, the newest it has seen: %v", v.fenceErr)
		}
		if !errors.Is(v.masterErr, fsapi.ErrStaleSequencer) {
			t.Errorf("the master called B's sequencer %v current after B's session expired: %v", v.seq, v.masterErr)
		}
	}
	if val, applied := store.state(); val != "b1" || len(applied) != 2 {
		t.Errorf("store holds %q after writes %v; want b1 after a1,b1", val, applied)
	}
	a.exit()
	b.exit()
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

// obsHolder is the session that holds h's lock now.
func obsHolder(t *testing.T, ctx context.Context, h *cellclient.Handle) uint64 {
	t.Helper()
	info, err := h.GetLock(ctx)
	if err != nil || len(info.Holders) != 1 {
		t.Fatalf("lock info %+v %v; want one holder", info, err)
	}
	return info.Holders[0].Session
}

// waitLockFree waits until session no longer holds the lock of the
// handle h returns, as the master sees it, and returns the lock's state
// then and when it was seen.
func waitLockFree(t *testing.T, ctx context.Context, h func() *cellclient.Handle, session uint64) (cellclient.LockInfo, time.Time) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := h().GetLock(ctx)
		if err == nil && !slicesHasSession(info.Holders, session) {
			return info, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %d still holds %s after 30 s: %+v %v", session, h().Name(), info, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func slicesHasSession(owners []cellclient.LockOwner, session uint64) bool {
	for _, o := range owners {
		if o.Session == session {
			return true
		}
	}
	return false
}

// ---- Lock-delay after kill -9 ----

// TestLockProcKilledHolder: a holder process is killed with SIGKILL while
// holding a lock with a 1.5 s lock-delay. The master keeps the lock held
// until the dead holder's session expires, then free but refused to every
// TryAcquire (fsapi.ErrLockDelay) until the delay ends; a blocking Acquire
// is granted no earlier than the holder's last known lease end plus the
// delay. Another holder process that closes its client (Client.Close)
// while holding a lock with a 30 s lock-delay frees it at once.
func TestLockProcKilledHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped under -short")
	}
	const (
		lockDelay = 1500 * time.Millisecond
		name      = "/ls/local/killed"
	)
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 3, SessionLease: 2 * time.Second})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	obs := procDial(t, ctx, cell.Addrs(), time.Second)
	h := openLock(t, ctx, obs, name, nil)

	k := startHolderProc(t, "killed", cell.Addrs(), lockDelay, time.Second)
	sess, _ := strconv.ParseUint(k.mustOK(30*time.Second, "dial")[0], 10, 64)
	seqK, err := parseGrant(k.mustOK(30*time.Second, "acquire", name))
	if err != nil {
		t.Fatal(err)
	}
	_, lease, ok, err := holderCheck(k, 10*time.Second)
	if err != nil || !ok {
		t.Fatalf("holder's lease before the kill: %v %v", ok, err)
	}
	k.kill()
	if err := h.TryAcquire(ctx, cellclient.Exclusive); !errors.Is(err, fsapi.ErrHeld) && time.Now().Before(lease) {
		t.Errorf("TryAcquire while the killed holder's lease may still run: %v; want fsapi.ErrHeld", err)
	}
	info, freed := waitLockFree(t, ctx, func() *cellclient.Handle { return h }, sess)
	if freed.Before(lease) {
		t.Errorf("the master dropped the killed holder %v before its lease could have ended", lease.Sub(freed))
	}
	refused := 0
	for time.Now().Before(info.DelayUntil.Add(-100 * time.Millisecond)) {
		err := h.TryAcquire(ctx, cellclient.Exclusive)
		switch {
		case errors.Is(err, fsapi.ErrLockDelay):
			refused++
		case err == nil:
			t.Fatalf("TryAcquire granted during the lock-delay (ends %v)", info.DelayUntil)
		case time.Now().Before(info.DelayUntil):
			t.Errorf("TryAcquire during the lock-delay: %v; want fsapi.ErrLockDelay", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if refused == 0 {
		t.Errorf("no TryAcquire was refused with fsapi.ErrLockDelay during the lock-delay (%+v)", info)
	}
	if err := h.Acquire(ctx, cellclient.Exclusive); err != nil {
		t.Fatal(err)
	}
	granted := time.Now()
	if waited := granted.Sub(lease); waited < lockDelay {
		t.Errorf("granted %v after the killed holder's lease could have ended; lock-delay is %v", waited, lockDelay)
	}
	if late := granted.Sub(freed); late > lockDelay+5*time.Second {
		t.Errorf("granted %v after the lock was seen free (lock-delay %v)", late, lockDelay)
	}
	seq, err := h.GetSequencer()
	if err != nil || seq.Generation != seqK.Generation+1 {
		t.Errorf("sequencer after the killed holder: %v %v (killed holder's: %v)", seq, err, seqK)
	}
	t.Logf("lock seen free %v after the holder's lease end; granted %v after it (lock-delay %v)",
		freed.Sub(lease).Round(time.Millisecond), granted.Sub(lease).Round(time.Millisecond), lockDelay)
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A clean Client.Close starts no lock-delay, however long.
	c := startHolderProc(t, "closer", cell.Addrs(), 30*time.Second, time.Second)
	c.mustOK(30*time.Second, "dial")
	c.mustOK(30*time.Second, "acquire", name)
	c.mustOK(30*time.Second, "close")
	if err := h.TryAcquire(ctx, cellclient.Exclusive); err != nil {
		t.Errorf("TryAcquire right after the holder process closed its client: %v", err)
	}
	c.exit()
}

// ---- Mutual exclusion under process faults ----

// TestLockProcFault: six holder processes (three per lock) acquire an
// exclusive lock, hold it up to 40 ms while checking their session lease,
// and release it, over and over, against three haspd processes (3 s
// session lease; 500 ms lock-delay), while a nemesis injects one fault at
// a time, in rounds of the four kinds in random order: kill -9 of the
// master (restarted after 0.2–1.5 s); SIGSTOP of the master for 0.3–2 s;
// SIGSTOP of a holder process while it holds a lock, until the master has
// expired its session (not before the holder's own lease end), then
// SIGCONT (its holding must be lost); kill -9 of a holder process while it
// holds a lock (a new process takes its place). Porcupine checks the history (see
// lock_fault_test.go). Afterwards, once every session is gone, every
// replica's state machine, rebuilt from its own disk, must hold each lock
// free, with no waiters and no sessions, at the same generation — no
// lower than any granted, equal to its node's Stat.LockGeneration.
func TestLockProcFault(t *testing.T) {
	dur := faultDuration(t, 15*time.Second)
	seed := faultSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x6c70726f63))
	const sessionLease = 3 * time.Second
	cell := mastertest.StartProcCell(t, mastertest.ProcOptions{N: 3, SessionLease: sessionLease})
	procMaster(t, cell, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
	defer cancel()
	// The observer asks the master about the locks. Its session can be
	// ended by a deposed master that resumes after a pause (reported
	// separately: a held KeepAlive is answered "session expired"); it then
	// starts a new one.
	var obs *cellclient.Client
	var obsHandles map[string]*cellclient.Handle
	observe := func(name string) func() *cellclient.Handle {
		return func() *cellclient.Handle {
			if obs != nil && obs.Err() == nil {
				return obsHandles[name]
			}
			if obs != nil {
				t.Logf("observer session %d ended while the cell was up: %v; starting another", obs.Session(), obs.Err())
			}
			obs, obsHandles = procDial(t, ctx, cell.Addrs(), time.Second), map[string]*cellclient.Handle{}
			for _, n := range lockNames {
				obsHandles[n] = openLock(t, ctx, obs, n, nil)
			}
			return obsHandles[name]
		}
	}
	observe(lockNames[0])()

	rec := fsapitest.NewRecorder()
	pl := &procLockWorkload{t: t, addrs: cell.Addrs(), rec: rec, hist: newLockHistory(rec), lease: sessionLease}
	for i := range 3 * len(lockNames) {
		pl.workers = append(pl.workers, &procLockWorker{pl: pl, id: i, lock: lockNames[i%len(lockNames)],
			rng: rand.New(rand.NewPCG(seed, 0x70776b00|uint64(i)))})
	}
	for _, wk := range pl.workers {
		pl.wg.Add(1)
		go func() {
			defer pl.wg.Done()
			wk.run()
		}()
	}

	// Faults come in rounds, each a random order of the four kinds, and
	// the first round always completes, so every run sees every kind.
	until := time.Now().Add(dur)
	var pauses, pausesLost, kills, masterKills, masterStops int
	var round []int
	for n := 0; n < 4 || time.Now().Before(until); n++ {
		time.Sleep(between(rng, 300*time.Millisecond, time.Second))
		if len(round) == 0 {
			round = rng.Perm(4)
		}
		fault := round[0]
		round = round[1:]
		m := procMaster(t, cell, 30*time.Second)
		start, at := rec.Now(), time.Now()
		var desc string
		switch fault {
		case 0:
			cell.Kill(m)
			time.Sleep(between(rng, 200*time.Millisecond, 1500*time.Millisecond))
			cell.Restart(m)
			masterKills++
			desc = fmt.Sprintf("kill -9 master %s", cell.ID(m))
		case 1:
			d := between(rng, 300*time.Millisecond, 2*time.Second)
			cell.Stop(m)
			time.Sleep(d)
			cell.Cont(m)
			masterStops++
			desc = fmt.Sprintf("SIGSTOP master %s for %v", cell.ID(m), d.Round(time.Millisecond))
		case 2:
			wk, p, sess := pl.waitFreezeHolder(rng)
			_, validUntil, ok, err := holderCheck(p, 30*time.Second)
			p.stop()
			_, freed := waitLockFree(t, ctx, observe(wk.lock), sess)
			p.cont()
			if err == nil && ok && freed.Before(validUntil) {
				t.Errorf("the master dropped paused holder %s %v before its own lease said it could", p.name, validUntil.Sub(freed))
			}
			lost := wk.thaw()
			pauses++
			if lost {
				pausesLost++
			}
			desc = fmt.Sprintf("SIGSTOP holder %s (session %d, holding %s) until the master dropped it after %v; lost: %v",
				p.name, sess, wk.lock, freed.Sub(at).Round(time.Millisecond), lost)
		case 3:
			wk, p, sess := pl.waitFreezeHolder(rng)
			p.kill()
			if !wk.thaw() {
				t.Errorf("holder %s was killed while holding %s, yet its holding was not recorded lost", p.name, wk.lock)
			}
			kills++
			desc = fmt.Sprintf("kill -9 holder %s (session %d, holding %s)", p.name, sess, wk.lock)
		}
		rec.Annotate("nemesis", desc, start, rec.Now())
		t.Logf("nemesis at %.3fs: %s (%v)", float64(start)/1e9, desc, time.Since(at).Round(time.Millisecond))
	}
	procMaster(t, cell, 30*time.Second)
	pl.stop()

	checkLockHistory(t, pl.hist.operations(), rec.Annotations())
	t.Logf("history: %s", pl.hist.summary())
	for _, name := range lockNames {
		if acq, rel, _, _ := pl.hist.counts(name); acq < 10 || rel < 5 {
			t.Errorf("%s: only %d acquires and %d clean releases: too little progress under faults", name, acq, rel)
		}
	}
	if masterKills == 0 || masterStops == 0 || pauses == 0 || kills == 0 {
		t.Errorf("faults: %d master kills, %d master pauses, %d holder pauses, %d holder kills; want each kind at least once",
			masterKills, masterStops, pauses, kills)
	}
	if pausesLost != pauses {
		t.Errorf("%d of %d holders paused until the master expired their session kept their lock", pauses-pausesLost, pauses)
	}
	t.Logf("%d master kills, %d master pauses; %d holders paused past their lease (all lost their lock), %d killed",
		masterKills, masterStops, pauses, kills)

	// As the master judges it: every session gone, each lock free.
	gens := map[string]uint64{}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range lockNames {
		for {
			info, err := observe(name)().GetLock(ctx)
			if err == nil && len(info.Holders) == 0 && info.WaiterCount == 0 {
				gens[name] = info.Generation
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still busy 30 s after the workload stopped: %+v %v", name, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	obs.Close()
	waitNoSessions(t, cell, 30*time.Second)
	checkProcReplicaLocks(t, cell, pl.hist, gens)
}

// procLockWorkload drives one holder process per worker.
type procLockWorkload struct {
	t       *testing.T
	addrs   []string
	rec     *fsapitest.Recorder
	hist    *lockHistory
	lease   time.Duration
	stopped atomic.Bool
	wg      sync.WaitGroup
	workers []*procLockWorker
}

type procLockWorker struct {
	pl   *procLockWorkload
	id   int
	lock string
	rng  *rand.Rand
	n    int // processes started

	mu      sync.Mutex // protects following fields
	p       *holderProc
	session uint64 // 0: the process needs a new session
	state   holdState
	frozen  bool // hold on: the nemesis is pausing or killing the process
	lost    bool // the frozen holding was lost
}

// freezeHolder picks a worker that holds its lock and freezes it (it will
// not release until thawed), or returns nil if none holds.
func (pl *procLockWorkload) freezeHolder(rng *rand.Rand) (*procLockWorker, *holderProc, uint64) {
	var cands []*procLockWorker
	for _, wk := range pl.workers {
		wk.mu.Lock()
		if wk.state == holding && !wk.frozen {
			cands = append(cands, wk)
		}
		wk.mu.Unlock()
	}
	if len(cands) == 0 {
		return nil, nil, 0
	}
	wk := cands[rng.IntN(len(cands))]
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if wk.state != holding || wk.frozen {
		return nil, nil, 0
	}
	wk.frozen, wk.lost = true, false
	return wk, wk.p, wk.session
}

// waitFreezeHolder freezes a worker that holds its lock, waiting (up to
// 30 s) until one does.
func (pl *procLockWorkload) waitFreezeHolder(rng *rand.Rand) (*procLockWorker, *holderProc, uint64) {
	pl.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if wk, p, sess := pl.freezeHolder(rng); wk != nil {
			return wk, p, sess
		}
	}
	pl.t.Fatalf("no worker held a lock for 30 s")
	return nil, nil, 0
}

// thaw lets a frozen worker go on, and reports whether its holding was
// lost (it waits until the worker has tried to release).
func (wk *procLockWorker) thaw() bool {
	wk.mu.Lock()
	wk.frozen = false
	wk.mu.Unlock()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		wk.mu.Lock()
		st, lost := wk.state, wk.lost
		wk.mu.Unlock()
		if st != holding && st != releasing {
			return lost
		}
	}
	wk.pl.t.Errorf("worker %d did not finish its holding within 60 s of being thawed", wk.id)
	return false
}

func (pl *procLockWorkload) isStopped() bool { return pl.stopped.Load() }

// stop stops the workers: holders release; an Acquire still waiting is
// ended by closing its client (left out of the history); then every
// holder process closes its client and exits.
func (pl *procLockWorkload) stop() {
	pl.stopped.Store(true)
	done := make(chan struct{})
	go func() {
		pl.wg.Wait()
		close(done)
	}()
	closed := map[*holderProc]bool{}
	poke := time.NewTicker(100 * time.Millisecond)
	defer poke.Stop()
	deadline := time.After(90 * time.Second)
	for {
		for _, wk := range pl.workers {
			wk.mu.Lock()
			p, st := wk.p, wk.state
			wk.mu.Unlock()
			if st == acquiring && p != nil && !closed[p] {
				closed[p] = true
				go p.call(30*time.Second, "close")
			}
		}
		select {
		case <-done:
			var wg sync.WaitGroup
			for _, wk := range pl.workers {
				if wk.p != nil {
					wg.Add(1)
					go func() {
						defer wg.Done()
						wk.p.exit()
					}()
				}
			}
			wg.Wait()
			return
		case <-poke.C:
		case <-deadline:
			pl.t.Fatalf("lock workers did not stop within 90 s")
		}
	}
}

func (wk *procLockWorker) setState(s holdState) {
	wk.mu.Lock()
	wk.state = s
	wk.mu.Unlock()
}

// ready returns the worker's process and session, starting a process or
// dialling a session as needed.
func (wk *procLockWorker) ready() (*holderProc, uint64, error) {
	wk.mu.Lock()
	p, sess := wk.p, wk.session
	wk.mu.Unlock()
	if p == nil {
		wk.n++
		p = startHolderProc(wk.pl.t, fmt.Sprintf("w%d.%d", wk.id, wk.n), wk.pl.addrs, 500*time.Millisecond, 5*time.Second)
		wk.mu.Lock()
		wk.p, wk.session = p, 0
		wk.mu.Unlock()
	}
	if sess == 0 {
		r, err := p.call(60*time.Second, "dial")
		if err != nil {
			wk.dropProc(p)
			return nil, 0, err
		}
		f := strings.Fields(r)
		if len(f) != 2 || f[0] != "ok" {
			return nil, 0, fmt.Errorf("dial: %q", r)
		}
		if sess, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return nil, 0, err
		}
		wk.mu.Lock()
		wk.session = sess
		wk.mu.Unlock()
	}
	return p, sess, nil
}

// dropProc forgets a process that exited (or hangs: it is killed).
func (wk *procLockWorker) dropProc(p *holderProc) {
	p.kill()
	wk.mu.Lock()
	if wk.p == p {
		wk.p, wk.session = nil, 0
	}
	wk.mu.Unlock()
}

// ended handles a failed Acquire or Release: without a deadline they fail
// only when the session ends (or the test stops them), so the session
// must end soon; then the worker redials.
func (wk *procLockWorker) ended(p *holderProc, what, answer string, err error) {
	pl := wk.pl
	if err != nil { // the process is gone (killed by the nemesis) or hangs
		if !errors.Is(err, errHolderGone) {
			pl.t.Errorf("worker %d: %s: %v", wk.id, what, err)
		}
		wk.dropProc(p)
		return
	}
	if !pl.isStopped() {
		wait := pl.lease + 5*time.Second + 10*time.Second
		for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
			r, err := p.call(10*time.Second, "state")
			if err != nil {
				wk.dropProc(p)
				return
			}
			if strings.HasPrefix(r, "ok ended") {
				break
			}
			if time.Now().After(deadline) {
				pl.t.Errorf("worker %d: %s failed (%s) while its session lived on for %v more", wk.id, what, answer, wait)
				break
			}
		}
	}
	wk.mu.Lock()
	if wk.p == p {
		wk.session = 0
	}
	wk.mu.Unlock()
}

func (wk *procLockWorker) run() {
	pl := wk.pl
	for !pl.isStopped() {
		p, sess, err := wk.ready()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		wk.setState(acquiring)
		call := pl.rec.Now()
		r, err := p.call(2*time.Minute, "acquire", wk.lock)
		ret := pl.rec.Now()
		if err != nil || !strings.HasPrefix(r, "ok") {
			wk.setState(idle)
			wk.ended(p, "acquire", r, err)
			continue
		}
		seq, perr := parseGrant(strings.Fields(r)[1:])
		if perr != nil {
			pl.t.Errorf("worker %d: %v", wk.id, perr)
			wk.setState(idle)
			continue
		}
		wk.setState(holding)
		pl.hist.acquired(wk.id, wk.lock, sess, call, ret, seq.Generation)
		since := call
		holdEnd := time.Now().Add(time.Duration(wk.rng.Int64N(int64(40 * time.Millisecond))))
		var gone error
		for {
			at := pl.rec.Now()
			_, _, ok, err := holderCheck(p, 2*time.Minute)
			if err != nil {
				gone = err
				break
			}
			if ok {
				since = at
			}
			wk.mu.Lock()
			frozen := wk.frozen
			if !frozen && !time.Now().Before(holdEnd) {
				wk.state = releasing
				wk.mu.Unlock()
				break
			}
			wk.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		if gone != nil {
			pl.hist.lostHolding(wk.id, wk.lock, sess, since, gone.Error())
			wk.mu.Lock()
			wk.lost, wk.state = true, idle
			wk.mu.Unlock()
			wk.ended(p, "holding", "", gone)
			continue
		}
		rcall := pl.rec.Now()
		r, err = p.call(2*time.Minute, "release", wk.lock)
		rret := pl.rec.Now()
		if err == nil && strings.HasPrefix(r, "ok") {
			pl.hist.released(wk.id, wk.lock, sess, rcall, rret)
			wk.setState(idle)
			time.Sleep(time.Duration(wk.rng.Int64N(int64(20 * time.Millisecond))))
			continue
		}
		why := r
		if err != nil {
			why = err.Error()
		}
		pl.hist.lostHolding(wk.id, wk.lock, sess, since, "release failed: "+why)
		wk.mu.Lock()
		wk.lost, wk.state = true, idle
		wk.mu.Unlock()
		wk.ended(p, "release", r, err)
	}
}

// waitNoSessions waits until the master reports no live session.
func waitNoSessions(t *testing.T, cell *mastertest.ProcCell, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := procMaster(t, cell, timeout)
		st := procStatuses(cell)[m]
		if st != nil && st.Sessions == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master still has live sessions %v after every client closed or died: %+v", timeout, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkProcReplicaLocks kills the cell once every replica has caught up,
// rebuilds each replica's state machine from its own disk (latest
// snapshot, then its Raft log up to the commit index they all reached;
// every state from there on is after the cell went quiet) and
// checks its locks: no sessions, each lock free with no waiters, at the
// generation the master reported (gens) — no lower than any granted — and
// equal to its node's Stat.LockGeneration.
func checkProcReplicaLocks(t *testing.T, cell *mastertest.ProcCell, hist *lockHistory, gens map[string]uint64) {
	t.Helper()
	procCaughtUp(t, cell, 30*time.Second)
	var target uint64
	for _, st := range procStatuses(cell) {
		if st == nil {
			t.Fatalf("a replica did not answer after catching up")
		}
		if target == 0 || st.CommitIndex < target {
			target = st.CommitIndex
		}
	}
	cell.KillAll()
	for i := range cell.N() {
		f := replayReplicaFSM(t, cell.Dir(i), target)
		if s := f.Sessions(); len(s) != 0 {
			t.Errorf("%s: %d sessions live at index %d; want none", cell.ID(i), len(s), target)
		}
		for _, name := range lockNames {
			p := fsmPath(name)
			l, _ := f.LockState(p)
			n, ok := f.View().Get(p)
			_, _, _, maxGen := hist.counts(name)
			switch {
			case !ok:
				t.Errorf("%s: node %s is missing", cell.ID(i), p)
			case l.Held() || len(l.Waiters) > 0:
				t.Errorf("%s: %s with no session left", cell.ID(i), l)
			case l.Generation != gens[name]:
				t.Errorf("%s: %s at generation %d; the master reported %d", cell.ID(i), p, l.Generation, gens[name])
			case l.Generation < maxGen:
				t.Errorf("%s: %s: generation %d is below %d, which a holder was granted", cell.ID(i), p, l.Generation, maxGen)
			case n.Stat.LockGeneration != l.Generation:
				t.Errorf("%s: %s: node's lock generation %d, lock table's %d", cell.ID(i), p, n.Stat.LockGeneration, l.Generation)
			}
		}
	}
	t.Logf("every replica's state machine at index %d: locks free at generations %v", target, gens)
}

// replayReplicaFSM rebuilds a (stopped) replica's state machine from its
// directory: its latest snapshot, then its log up to index (if the
// snapshot is older).
func replayReplicaFSM(t *testing.T, dir string, index uint64) *fsm.FSM {
	t.Helper()
	store, err := raftstore.Open(raftstore.Options{Dir: filepath.Join(dir, "raft"), GCInterval: -1})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f := fsm.New(fsm.Config{})
	from := uint64(1)
	metas, err := snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(metas) > 0 {
		// A snapshot past index is a committed state later than index:
		// fine for the callers, who compare states after the cell went
		// quiet.
		_, rc, err := snaps.Open(metas[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		err = f.Restore(rc)
		if err != nil {
			t.Fatalf("%s: restore: %v", dir, err)
		}
		from = metas[0].Index + 1
	}
	first, err := store.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	for idx := max(from, first); idx <= index; idx++ {
		var l raft.Log
		if err := store.GetLog(idx, &l); err != nil {
			t.Fatalf("%s: log %d: %v", dir, idx, err)
		}
		f.Apply(&l)
	}
	return f
}
