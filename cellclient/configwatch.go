package cellclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
)

// ConfigVersion is one version of a configuration file.
type ConfigVersion struct {
	// Data is the file's contents at this version; Stat its metadata
	// (Stat.ContentGeneration is the version within the file's instance).
	Data []byte
	Stat fsapi.Stat
	// Skipped counts the versions of this file instance before this one
	// and after the previous version delivered whose contents were
	// replaced before WatchConfig could read them (0 unless writes
	// come faster than the watcher reads). hasp keeps no old contents, so
	// those contents are gone; their existence is not hidden.
	Skipped uint64
	// Deleted says the file was deleted (Data and Stat are zero); the
	// watch goes on, and delivers the file again when it is re-created.
	Deleted bool
	// Err ends the watch: the last value carries only Err.
	Err error
}

// WatchConfig delivers the configuration file called name as it is when
// WatchConfig returns (it reads it first), and then
// every new version of it, in order, until ctx or the session ends (the
// channel is then closed; the last value carries Err unless ctx ended).
// If the file does not exist yet, the first value is its creation.
//
// It reads the file after each change event of a watch started before
// the first read, so no change is missed, none is delivered twice, and
// versions come in strictly increasing order (instance, then content
// generation), across master fail-overs. A version replaced before it
// could be read is counted in the next value's Skipped rather than
// delivered: a consumer always ends on the latest version and can tell
// whether it saw all of them. A writer that needs every version seen
// (a rollout) waits until its watchers report it before writing the next.
//
// Read the channel, or the watch waits (and later versions coalesce).
func (c *Client) WatchConfig(ctx context.Context, name string) (<-chan ConfigVersion, error) {
	path, err := c.path(name)
	if err != nil {
		return nil, fmt.Errorf("watch config %s: %w", name, err)
	}
	w := &configWatch{c: c, name: name, path: path}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := c.watch(wctx, wctx, path, WatchOptions{})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch config %s: %w", name, err)
	}
	// The first read happens before WatchConfig returns, so the first
	// value is the version current at the call (a write made after it
	// returns is a later value, never a skipped first one).
	first, err := w.read(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("watch config %s: %w", name, err)
	}
	out := make(chan ConfigVersion)
	go func() {
		defer cancel()
		w.run(wctx, ch, out, first)
	}()
	return out, nil
}

type configWatch struct {
	c          *Client
	name, path string
	// The last version delivered: instance 0 means none or deleted.
	instance, generation uint64
	delivered            bool
}

func (w *configWatch) run(ctx context.Context, ch <-chan WatchEvent, out chan<- ConfigVersion, first *ConfigVersion) {
	defer close(out)
	if first != nil {
		select {
		case out <- *first:
		case <-ctx.Done():
			return
		}
	}
	for {
		err := w.follow(ctx, ch, out)
		if errors.Is(err, fsapi.ErrCompacted) {
			// Fell behind the master's history: watch again from now;
			// the next read catches up.
			if ch, err = w.c.watch(ctx, ctx, w.path, WatchOptions{}); err == nil {
				continue
			}
		}
		if ctx.Err() == nil {
			select {
			case out <- ConfigVersion{Err: fmt.Errorf("watch config %s: %w", w.name, err)}:
			case <-ctx.Done():
			}
		}
		return
	}
}

// follow reads the file, delivers it if it is new, and waits for the next
// change, until the watch fails or ends.
func (w *configWatch) follow(ctx context.Context, ch <-chan WatchEvent, out chan<- ConfigVersion) error {
	for {
		v, err := w.read(ctx)
		if err != nil {
			return err
		}
		if v != nil {
			select {
			case out <- *v:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := w.c.nextChange(ctx, ch); err != nil {
			return err
		}
	}
}

// read reads the file and returns the version to deliver, or nil if it is
// not newer than the last one delivered.
func (w *configWatch) read(ctx context.Context) (*ConfigVersion, error) {
	h, err := w.c.Open(ctx, w.name, nil)
	var data []byte
	var st fsapi.Stat
	if err == nil {
		data, st, err = h.GetContentsAndStat(ctx)
		h.Close()
	}
	switch {
	case gone(err):
		if w.instance == 0 {
			return nil, nil // still absent
		}
		w.instance, w.generation = 0, 0
		return &ConfigVersion{Deleted: true}, nil
	case err != nil:
		return nil, err
	}
	v := &ConfigVersion{Data: data, Stat: st}
	switch {
	case st.Instance < w.instance, st.Instance == w.instance && st.ContentGeneration <= w.generation:
		return nil, nil // seen already
	case st.Instance == w.instance:
		v.Skipped = st.ContentGeneration - w.generation - 1
	case w.delivered:
		v.Skipped = st.ContentGeneration - 1 // a new instance starts at 1
	}
	w.instance, w.generation, w.delivered = st.Instance, st.ContentGeneration, true
	return v, nil
}
