package cellclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/locks"
)

// OpenOptions say how to open a node. The zero value opens an existing node.
type OpenOptions struct {
	// Create says whether Open may or must create the node.
	Create fsapi.CreateMode
	// Ephemeral makes a created node belong to this session: it is deleted
	// when the session ends.
	Ephemeral bool
	// Directory creates a directory rather than a file.
	Directory bool
	// Contents are a created file's initial contents.
	Contents []byte
	// LockDelay is how long the node's lock stays unavailable to others if
	// this handle is lost while holding it (its session expires): nil means
	// DefaultLockDelay (10 s); 0 to MaxLockDelay (60 s) are allowed, 0
	// meaning none. Use LockDelay(d) to set it. A Release never starts it.
	LockDelay *time.Duration
	// Events chooses the handle events Handle.Events delivers (see
	// EventMask); 0 for none.
	Events EventMask
	// Sequential creates a new node whose name is the name given followed
	// by the parent directory's next sequence number, ten digits with
	// leading zeros (/ls/c/q/job- → /ls/c/q/job-0000000042). The cell
	// picks the number when it applies the create: numbers only increase
	// within a directory and are never handed out twice, across master
	// fail-overs too. Handle.Name is the name created. A sequential Open
	// always creates (Create may be left CreateNo); it may be Ephemeral.
	Sequential bool
}

// Open opens the node called name (/ls/CELL/...; "local" for this cell),
// creating it if opts say so. A nil opts opens an existing node.
func (c *Client) Open(ctx context.Context, name string, opts *OpenOptions) (*Handle, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	path, err := c.path(name)
	if err != nil {
		return nil, err
	}
	if opts.Sequential {
		if err := fsapi.CheckSequentialPath(path); err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		if opts.Create == fsapi.CreateNo {
			cp := *opts
			cp.Create = fsapi.CreateMust
			opts = &cp
		}
	}
	lockDelay := DefaultLockDelay
	if opts.LockDelay != nil {
		if err := locks.ValidateLockDelay(*opts.LockDelay); err != nil {
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		lockDelay = *opts.LockDelay
	}
	if len(opts.Contents) > c.contentLimit {
		return nil, fmt.Errorf("open %s: %w: contents of %d bytes exceed the cell's limit of %d",
			name, fsapi.ErrTooLarge, len(opts.Contents), c.contentLimit)
	}
	var resp wire.OpenResponse
	if opts.Create == fsapi.CreateNo {
		if st, ok := c.cachedStat(path); ok {
			resp.Stat = st // a repeated Open costs no RPC
		} else if c.cachedAbsent(path) {
			return nil, fmt.Errorf("open %s: %w: %s (cached)", name, fsapi.ErrNotExist, path)
		} else {
			req := &wire.OpenRequest{Header: c.header(), Path: path}
			tok := c.cache.token()
			err = c.read(ctx, wire.MsgOpen, req, &resp)
			c.cache.put(tok, resp.Header(), func(rev uint64) {
				if err == nil {
					c.cache.c.PutStat(path, rev, resp.Stat)
				} else if errors.Is(err, fsapi.ErrNotExist) {
					c.cache.c.PutAbsent(path, rev)
				}
			})
		}
	} else {
		err = c.write(ctx, wire.MsgOpen, func(h wire.Header, w wire.WriteHeader) any {
			return &wire.OpenRequest{Header: h, WriteHeader: w, Path: path, Create: opts.Create,
				Ephemeral: opts.Ephemeral, Directory: opts.Directory, Contents: opts.Contents, Sequential: opts.Sequential}
		}, &resp)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if opts.Sequential {
		// A replica that did not know the option would have created the
		// prefix itself and named nothing.
		if len(resp.Path) != len(path)+fsapi.SequenceDigits || !strings.HasPrefix(resp.Path, path) || !fsapi.MaybeSequential(resp.Path) {
			return nil, fmt.Errorf("open %s: %w: the master named the sequential node %q", name, fsapi.ErrBadRequest, resp.Path)
		}
		path = resp.Path
	}
	h := &Handle{c: c, name: fsapi.FullName(c.cell, path), ref: wire.NodeRef{Path: path, Instance: resp.Stat.Instance},
		created: resp.Created, id: c.handleIDs.Add(1), lockDelay: lockDelay}
	h.poisonCtx, h.poison = context.WithCancel(context.Background())
	if err := h.startEvents(ctx, opts.Events, &resp); err != nil { // handleevents.go
		h.shut()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return h, nil
}

// path checks a name and returns the path inside this client's cell.
func (c *Client) path(name string) (string, error) {
	cell, path, err := fsapi.ParseName(name)
	if err != nil {
		return "", err
	}
	if cell != fsapi.LocalCell && cell != c.cell {
		return "", fmt.Errorf("%w: %s is in cell %q; this client is connected to %q", fsapi.ErrWrongCell, name, cell, c.cell)
	}
	return path, nil
}

// Handle is an open node: one instance of it. Once that node is deleted the
// handle fails with fsapi.ErrHandleInvalid, even if the name is created
// again. A Handle is safe for concurrent use.
type Handle struct {
	c       *Client
	name    string
	ref     wire.NodeRef // without the sequencer: see nodeRef
	created bool
	// id names the handle to the master as a lock holder (unique within
	// the session); lockDelay is its lock-delay.
	id        uint64
	lockDelay time.Duration

	poisonCtx context.Context // ends at Close and Poison
	poison    context.CancelFunc
	// events delivers the handle events chosen at Open (handleevents.go);
	// nil if none were.
	events chan WatchEvent

	mu       sync.Mutex // protects following fields
	closed   error
	lk       lockState
	seqBytes []byte // SetSequencer's sequencer, encoded
}

// Name is the node's full name.
func (h *Handle) Name() string { return h.name }

// Created says whether Open created the node.
func (h *Handle) Created() bool { return h.created }

// Instance is the node instance this handle belongs to.
func (h *Handle) Instance() uint64 { return h.ref.Instance }

// Close releases the handle, and the lock if the handle holds it (an
// Acquire in progress is withdrawn). It never fails; later calls on the
// handle fail with fsapi.ErrHandleClosed.
func (h *Handle) Close() error {
	h.shut()
	h.mu.Lock()
	held := h.lk.held
	h.mu.Unlock()
	if held && h.c.Err() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), h.c.cfg.AttemptTimeout)
		defer cancel()
		if err := h.release(ctx); err != nil {
			h.c.log.Warn("release at handle close failed; the lock goes when the session ends", "name", h.name, "err", err)
		}
	}
	return nil
}

