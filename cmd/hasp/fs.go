package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// maxInput bounds what put reads from stdin; the cell's own limit
// (256 KiB by default) is far lower and is checked by the client.
const maxInput = 64 << 20

func (a *app) lsCmd() *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls PATH",
		Short: "List a directory's children (a file lists itself)",
		Example: "  hasp ls /ls/dev\n  hasp ls -l /ls/local/svc\n" +
			"  hasp ls --json /ls/dev/svc     # one object per child",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show type, size, generation and ephemeral owner")
	cmd.RunE = a.action(func(ctx context.Context, args []string) error {
		return a.ls(ctx, args[0], long)
	})
	return cmd
}

func (a *app) ls(ctx context.Context, name string, long bool) error {
	return a.withHandle(ctx, name, func(ctx context.Context, h *cellclient.Handle) error {
		dir := h.Name()
		ents, err := h.ReadDir(ctx)
		if errors.Is(err, fsapi.ErrNotDir) {
			st, err := h.GetStat(ctx)
			if err != nil {
				return err
			}
			ents, dir = []fsapi.DirEntry{{Name: baseName(h.Name()), Stat: st}}, parentName(h.Name())
		} else if err != nil {
			return err
		}
		if !a.json {
			return writeEntries(a.stdout, ents, long)
		}
		for _, e := range ents {
			if err := a.emit(newNodeJSON(childName(dir, e.Name), e.Stat)); err != nil {
				return err
			}
		}
		return nil
	})
}

// parentName is the full name of a full name's parent.
func parentName(full string) string {
	cell, p, err := fsapi.ParseName(full)
	if err != nil {
		return full
	}
	return fsapi.FullName(cell, fsapi.Parent(p))
}

func (a *app) statCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "stat PATH",
		Short:   "Show a node's metadata",
		Example: "  hasp stat /ls/dev/svc/config\n  hasp stat --json /ls/dev/svc/config",
		Args:    cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.stat(ctx, args[0])
		}),
	}
}

func (a *app) stat(ctx context.Context, name string) error {
	return a.withHandle(ctx, name, func(ctx context.Context, h *cellclient.Handle) error {
		st, err := h.GetStat(ctx)
		if err != nil {
			return err
		}
		li, err := h.GetLock(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return a.emit(statJSON{newNodeJSON(h.Name(), st), newLockJSON(li)})
		}
		if err := writeStat(a.stdout, h.Name(), st); err != nil {
			return err
		}
		return writeLock(a.stdout, li)
	})
}

func (a *app) catCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat PATH",
		Short: "Write a file's contents to stdout, as they are",
		Long: "cat writes a file's whole contents to stdout, byte for byte. With --json it prints\n" +
			"the file's metadata with the contents base64-encoded in \"data\".",
		Args: cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.cat(ctx, args[0])
		}),
	}
}

// catJSON is cat's --json output.
type catJSON struct {
	nodeJSON
	Data []byte `json:"data"` // base64
}

func (a *app) cat(ctx context.Context, name string) error {
	return a.withHandle(ctx, name, func(ctx context.Context, h *cellclient.Handle) error {
		data, st, err := h.GetContentsAndStat(ctx)
		if err != nil {
			return err
		}
		if a.json {
			return a.emit(catJSON{newNodeJSON(h.Name(), st), data})
		}
		_, err = a.stdout.Write(data)
		return err
	})
}

func (a *app) mkdirCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mkdir PATH",
		Short: "Create a directory (its parent must exist)",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.mkdir(ctx, args[0])
		}),
	}
}

func (a *app) mkdir(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	return a.withClient(ctx, func(ctx context.Context, c *cellclient.Client) error {
		h, err := c.Open(ctx, name, &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true})
		if err != nil {
			return err
		}
		if !a.json {
			return nil
		}
		st, err := h.GetStat(ctx)
		if err != nil {
			return err
		}
		return a.emitCreated(h, st)
	})
}

// emitCreated prints a node's metadata with "created".
func (a *app) emitCreated(h *cellclient.Handle, st fsapi.Stat) error {
	j := newNodeJSON(h.Name(), st)
	created := h.Created()
	j.Created = &created
	return a.emit(j)
}

func (a *app) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm PATH",
		Short: "Delete a file, or a directory that has no children",
		Args:  cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			return a.rm(ctx, args[0])
		}),
	}
}

func (a *app) rm(ctx context.Context, name string) error {
	return a.withHandle(ctx, name, func(ctx context.Context, h *cellclient.Handle) error {
		if err := h.Delete(ctx); err != nil {
			return err
		}
		if a.json {
			return a.emit(struct {
				Path    string `json:"path"`
				Deleted bool   `json:"deleted"`
			}{h.Name(), true})
		}
		return nil
	})
}

