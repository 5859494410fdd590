package cellclient

// This file holds what the recipes (barrier.go, group.go, configwatch.go,
// queue.go, consensus.go) share: waiting for a change without polling, and
// checking the names they are given. docs/recipes.md explains each recipe,
// its invariant and its cost.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/haspcell/hasp/fsapi"
)

// Reader/writer locks need no recipe: every node is one (Chubby §2.4).
// Readers Acquire(ctx, Shared) and never block each other; a writer
// Acquire(ctx, Exclusive) waits for the readers before it and holds off
// the readers after it (requests are granted in arrival order, so neither
// side starves), and only the next waiter is woken. See
// ExampleHandle_Acquire_readersWriter.

// errWatchEnded is returned when a watch closed without an error event
// and neither ctx nor the session ended (it should not happen).
var errWatchEnded = errors.New("cellclient: watch ended")

// recipeCheck looks at a directory's children and says whether the
// recipe's wait is over.
type recipeCheck func(ents []fsapi.DirEntry) (done bool, err error)

// waitDir calls check with the children of dir now, and again after every
// change to them, until check says done or fails, or ctx or the session
// ends. It never polls: between reads it waits on a watch of dir and its
// children, started before the first read, so a change made between a
// read and the wait is not missed (the watch delivers it). Several
// changes that arrived together cost one read. If the master's event
// history no longer holds what the watch needs (it fell behind), the
// watch starts again and the next read catches up: reads, not events,
// decide.
func (c *Client) waitDir(ctx context.Context, dir *Handle, check recipeCheck) error {
	for {
		err := c.waitDirOnce(ctx, dir, check)
		if !errors.Is(err, fsapi.ErrCompacted) {
			return err
		}
	}
}

func (c *Client) waitDirOnce(ctx context.Context, dir *Handle, check recipeCheck) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch
	ch, err := c.watch(ctx, ctx, dir.ref.Path, WatchOptions{Children: true})
	if err != nil {
		return err
	}
	for {
		ents, err := dir.ReadDir(ctx)
		if err != nil {
			return err
		}
		if done, err := check(ents); done || err != nil {
			return err
		}
		if err := c.nextChange(ctx, ch); err != nil {
			return err
		}
	}
}

// nextChange waits for the next event on ch and takes every event already
// queued behind it. It returns an error wrapping fsapi.ErrCompacted if the
// watch must start again, or why the watch ended.
func (c *Client) nextChange(ctx context.Context, ch <-chan WatchEvent) error {
	e, ok := <-ch // the watch ends when ctx does
	for {
		if !ok {
			return c.watchEndErr(ctx)
		}
		if e.Err != nil {
			return e.Err
		}
		select {
		case e, ok = <-ch:
		default:
			return nil
		}
	}
}

// watchEndErr says why a watch channel closed.
func (c *Client) watchEndErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return err
	}
	return errWatchEnded
}

// gone says err means the node (instance) a handle or name referred to
// no longer exists.
func gone(err error) bool {
	return errors.Is(err, fsapi.ErrHandleInvalid) || errors.Is(err, fsapi.ErrNotExist)
}

// openDir opens the directory called name, creating it (permanent) if it
// does not exist. Opening an existing node is a read (often answered from
// the cache); creating is a write, paid only once.
func (c *Client) openDir(ctx context.Context, name string) (*Handle, error) {
	h, err := c.Open(ctx, name, nil)
	if errors.Is(err, fsapi.ErrNotExist) {
		h, err = c.Open(ctx, name, &OpenOptions{Create: fsapi.CreateMay, Directory: true})
	}
	if err != nil {
		return nil, err
	}
	st, err := h.GetStat(ctx)
	if err != nil {
		h.Close()
		return nil, err
	}
	if !st.IsDir {
		h.Close()
		return nil, fmt.Errorf("%s: %w", name, fsapi.ErrNotDir)
	}
	return h, nil
}

// childName checks that id can name a child of dir (one valid name
// component) and returns the child's full name.
func childName(dir, prefix, id string) (string, error) {
	name := dir + "/" + prefix + id
	if _, path, err := fsapi.ParseName(name); err != nil || fsapi.Base(path) != prefix+id {
		if err == nil {
			err = fmt.Errorf("%w: %q is not one name component", fsapi.ErrBadName, id)
		}
		return "", fmt.Errorf("cellclient: id %q: %w", id, err)
	}
	return name, nil
}

// bySequence returns the names of the sequential nodes among ents whose
// names start with prefix, in sequence order (their names sort in it: the
// numbers have a fixed width).
func bySequence(ents []fsapi.DirEntry, prefix string) []string {
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name, prefix) && len(e.Name) == len(prefix)+fsapi.SequenceDigits && fsapi.MaybeSequential(e.Name) && !e.Stat.IsDir {
			out = append(out, e.Name)
		}
	}
	sort.Strings(out)
	return out
}

// byCreation sorts directory entries by the revision that created them:
// the order the cell applied the creates in, the same for every client.
func byCreation(ents []fsapi.DirEntry) []fsapi.DirEntry {
	out := append([]fsapi.DirEntry(nil), ents...)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Stat.CreatedRevision, out[j].Stat.CreatedRevision
		return a < b || a == b && out[i].Name < out[j].Name
	})
	return out
}
