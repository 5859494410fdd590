package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// devCell is the address list of `haspd --dev`.
const devCell = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005"

// app is one invocation of hasp: its streams and its global flags.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	cellFlag string
	json     bool
	timeout  time.Duration
	addrs    []string // parsed from cellFlag
}

// opError marks an operation's failure (exit 1); any other error out of
// cobra is a usage error (exit 2).
type opError struct{ err error }

func (e *opError) Error() string { return e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// usageError is a usage problem found while running a command (a bad flag
// value, a malformed name): exit 2 even though it comes out of RunE.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// execute parses args, runs the command and maps the outcome to an exit
// status, printing errors on stderr.
func (a *app) execute(args []string) int {
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cmd, err := root.ExecuteContextC(ctx)
	return a.exitCode(cmd, err)
}

func (a *app) exitCode(cmd *cobra.Command, err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(a.stderr, ee.msg)
		}
		return ee.code
	}
	var oe *opError
	if errors.As(err, &oe) {
		fmt.Fprintf(a.stderr, "hasp: %s\n", oneLine(err))
		return 1
	}
	fmt.Fprintf(a.stderr, "hasp: %s\nRun '%s --help' for usage.\n", oneLine(err), cmd.CommandPath())
	return 2
}

// oneLine makes an error's message a single line and drops the package
// prefixes of the library's messages, which mean nothing to a user.
func oneLine(err error) string {
	msg := err.Error()
	for _, p := range []string{"fsapi: ", "cellclient: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return strings.Join(strings.Fields(msg), " ")
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "hasp",
		Short: "Command-line client for a hasp cell",
		Long: "hasp talks to a hasp cell: it lists, reads and writes nodes, reports the replicas'\n" +
			"state and generates load. Names are full: /ls/CELL/a/b, or /ls/local/a/b for the\n" +
			"cell hasp is connected to.\n\n" +
			"Exit status: 0 success, 1 the operation failed, 2 usage error; lock and elect\n" +
			"exit with the command's status, or 3 if the lock was lost while it ran.",
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	cell := os.Getenv("HASP_CELL")
	if cell == "" {
		cell = devCell
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.cellFlag, "cell", cell, "the cell's replicas, ADDR,ADDR,... (env HASP_CELL)")
	pf.BoolVar(&a.json, "json", false, "print one JSON object per result per line")
	pf.DurationVar(&a.timeout, "timeout", 10*time.Second, "give up after this long (bench: per operation)")
	root.AddCommand(a.lsCmd(), a.statCmd(), a.catCmd(), a.mkdirCmd(), a.rmCmd(), a.putCmd(),
		a.statusCmd(), a.benchCmd(), a.lockCmd(), a.electCmd(), a.leaderCmd(), a.watchCmd(), a.txnCmd())
	return root
}

// action adapts fn to a cobra RunE: it checks the global flags first and
// marks fn's errors as operation errors unless they are usage errors.
func (a *app) action(fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := a.parseGlobals(); err != nil {
			return err
		}
		err := fn(cmd.Context(), args)
		var ue *usageError
		var ee *exitError
		if err == nil || errors.As(err, &ue) || errors.As(err, &ee) {
			return err
		}
		return &opError{err}
	}
}

func (a *app) parseGlobals() error {
	a.addrs = nil
	for s := range strings.SplitSeq(a.cellFlag, ",") {
		if s = strings.TrimSpace(s); s != "" {
			a.addrs = append(a.addrs, s)
		}
	}
	if len(a.addrs) == 0 {
		return usagef("--cell: no replica addresses")
	}
	if a.timeout <= 0 {
		return usagef("--timeout %v: must be positive", a.timeout)
	}
	return nil
}

// checkName rejects a malformed name before any session is made.
func checkName(name string) error {
	if _, _, err := fsapi.ParseName(name); err != nil {
		return &usageError{err}
	}
	return nil
}

// dial creates a session with the cell, within ctx.
func (a *app) dial(ctx context.Context, name string) (*cellclient.Client, error) {
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: a.addrs, ClientName: name})
	if err != nil {
		return nil, fmt.Errorf("cannot reach a master at %s: %w", strings.Join(a.addrs, ","), err)
	}
	return c, nil
}

// withClient runs fn with a fresh session, the whole bounded by --timeout,
// and closes the session (deleting its ephemeral nodes) before returning.
func (a *app) withClient(ctx context.Context, fn func(context.Context, *cellclient.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	c, err := a.dial(ctx, "hasp")
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// withHandle opens the existing node called name in a fresh session (see
// withClient) and runs fn with its handle.
func (a *app) withHandle(ctx context.Context, name string, fn func(context.Context, *cellclient.Handle) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	return a.withClient(ctx, func(ctx context.Context, c *cellclient.Client) error {
		h, err := c.Open(ctx, name, nil)
		if err != nil {
			return err
		}
		return fn(ctx, h)
	})
}

// emit prints v as one line of JSON.
func (a *app) emit(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = a.stdout.Write(b)
	return err
}