// putOptions are put's flags.
type putOptions struct {
	ifGen      uint64
	ifGenSet   bool
	ephemeral  bool
	sequential bool
}

func (a *app) putCmd() *cobra.Command {
	var o putOptions
	cmd := &cobra.Command{
		Use:   "put PATH [DATA|-]",
		Short: "Create a file or replace its contents",
		Long: "put writes DATA, or stdin when DATA is - or absent, as the file's whole contents.\n" +
			"If the file does not exist it is created with DATA as its initial contents.\n\n" +
			"--if-generation N makes the write a compare-and-swap: it fails unless the file\n" +
			"exists at content generation N. --if-generation 0 means \"create, never replace\".\n\n" +
			"--ephemeral creates an ephemeral file, owned by this command's session: it fails if\n" +
			"the file exists, and the file disappears when the command's session ends, that is\n" +
			"as soon as hasp exits. It is meant for trying ephemeral nodes out, not for keeping them.\n\n" +
			"--sequential creates a new file named PATH followed by the directory's next sequence\n" +
			"number (ten digits, e.g. job-0000000042) and prints only that name. Numbers increase\n" +
			"and are never reused within a directory.",
		Example: "  hasp put /ls/dev/svc/config 'v1'\n  echo v2 | hasp put /ls/dev/svc/config\n" +
			"  hasp put --if-generation 2 /ls/dev/svc/config v3\n" +
			"  job=$(hasp put --sequential /ls/dev/queue/job- 'payload')",
		Args: cobra.RangeArgs(1, 2),
	}
	cmd.Flags().Uint64Var(&o.ifGen, "if-generation", 0, "write only if the file's content generation is N (0: only if absent)")
	cmd.Flags().BoolVar(&o.ephemeral, "ephemeral", false, "create an ephemeral file (deleted when this command's session ends)")
	cmd.Flags().BoolVar(&o.sequential, "sequential", false, "create PATH + the next sequence number; print the name created")
	cmd.RunE = a.action(func(ctx context.Context, args []string) error {
		o.ifGenSet = cmd.Flags().Changed("if-generation")
		return a.put(ctx, args, o)
	})
	return cmd
}

func (a *app) put(ctx context.Context, args []string, o putOptions) error {
	name := args[0]
	if err := checkName(name); err != nil {
		return err
	}
	if o.ephemeral && o.ifGenSet && o.ifGen != 0 {
		return usagef("--ephemeral creates the file; it cannot be combined with --if-generation %d", o.ifGen)
	}
	if o.sequential && o.ifGenSet {
		return usagef("--sequential always creates a new file; it cannot be combined with --if-generation")
	}
	data, err := a.putData(args)
	if err != nil {
		return err
	}
	return a.withClient(ctx, func(ctx context.Context, c *cellclient.Client) error {
		h, err := openForPut(ctx, c, name, data, o)
		if err != nil {
			return err
		}
		var st fsapi.Stat
		if h.Created() {
			st, err = h.GetStat(ctx)
		} else {
			st, err = h.SetContents(ctx, data, o.ifGen)
		}
		if err != nil {
			return err
		}
		if o.sequential && !a.json {
			_, err := fmt.Fprintln(a.stdout, h.Name()) // only the name: for scripts
			return err
		}
		return a.printPut(h, st)
	})
}

// putData is the DATA argument, or stdin.
func (a *app) putData(args []string) ([]byte, error) {
	if len(args) == 2 && args[1] != "-" {
		return []byte(args[1]), nil
	}
	data, err := io.ReadAll(io.LimitReader(a.stdin, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("stdin: more than %d bytes", maxInput)
	}
	return data, nil
}

// openForPut opens the file put writes, creating it with data when put
// may: always, unless --if-generation N > 0 asks for an existing file.
func openForPut(ctx context.Context, c *cellclient.Client, name string, data []byte, o putOptions) (*cellclient.Handle, error) {
	opts := &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: data}
	switch {
	case o.sequential:
		opts.Create, opts.Ephemeral, opts.Sequential = fsapi.CreateMust, o.ephemeral, true
	case o.ephemeral || o.ifGenSet && o.ifGen == 0:
		opts.Create, opts.Ephemeral = fsapi.CreateMust, o.ephemeral
	case o.ifGenSet:
		opts = nil
	}
	return c.Open(ctx, name, opts)
}

func (a *app) printPut(h *cellclient.Handle, st fsapi.Stat) error {
	if a.json {
		return a.emitCreated(h, st)
	}
	verb := "wrote"
	if h.Created() {
		verb = "created"
	}
	_, err := fmt.Fprintf(a.stdout, "%s %s: %d bytes, content generation %d\n", verb, h.Name(), st.Size, st.ContentGeneration)
	return err
}
