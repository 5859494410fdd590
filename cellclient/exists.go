package cellclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
)

// WaitExists blocks until the node called name exists and returns its
// metadata: ZooKeeper's exists-watch, without its one-shot pitfalls. If
// the node exists already it returns at once; otherwise it waits for the
// node's creation, across master fail-overs, until ctx or the session
// ends.
//
// It is built on Watch, which accepts a name that does not exist: the
// watch starts before the name is looked up, so a create racing the
// lookup is either seen by the lookup or delivered by the watch, never
// missed. The node may be deleted again by the time the caller acts on
// it: open it and handle fsapi.ErrNotExist as usual.
func (c *Client) WaitExists(ctx context.Context, name string) (fsapi.Stat, error) {
	path, err := c.path(name)
	if err != nil {
		return fsapi.Stat{}, fmt.Errorf("wait for %s: %w", name, err)
	}
	for {
		st, err := c.waitExistsOnce(ctx, name, path)
		if errors.Is(err, fsapi.ErrCompacted) {
			continue // fell behind the master's history: look again
		}
		if err != nil {
			return fsapi.Stat{}, fmt.Errorf("wait for %s: %w", name, err)
		}
		return st, nil
	}
}

func (c *Client) waitExistsOnce(ctx context.Context, name, path string) (fsapi.Stat, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the watch
	ch, err := c.watch(ctx, ctx, path, WatchOptions{})
	if err != nil {
		return fsapi.Stat{}, err
	}
	h, err := c.Open(ctx, name, nil)
	if err == nil {
		st, err := h.GetStat(ctx)
		h.Close()
		if !gone(err) {
			return st, err
		}
		// Deleted again between the Open and the GetStat: wait for the
		// next creation, which the watch (started earlier) delivers.
	} else if !errors.Is(err, fsapi.ErrNotExist) {
		return fsapi.Stat{}, err
	}
	for e := range ch {
		if e.Err != nil {
			return fsapi.Stat{}, e.Err
		}
		if e.Kind == ChangeCreated {
			return e.Stat, nil
		}
	}
	return fsapi.Stat{}, c.watchEndErr(ctx)
}