// Poison makes outstanding and later calls on the handle fail with
// fsapi.ErrHandleClosed, without closing it: a way for one goroutine to
// cancel another's calls.
func (h *Handle) Poison() { h.shut() }

func (h *Handle) shut() {
	h.mu.Lock()
	if h.closed == nil {
		h.closed = fmt.Errorf("%s: %w", h.name, fsapi.ErrHandleClosed)
	}
	h.mu.Unlock()
	h.poison()
}

// call runs op with a context that also ends when the handle is poisoned.
func (h *Handle) call(ctx context.Context, what string, op func(context.Context) error) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed != nil {
		return closed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.poisonCtx, cancel)
	defer stop()
	err := op(ctx)
	if err != nil && h.poisonCtx.Err() != nil {
		return fmt.Errorf("%s %s: %w", what, h.name, fsapi.ErrHandleClosed)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, h.name, err)
	}
	return nil
}

// GetContentsAndStat reads the file's whole contents and its metadata.
// The returned slice must not be modified (it may be shared with the
// cache).
func (h *Handle) GetContentsAndStat(ctx context.Context) ([]byte, fsapi.Stat, error) {
	var resp wire.GetContentsResponse
	err := h.call(ctx, "read", func(ctx context.Context) error {
		ref := h.nodeRef()
		if h.cacheable(ref) && h.c.cacheUsable() {
			if data, st, _, ok := h.c.cache.c.GetContents(ref.Path); ok && st.Instance == ref.Instance {
				resp.Data, resp.Stat = data, st
				return nil
			}
		}
		tok := h.c.cache.token()
		err := h.c.read(ctx, wire.MsgGetContents, &wire.GetContentsRequest{Header: h.c.header(), NodeRef: ref}, &resp)
		if err == nil && h.cacheable(ref) {
			h.c.cache.put(tok, resp.Header(), func(rev uint64) { h.c.cache.c.PutContents(ref.Path, rev, resp.Data, resp.Stat) })
		}
		return err
	})
	return resp.Data, resp.Stat, err
}

