package cellclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
)

// ErrUndecided: nobody has proposed a value yet.
var ErrUndecided = errors.New("cellclient: no value decided yet")

// Consensus decides one value among proposers, by "the smallest
// sequential proposal wins": each proposal is a permanent sequential file
// (p-0000000000, p-0000000001, ...) in the directory, holding the value;
// the decided value is the contents of the lowest-numbered one.
//
// Why it is agreement: the cell numbers proposals in the order it applies
// them, so once a proposer's own file exists, every proposal still to
// come gets a higher number; the lowest-numbered proposal a proposer sees
// after its own was created can therefore never be undercut. Every
// proposer and reader sees the same lowest file (proposal files are never
// changed or deleted), hence the same value, and that value was proposed.
// The decision survives any crash: it is in the replicated state.
//
// A directory decides once: to decide again, use a new name. Do not
// delete or write the proposal files.
type Consensus struct {
	c    *Client
	name string
}

// consensusPrefix starts every proposal's name.
const consensusPrefix = "p-"

// NewConsensus returns the consensus on the directory called name
// (created by the first Propose if needed).
func NewConsensus(c *Client, name string) *Consensus {
	return &Consensus{c: c, name: name}
}

// Propose proposes value and returns the decided value: value itself if
// this proposal was the first, another proposer's otherwise. If Propose
// fails with an error wrapping *fsapi.AmbiguousError the proposal may
// still have been made, and may even be the decided one: Decided tells.
func (x *Consensus) Propose(ctx context.Context, value []byte) ([]byte, error) {
	dir, err := x.c.openDir(ctx, x.name)
	if err != nil {
		return nil, fmt.Errorf("consensus %s: propose: %w", x.name, err)
	}
	defer dir.Close()
	h, err := x.c.Open(ctx, x.name+"/"+consensusPrefix, &OpenOptions{Sequential: true, Contents: value})
	if err != nil {
		return nil, fmt.Errorf("consensus %s: propose: %w", x.name, err)
	}
	h.Close()
	// Our proposal exists: the lowest one now listed is final.
	v, err := x.decided(ctx, dir)
	if errors.Is(err, ErrUndecided) {
		err = fmt.Errorf("%w: our proposal %s is not listed", fsapi.ErrNotExist, h.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("consensus %s: propose: %w", x.name, err)
	}
	return v, nil
}

// Decided returns the decided value, or an error wrapping ErrUndecided if
// nobody has proposed yet.
func (x *Consensus) Decided(ctx context.Context) ([]byte, error) {
	dir, err := x.c.Open(ctx, x.name, nil)
	if errors.Is(err, fsapi.ErrNotExist) {
		return nil, fmt.Errorf("consensus %s: %w", x.name, ErrUndecided)
	}
	if err != nil {
		return nil, fmt.Errorf("consensus %s: %w", x.name, err)
	}
	defer dir.Close()
	v, err := x.decided(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("consensus %s: %w", x.name, err)
	}
	return v, nil
}

// Wait blocks until a value is decided and returns it, waiting on a watch
// of the directory rather than polling.
func (x *Consensus) Wait(ctx context.Context) ([]byte, error) {
	dir, err := x.c.openDir(ctx, x.name)
	if err != nil {
		return nil, fmt.Errorf("consensus %s: wait: %w", x.name, err)
	}
	defer dir.Close()
	var v []byte
	err = x.c.waitDir(ctx, dir, func(ents []fsapi.DirEntry) (bool, error) {
		if len(bySequence(ents, consensusPrefix)) == 0 {
			return false, nil
		}
		var err error
		v, err = x.decided(ctx, dir)
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("consensus %s: wait: %w", x.name, err)
	}
	return v, nil
}

// decided reads the lowest-numbered proposal.
func (x *Consensus) decided(ctx context.Context, dir *Handle) ([]byte, error) {
	ents, err := dir.ReadDir(ctx)
	if err != nil {
		return nil, err
	}
	props := bySequence(ents, consensusPrefix)
	if len(props) == 0 {
		return nil, ErrUndecided
	}
	h, err := x.c.Open(ctx, x.name+"/"+props[0], nil)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	data, _, err := h.GetContentsAndStat(ctx)
	return data, err
}
