package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// watchEventJSON is one line of hasp watch's output.
type watchEventJSON struct {
	Revision uint64        `json:"revision"`
	Kind     string        `json:"kind"` // created, modified, deleted, lock-acquired, lock-requested
	Path     string        `json:"path"` // full name
	Stat     watchStatJSON `json:"stat"`
	// Session and Mode: the lock holding or request of a lock event.
	Session uint64 `json:"session,omitempty"`
	Mode    string `json:"mode,omitempty"`
}

// watchStatJSON is a node's metadata in an event (for deleted, its last).
type watchStatJSON struct {
	IsDir             bool   `json:"is_dir"`
	Size              uint64 `json:"size"`
	Instance          uint64 `json:"instance"`
	ContentGeneration uint64 `json:"content_generation"`
	LockGeneration    uint64 `json:"lock_generation"`
	ACLGeneration     uint64 `json:"acl_generation"`
	Checksum          string `json:"checksum"`
	CreatedRevision   uint64 `json:"created_revision"`
	ModifiedRevision  uint64 `json:"modified_revision"`
	EphemeralOwner    uint64 `json:"ephemeral_owner"`
	Children          uint64 `json:"children"`
}

func newWatchEventJSON(e cellclient.WatchEvent) watchEventJSON {
	st := e.Stat
	j := watchEventJSON{Revision: e.Revision, Kind: e.Kind.String(), Path: e.Name, Session: e.Session,
		Stat: watchStatJSON{IsDir: st.IsDir, Size: st.Size, Instance: st.Instance, ContentGeneration: st.ContentGeneration,
			LockGeneration: st.LockGeneration, ACLGeneration: st.ACLGeneration, Checksum: checksum(st.Checksum),
			CreatedRevision: st.CreatedRevision, ModifiedRevision: st.ModifiedRevision,
			EphemeralOwner: st.EphemeralOwner, Children: st.Children}}
	switch e.Kind {
	case cellclient.ChangeLockAcquired, cellclient.ChangeLockRequested, cellclient.ChangeLockReleased:
		j.Mode = e.Mode.String()
	}
	return j
}

func (a *app) watchCmd() *cobra.Command {
	var recursive, children bool
	var from uint64
	var count int
	cmd := &cobra.Command{
		Use:   "watch PATH",
		Short: "Print the changes to a node as they happen, one JSON line each",
		Long: "watch prints one JSON line per change to PATH (with --recursive, to every node below it\n" +
			"too; with --children, to its direct children): {\"revision\", \"kind\", \"path\", \"stat\"}, and\n" +
			"for lock events \"session\" and \"mode\". Kinds: created, modified (contents), deleted,\n" +
			"lock-acquired, lock-requested (a request queued behind the lock). PATH need not exist.\n\n" +
			"It starts with the changes after now, or with those from revision --from on, and runs\n" +
			"until interrupted (or --count events), following master fail-overs without losing or\n" +
			"repeating a change. If the cell no longer holds the changes it needs next (--from\n" +
			"too old, or this process fell far behind), it says so with the current revision and\n" +
			"exits 1: re-read what you follow, then run watch --from that revision + 1.",
		Example: "  hasp watch /ls/dev/svc/config\n  hasp watch --recursive /ls/dev/svc --from 1200",
		Args:    cobra.ExactArgs(1),
		RunE: a.action(func(ctx context.Context, args []string) error {
			if count < 0 {
				return usagef("--count %d: must not be negative", count)
			}
			return a.watch(ctx, args[0], cellclient.WatchOptions{Recursive: recursive, Children: children, FromRevision: from}, count)
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&recursive, "recursive", "r", false, "also every node below PATH")
	f.BoolVar(&children, "children", false, "also PATH's direct children")
	f.Uint64Var(&from, "from", 0, "first revision to print changes of (0: from now)")
	f.IntVar(&count, "count", 0, "exit after this many events (0: run until interrupted)")
	return cmd
}

func (a *app) watch(ctx context.Context, name string, opts cellclient.WatchOptions, count int) error {
	if err := checkName(name); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, a.timeout)
	c, err := a.dial(dctx, "hasp watch")
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	// --timeout bounds the start of the watch (its first answer), not the
	// watch.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(a.timeout, cancel)
	ch, err := c.Watch(wctx, name, opts)
	if !timer.Stop() {
		return fmt.Errorf("watch %s: the master did not answer within --timeout %v (%v)", name, a.timeout, err)
	}
	if err != nil {
		return err
	}
	return a.printEvents(wctx, c, name, ch, count)
}

func (a *app) printEvents(ctx context.Context, c *cellclient.Client, name string, ch <-chan cellclient.WatchEvent, count int) error {
	for n := 0; count == 0 || n < count; n++ {
		e, ok := <-ch
		if !ok {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return fmt.Errorf("watch %s ended: %w", name, c.Err())
		}
		var ce *fsapi.CompactedError
		switch {
		case errors.As(e.Err, &ce):
			return fmt.Errorf("watch %s: the cell no longer holds the changes from revision %d (oldest kept: %d); "+
				"the current revision is %d: re-read %s, then resume with: hasp watch %s --from %d",
				name, ce.From, ce.Floor, ce.Current, name, name, ce.Current+1)
		case e.Err != nil:
			return fmt.Errorf("watch %s: %w", name, e.Err)
		}
		if err := a.emit(newWatchEventJSON(e)); err != nil {
			return err
		}
	}
	return nil
}
