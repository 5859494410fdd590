package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/lease"
)

// exitLockLost is hasp's exit status when the lock (or leadership) was
// lost while CMD ran.
const exitLockLost = 3

// exitError makes hasp exit with a given status after printing msg (if
// any) on stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// lockCheckEvery is how often a running lock or leadership is confirmed
// with the master (besides watching the session's state).
const lockCheckEvery = time.Second

type lockFlags struct {
	lockDelay time.Duration
	killAfter time.Duration
}

func (f *lockFlags) add(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&f.lockDelay, "lock-delay", cellclient.DefaultLockDelay,
		"if this session is lost, nobody else gets the lock for this long (0 to 60s)")
	cmd.Flags().DurationVar(&f.killAfter, "kill-after", 10*time.Second,
		"when the lock is lost, send SIGKILL this long after SIGTERM")
}

func (f *lockFlags) check() error {
	if f.lockDelay < 0 || f.lockDelay > cellclient.MaxLockDelay {
		return usagef("--lock-delay %v: want 0 to %v", f.lockDelay, cellclient.MaxLockDelay)
	}
	if f.killAfter < 0 {
		return usagef("--kill-after %v: must not be negative", f.killAfter)
	}
	return nil
}

func (a *app) lockCmd() *cobra.Command {
	var (
		shared, try bool
		wait        time.Duration
		lf          lockFlags
	)
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "lock PATH [flags] -- CMD [ARGS...]",
		Short: "Run a command while holding a lock",
		Long: "lock acquires the lock on PATH (creating the file if needed), runs CMD with\n" +
			"HASP_SEQUENCER set to the lock's sequencer, releases the lock when CMD exits and\n" +
			"exits with CMD's status.\n\n" +
			"If the lock may have been lost while CMD runs, CMD is stopped so that it never runs\n" +
			"beside the next holder: when the session enters jeopardy, CMD gets SIGTERM early\n" +
			"enough to be gone (SIGKILL --kill-after later) before the lock-delay could let\n" +
			"anyone else in, unless the session recovers first; when the session expires or the\n" +
			"lock is found stale, CMD is stopped at once. hasp then exits with status 3.\n\n" +
			"With --try, a held lock makes hasp exit 1 at once, saying it is held.\n" +
			"Signals sent to hasp (SIGINT, SIGTERM, SIGHUP) are passed on to CMD.",
		Example: "  hasp lock /ls/dev/jobs/nightly -- ./nightly.sh\n" +
			"  hasp lock --try /ls/dev/jobs/nightly -- ./nightly.sh || echo \"another run holds it\"",
		Args: cobra.MinimumNArgs(2),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if err := lf.check(); err != nil {
				return err
			}
			name, argv, err := splitCommand(args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			mode := cellclient.Exclusive
			if shared {
				mode = cellclient.Shared
			}
			return a.runLocked(ctx, name, argv, lf, func(ctx context.Context, c *cellclient.Client) (*holding, error) {
				h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMay,
					LockDelay: cellclient.LockDelay(lf.lockDelay)})
				if err != nil {
					return nil, err
				}
				actx, cancel := ctx, context.CancelFunc(func() {})
				if wait > 0 {
					actx, cancel = context.WithTimeout(ctx, wait)
				}
				defer cancel()
				if try {
					err = h.TryAcquire(actx, mode)
				} else {
					err = h.Acquire(actx, mode)
				}
				if errors.Is(err, fsapi.ErrLockDelay) {
					err = fmt.Errorf("lock %s is held: free, but in lock-delay after its last holder was lost: %w", name, err)
				} else if errors.Is(err, fsapi.ErrHeld) {
					err = fmt.Errorf("lock %s is held: %w", name, err)
				}
				if err != nil {
					h.Close()
					return nil, err
				}
				seq, err := h.GetSequencer()
				if err != nil {
					h.Close()
					return nil, err
				}
				return &holding{seq: seq, release: func(ctx context.Context) error {
					defer h.Close()
					return h.Release(ctx)
				}}, nil
			})
		}),
	}
	cmd.Flags().BoolVar(&shared, "shared", false, "take the lock shared (any number of shared holders) instead of exclusive")
	cmd.Flags().BoolVar(&try, "try", false, "do not wait: exit 1 at once if the lock is held")
	cmd.Flags().DurationVar(&wait, "wait", 0, "give up waiting for the lock after this long (0: wait forever)")
	lf.add(cmd)
	return cmd
}

