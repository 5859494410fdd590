package cellclient

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/haspcell/hasp/fsapi"
)

// Barrier is an N-party barrier on a directory (ZooKeeper's barrier
// recipe): Enter blocks until N parties have entered. A DoubleBarrier
// adds Leave, which blocks until every party that entered has left.
//
// Each party that enters creates an ephemeral file p-ID in the directory.
// The first party to see N of them creates the file "ready"; a party
// passes Enter once "ready" exists. "ready" is created only after N
// parties were present at once, so nobody passes before N have entered.
// A party whose session ends before "ready" exists disappears from the
// count (its file is ephemeral) and the others keep waiting for N live
// ones; after "ready", nothing can undo the barrier.
//
// A barrier's directory serves one round: "ready" stays. Use a new name
// for each round (for example one with the round number in it).
//
// Waiting costs no polling: parties wait on a watch of the directory and
// read it once per change (every party wakes once per arrival, which a
// barrier needs anyway).
type Barrier struct {
	c    *Client
	name string
	n    int

	mu     sync.Mutex // protects following fields
	member *Handle    // this party's file, after Enter
}

// barrierReady is the file that says N parties have entered.
const barrierReady = "ready"

// barrierPrefix starts the name of each party's file.
const barrierPrefix = "p-"

// NewBarrier returns the barrier of n parties on the directory called
// name (created by the first Enter if needed).
func NewBarrier(c *Client, name string, n int) *Barrier {
	return &Barrier{c: c, name: name, n: n}
}

// Enter enters the barrier as the party called id (one name component,
// unique among the parties) and blocks until n parties have entered, or
// ctx or the session ends. If ctx ends first the party stays entered (its
// file stays until Leave or the session's end): call Enter again with the
// same id to keep waiting, or Leave.
func (b *Barrier) Enter(ctx context.Context, id string) error {
	if b.n < 1 {
		return fmt.Errorf("barrier %s: %w: needs at least 1 party, not %d", b.name, fsapi.ErrBadRequest, b.n)
	}
	me, err := childName(b.name, barrierPrefix, id)
	if err != nil {
		return fmt.Errorf("barrier %s: %w", b.name, err)
	}
	if err := b.enter(ctx, me); err != nil {
		return fmt.Errorf("barrier %s: enter: %w", b.name, err)
	}
	return nil
}

func (b *Barrier) enter(ctx context.Context, me string) error {
	dir, err := b.c.openDir(ctx, b.name)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := b.join(ctx, me); err != nil {
		return err
	}
	return b.c.waitDir(ctx, dir, func(ents []fsapi.DirEntry) (bool, error) {
		if hasChild(ents, barrierReady) {
			return true, nil
		}
		if countParties(ents) < b.n {
			return false, nil
		}
		_, err := b.c.Open(ctx, b.name+"/"+barrierReady, &OpenOptions{Create: fsapi.CreateMay})
		return err == nil, err
	})
}

// join creates this party's file, once: a second Enter keeps the first
// one's file.
func (b *Barrier) join(ctx context.Context, me string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.member != nil {
		if b.member.Name() != fsapi.FullName(b.c.cell, mustPath(b.c, me)) {
			return fmt.Errorf("%w: entered already as %s", fsapi.ErrBadRequest, b.member.Name())
		}
		return nil
	}
	h, err := b.c.Open(ctx, me, &OpenOptions{Create: fsapi.CreateMay, Ephemeral: true})
	if err != nil {
		return err
	}
	st, err := h.GetStat(ctx)
	if err == nil && st.EphemeralOwner != b.c.Session() {
		err = fmt.Errorf("%w: %s belongs to session %d", fsapi.ErrExist, me, st.EphemeralOwner)
	}
	if err != nil {
		h.Close()
		return err
	}
	b.member = h
	return nil
}

// mustPath is the path of a name that was already checked.
func mustPath(c *Client, name string) string {
	p, _ := c.path(name)
	return p
}

func hasChild(ents []fsapi.DirEntry, name string) bool {
	for _, e := range ents {
		if e.Name == name {
			return true
		}
	}
	return false
}

func countParties(ents []fsapi.DirEntry) int {
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name, barrierPrefix) {
			n++
		}
	}
	return n
}

// DoubleBarrier is a Barrier whose parties also leave together (ZooKeeper's
// double barrier): Enter blocks until N parties have entered, Leave until
// every party that entered has left. A party whose session ends counts as
// left. Like a Barrier, it serves one round.
type DoubleBarrier struct {
	Barrier
}

// NewDoubleBarrier returns the double barrier of n parties on the
// directory called name.
func NewDoubleBarrier(c *Client, name string, n int) *DoubleBarrier {
	return &DoubleBarrier{Barrier{c: c, name: name, n: n}}
}

// ErrNotEntered: Leave was called without a successful Enter.
var ErrNotEntered = errors.New("cellclient: barrier not entered")

// Leave removes this party from the barrier and blocks until every party
// has left (its file is gone), or ctx or the session ends. If ctx ends
// first the party has still left: call Leave again to wait.
func (b *DoubleBarrier) Leave(ctx context.Context) error {
	b.mu.Lock()
	h := b.member
	b.mu.Unlock()
	if h == nil {
		return fmt.Errorf("barrier %s: leave: %w", b.name, ErrNotEntered)
	}
	if err := b.leave(ctx, h); err != nil {
		return fmt.Errorf("barrier %s: leave: %w", b.name, err)
	}
	return nil
}

func (b *DoubleBarrier) leave(ctx context.Context, h *Handle) error {
	if err := h.Delete(ctx); err != nil && !gone(err) {
		return err // ErrHandleInvalid: deleted by an earlier Leave
	}
	dir, err := b.c.Open(ctx, b.name, nil)
	if err != nil {
		return err
	}
	defer dir.Close()
	return b.c.waitDir(ctx, dir, func(ents []fsapi.DirEntry) (bool, error) {
		return countParties(ents) == 0, nil
	})
}