// GetStat reads the node's metadata. The LockGeneration of a stat served
// from the cache may lag: lock changes do not invalidate caches (use
// GetLock or a sequencer for lock state).
func (h *Handle) GetStat(ctx context.Context) (fsapi.Stat, error) {
	var resp wire.GetStatResponse
	err := h.call(ctx, "stat", func(ctx context.Context) error {
		ref := h.nodeRef()
		if h.cacheable(ref) && h.c.cacheUsable() {
			if st, _, ok := h.c.cache.c.GetStat(ref.Path); ok && st.Instance == ref.Instance {
				resp.Stat = st
				return nil
			}
		}
		tok := h.c.cache.token()
		err := h.c.read(ctx, wire.MsgGetStat, &wire.GetStatRequest{Header: h.c.header(), NodeRef: ref}, &resp)
		if err == nil && h.cacheable(ref) {
			h.c.cache.put(tok, resp.Header(), func(rev uint64) { h.c.cache.c.PutStat(ref.Path, rev, resp.Stat) })
		}
		return err
	})
	return resp.Stat, err
}

// ReadDir lists a directory's children, sorted by name. The slice must
// not be modified (it may be shared with the cache).
func (h *Handle) ReadDir(ctx context.Context) ([]fsapi.DirEntry, error) {
	var resp wire.ReadDirResponse
	err := h.call(ctx, "readdir", func(ctx context.Context) error {
		ref := h.nodeRef()
		if h.cacheable(ref) && h.c.cacheUsable() {
			// A listing is this handle's only if the directory is still
			// the handle's instance.
			if st, _, ok := h.c.cache.c.GetStat(ref.Path); ok && st.Instance == ref.Instance {
				if ents, _, ok := h.c.cache.c.GetDir(ref.Path); ok {
					resp.Entries = ents
					return nil
				}
			}
		}
		tok := h.c.cache.token()
		err := h.c.read(ctx, wire.MsgReadDir, &wire.ReadDirRequest{Header: h.c.header(), NodeRef: ref}, &resp)
		if err == nil && h.cacheable(ref) {
			h.c.cache.put(tok, resp.Header(), func(rev uint64) { h.c.cache.c.PutDir(ref.Path, rev, resp.Entries) })
		}
		return err
	})
	return resp.Entries, err
}

// cacheable says whether a read on ref may use the cache: caching is on
// and the handle carries no sequencer (which the master must check).
func (h *Handle) cacheable(ref wire.NodeRef) bool {
	return h.c.cache != nil && len(ref.Sequencer) == 0
}

// SetContents replaces the file's contents. With ifGeneration other than
// fsapi.AnyGeneration it is a compare-and-swap that fails with
// fsapi.ErrGenerationMismatch unless the file's content generation is
// ifGeneration. It returns the file's new metadata.
func (h *Handle) SetContents(ctx context.Context, data []byte, ifGeneration uint64) (fsapi.Stat, error) {
	if len(data) > h.c.contentLimit {
		return fsapi.Stat{}, fmt.Errorf("write %s: %w: %d bytes exceed the cell's limit of %d",
			h.name, fsapi.ErrTooLarge, len(data), h.c.contentLimit)
	}
	var resp wire.SetContentsResponse
	err := h.call(ctx, "write", func(ctx context.Context) error {
		return h.c.write(ctx, wire.MsgSetContents, func(hd wire.Header, w wire.WriteHeader) any {
			return &wire.SetContentsRequest{Header: hd, WriteHeader: w, NodeRef: h.nodeRef(), Data: data, IfGeneration: ifGeneration}
		}, &resp)
	})
	return resp.Stat, err
}

// Delete deletes the node; a directory only if it has no children.
func (h *Handle) Delete(ctx context.Context) error {
	var resp wire.DeleteResponse
	return h.call(ctx, "delete", func(ctx context.Context) error {
		return h.c.write(ctx, wire.MsgDelete, func(hd wire.Header, w wire.WriteHeader) any {
			return &wire.DeleteRequest{Header: hd, WriteHeader: w, NodeRef: h.nodeRef()}
		}, &resp)
	})
}