func (a *app) electCmd() *cobra.Command {
	var (
		identity string
		lf       lockFlags
	)
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:   "elect PATH --identity ID [flags] -- CMD [ARGS...]",
		Short: "Campaign for leadership and run a command while leader",
		Long: "elect campaigns in the election on PATH (waiting its turn), publishes ID as the\n" +
			"leader's identity, runs CMD with HASP_SEQUENCER set while it leads, and resigns when\n" +
			"CMD exits, exiting with CMD's status. Losing leadership is handled as by `hasp lock`\n" +
			"(CMD is stopped; exit status 3).",
		Example: "  hasp elect /ls/dev/svc/leader --identity $(hostname):8080 -- ./serve",
		Args:    cobra.MinimumNArgs(2),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if err := lf.check(); err != nil {
				return err
			}
			name, argv, err := splitCommand(args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			if identity == "" {
				host, _ := os.Hostname()
				identity = fmt.Sprintf("%s:%d", host, os.Getpid())
			}
			return a.runLocked(ctx, name, argv, lf, func(ctx context.Context, c *cellclient.Client) (*holding, error) {
				e := cellclient.NewElection(c, name)
				e.LockDelay = cellclient.LockDelay(lf.lockDelay)
				l, err := e.Campaign(ctx, identity)
				if err != nil {
					return nil, err
				}
				return &holding{seq: l.Sequencer(), release: l.Resign}, nil
			})
		}),
	}
	cmd.Flags().StringVar(&identity, "identity", "", "the identity to publish (default HOST:PID)")
	lf.add(cmd)
	return cmd
}

func (a *app) leaderCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "leader PATH",
		Short: "Print the current leader of an election",
		Long:  "leader prints the identity the current leader published; --json adds its sequencer.\nWith no leader it exits 1.",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if err := checkName(args[0]); err != nil {
				return err
			}
			return a.withClient(ctx, func(ctx context.Context, c *cellclient.Client) error {
				li, err := cellclient.NewElection(c, args[0]).Leader(ctx)
				if err != nil {
					return err
				}
				if a.json {
					return a.emit(map[string]string{"identity": li.Identity, "sequencer": li.Sequencer.String()})
				}
				_, err = fmt.Fprintln(a.stdout, li.Identity)
				return err
			})
		}),
	}
}

// splitCommand splits PATH and CMD ARGS; dash is where cobra saw "--".
func splitCommand(args []string, dash int) (string, []string, error) {
	if dash != 1 {
		return "", nil, usagef("want PATH -- CMD [ARGS...] (put -- before the command)")
	}
	if err := checkName(args[0]); err != nil {
		return "", nil, err
	}
	return args[0], args[1:], nil
}

// holding is a held lock or leadership.
type holding struct {
	seq     cellclient.Sequencer
	release func(context.Context) error
}

