package cellclient

import (
	"context"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// OpKind is what one operation of a Multi does.
type OpKind uint8

const (
	// OpCreate creates a node that must not exist (as Open with
	// CreateMust): a file with Contents, or a directory; maybe Ephemeral
	// or Sequential.
	OpCreate OpKind = OpKind(wire.MultiCreate)
	// OpSet replaces a file's contents; with Generation ≠ 0 only if the
	// file is at that content generation.
	OpSet OpKind = OpKind(wire.MultiSet)
	// OpDelete deletes a node (a directory only if empty); with
	// Generation ≠ 0 only if it is at that content generation.
	OpDelete OpKind = OpKind(wire.MultiDelete)
	// OpCheck changes nothing: the node must exist and, with Generation ≠
	// 0, be at that content generation.
	OpCheck OpKind = OpKind(wire.MultiCheck)
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpSet:
		return "set"
	case OpDelete:
		return "delete"
	case OpCheck:
		return "check"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one operation of a Multi. CreateOp, SetOp, DeleteOp and CheckOp
// build the common ones.
type Op struct {
	Kind OpKind
	// Name is the node's full name (/ls/CELL/...; "local" for this cell).
	Name string
	// Contents are a created file's contents, or a set's new contents.
	Contents []byte
	// Generation makes a set, delete or check conditional on the node's
	// content generation (0: unconditional; for a check, "exists").
	Generation uint64
	// Directory, Ephemeral and Sequential are as in OpenOptions, for
	// creates only.
	Directory, Ephemeral, Sequential bool
}

// CreateOp creates the file name with contents.
func CreateOp(name string, contents []byte) Op {
	return Op{Kind: OpCreate, Name: name, Contents: contents}
}

// SetOp replaces the contents of the file name; ifGeneration other than
// fsapi.AnyGeneration makes it a compare-and-swap.
func SetOp(name string, contents []byte, ifGeneration uint64) Op {
	return Op{Kind: OpSet, Name: name, Contents: contents, Generation: ifGeneration}
}

// DeleteOp deletes name; ifGeneration other than fsapi.AnyGeneration
// makes it conditional.
func DeleteOp(name string, ifGeneration uint64) Op {
	return Op{Kind: OpDelete, Name: name, Generation: ifGeneration}
}

// CheckOp requires name to exist at content generation generation (0:
// at any).
func CheckOp(name string, generation uint64) Op {
	return Op{Kind: OpCheck, Name: name, Generation: generation}
}

// OpResult is what an applied operation did: the node's full name (for a
// sequential create, the name created) and its metadata after the
// operation (for a delete, its last).
type OpResult struct {
	Name string
	Stat fsapi.Stat
}

// Multi applies ops in order, all or none, in one Raft entry: each op
// sees the namespace as the ops before it left it, and no other client
// sees a state between them. At most fsapi.MaxMultiOps ops, whose
// contents together fit the cell's content limit. If an op fails, nothing
// is applied and the error is an *fsapi.MultiOpError naming the first
// failing op (it unwraps to that op's error, e.g. ErrGenerationMismatch).
// Like every write it is applied exactly once, across master fail-overs
// too; each changed node gets its change event, all at one revision.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	wops, err := c.wireOps(ops)
	if err != nil {
		return nil, fmt.Errorf("multi: %w", err)
	}
	var resp wire.MultiResponse
	err = c.write(ctx, wire.MsgMulti, func(h wire.Header, w wire.WriteHeader) any {
		return &wire.MultiRequest{Header: h, WriteHeader: w, Ops: wops}
	}, &resp)
	if err != nil {
		return nil, fmt.Errorf("multi: %w", err)
	}
	if len(resp.Results) != len(ops) {
		return nil, fmt.Errorf("multi: %w: %d results for %d ops", fsapi.ErrBadRequest, len(resp.Results), len(ops))
	}
	out := make([]OpResult, len(ops))
	for i, r := range resp.Results {
		out[i] = OpResult{Name: fsapi.FullName(c.cell, r.Path), Stat: r.Stat}
	}
	return out, nil
}

// wireOps checks ops as far as the client can and converts them.
func (c *Client) wireOps(ops []Op) ([]wire.MultiOp, error) {
	if len(ops) == 0 || len(ops) > fsapi.MaxMultiOps {
		return nil, fmt.Errorf("%w: %d ops: want 1 to %d", fsapi.ErrBadRequest, len(ops), fsapi.MaxMultiOps)
	}
	out := make([]wire.MultiOp, len(ops))
	total := 0
	for i, op := range ops {
		w, err := c.wireOp(op)
		if err != nil {
			return nil, &fsapi.MultiOpError{Op: i, Err: err}
		}
		out[i] = w
		total += len(op.Contents)
	}
	if total > c.contentLimit {
		return nil, fmt.Errorf("%w: contents total %d bytes; the cell's limit is %d", fsapi.ErrTooLarge, total, c.contentLimit)
	}
	return out, nil
}

func (c *Client) wireOp(op Op) (wire.MultiOp, error) {
	path, err := c.path(op.Name)
	if err != nil {
		return wire.MultiOp{}, err
	}
	switch {
	case op.Kind < OpCreate || op.Kind > OpCheck:
		return wire.MultiOp{}, fmt.Errorf("%w: %s: unknown op kind %d", fsapi.ErrBadRequest, op.Name, op.Kind)
	case op.Kind != OpCreate && (op.Directory || op.Ephemeral || op.Sequential):
		return wire.MultiOp{}, fmt.Errorf("%w: %s %s: directory, ephemeral and sequential are for creates", fsapi.ErrBadRequest, op.Kind, op.Name)
	case (op.Kind == OpDelete || op.Kind == OpCheck || op.Directory) && len(op.Contents) > 0:
		return wire.MultiOp{}, fmt.Errorf("%w: %s %s: takes no contents", fsapi.ErrBadRequest, op.Kind, op.Name)
	case op.Kind == OpCreate && op.Generation != 0:
		return wire.MultiOp{}, fmt.Errorf("%w: create %s: takes no generation", fsapi.ErrBadRequest, op.Name)
	case op.Sequential:
		if err := fsapi.CheckSequentialPath(path); err != nil {
			return wire.MultiOp{}, err
		}
	}
	return wire.MultiOp{Kind: uint8(op.Kind), Path: path, Data: op.Contents, Generation: op.Generation,
		Directory: op.Directory, Ephemeral: op.Ephemeral, Sequential: op.Sequential}, nil
}