// runLocked is lock and elect:
//
//  1. Dial a session and take the lock (acquire).
//  2. Start CMD in its own process group with HASP_SEQUENCER set.
//  3. Supervise: pass signals on; on jeopardy, schedule CMD's termination
//     so it is gone before the lock-delay ends (cancelled if the session
//     recovers); on expiry or a stale sequencer, terminate at once.
//  4. When CMD exits: release (if not lost) and exit with its status, or 3.
func (a *app) runLocked(ctx context.Context, name string, argv []string, lf lockFlags,
	acquire func(context.Context, *cellclient.Client) (*holding, error)) error {
	dctx, cancel := context.WithTimeout(ctx, a.timeout)
	c, err := a.dial(dctx, "hasp lock "+name)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	hold, err := acquire(ctx, c)
	if err != nil {
		return err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.stdin, a.stdout, a.stderr
	cmd.Env = append(os.Environ(), "HASP_SEQUENCER="+hold.seq.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		rctx, rcancel := context.WithTimeout(context.Background(), a.timeout)
		defer rcancel()
		hold.release(rctx)
		return usagef("cannot run %s: %v", argv[0], err)
	}
	lost := supervise(cmd, c, hold.seq, lf)
	if lost != nil {
		return &exitError{code: exitLockLost, msg: fmt.Sprintf("hasp: lock on %s lost while %s ran: %v; it was stopped",
			name, argv[0], oneLine(lost))}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), a.timeout)
	defer rcancel()
	if err := hold.release(rctx); err != nil {
		fmt.Fprintf(a.stderr, "hasp: release %s: %s (the lock goes when the session ends)\n", name, oneLine(err))
	}
	return &exitError{code: exitStatus(cmd.ProcessState)}
}

// exitStatus is a finished command's status as a shell reports it.
func exitStatus(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// supervise waits for cmd to exit and returns why the lock was lost (nil
// if it was held throughout).
func supervise(cmd *exec.Cmd, c *cellclient.Client, seq cellclient.Sequencer, lf lockFlags) error {
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	group := func(sig syscall.Signal) { syscall.Kill(-cmd.Process.Pid, sig) }

	check := time.NewTicker(lockCheckEvery)
	defer check.Stop()
	var (
		lost            error
		termAt, killAt  <-chan time.Time
		termed, stopped bool
	)
	// stopBy arranges for CMD to get SIGTERM at term and SIGKILL at kill.
	stopBy := func(term, kill time.Time) {
		termAt, killAt = time.After(time.Until(term)), time.After(time.Until(kill))
	}
	lostNow := func(why error) {
		if lost != nil {
			return
		}
		lost = why
		now := time.Now()
		stopBy(now, now.Add(lf.killAfter))
	}
	for {
		state, changed := c.StateChange()
		switch {
		case lost != nil:
		case state == lease.Expired:
			lostNow(fmt.Errorf("session ended: %w", c.Err()))
			continue
		case state == lease.Jeopardy && termAt == nil:
			// The master may expire the session from now on; nobody else
			// can be granted the lock before now + lock-delay (less the
			// clock-rate bound). CMD must be gone by then.
			now := time.Now()
			deadline := now.Add(time.Duration(float64(lf.lockDelay) * (1 - 2*lease.DefaultEpsilon)))
			term := deadline.Add(-lf.killAfter)
			if term.Before(now) {
				term = now
			}
			stopBy(term, deadline)
		case state == lease.Safe && termAt != nil && !termed:
			termAt, killAt = nil, nil // recovered in time
		}
		select {
		case <-exited:
			return lost
		case s := <-sigs:
			group(s.(syscall.Signal))
		case <-changed:
		case <-check.C:
			ctx, cancel := context.WithTimeout(context.Background(), lockCheckEvery)
			err := c.CheckSequencer(ctx, seq)
			cancel()
			if errors.Is(err, fsapi.ErrStaleSequencer) {
				lostNow(err)
			}
		case <-termAt:
			termAt, termed = nil, true
			if lost == nil {
				lost = errors.New("session in jeopardy for too long: the lock may pass to another holder")
			}
			group(syscall.SIGTERM)
		case <-killAt:
			killAt = nil
			if !stopped {
				stopped = true
				if lost == nil {
					lost = errors.New("session in jeopardy for too long: the lock may pass to another holder")
				}
				group(syscall.SIGKILL)
			}
		}
	}
}
