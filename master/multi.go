package master

import (
	"context"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
)

// multi applies a Multi's ops all or none in one Raft entry:
//
//  1. check what can be checked without the state (count, names, total
//     size), naming the first bad op;
//  2. invalidate cached copies of every node an op may change, and of
//     their parents' listings, as the single writes would;
//  3. propose one CmdMulti; the FSM validates every op against the state
//     as the ops before it left it and applies all or none.
func (s *Server) multi(ctx context.Context, req *wire.MultiRequest) (*wire.MultiResponse, error) {
	if err := s.checkMulti(req.Ops); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, s.multiInval(req.Ops), fsm.CmdMulti, func(m fsm.WriteMeta) any {
		return &fsm.Multi{Meta: m, Ops: fsmOps(req.Ops)}
	})
	if err != nil {
		return nil, err
	}
	resp := &wire.MultiResponse{RespHeader: wire.RespHeader{Revision: idx}}
	for _, r := range res.Multi {
		resp.Results = append(resp.Results, wire.MultiResult{Path: r.Path, Stat: r.Stat})
	}
	return resp, nil
}

func (s *Server) checkMulti(ops []wire.MultiOp) error {
	if len(ops) == 0 || len(ops) > fsapi.MaxMultiOps {
		return fmt.Errorf("%w: multi-op with %d ops: want 1 to %d", fsapi.ErrBadRequest, len(ops), fsapi.MaxMultiOps)
	}
	total := 0
	for i, op := range ops {
		check := fsapi.CheckPath
		if op.Kind == wire.MultiCreate && op.Sequential {
			check = fsapi.CheckSequentialPath
		}
		if err := check(op.Path); err != nil {
			return &fsapi.MultiOpError{Op: i, Err: err}
		}
		total += len(op.Data)
	}
	if total > s.cfg.ContentLimit {
		return fmt.Errorf("%w: multi-op contents total %d bytes exceed the cell's limit of %d",
			fsapi.ErrTooLarge, total, s.cfg.ContentLimit)
	}
	return nil
}

// multiInval is what a Multi may change: each op's node as the single
// write would touch it. A sequential create touches its parent and the
// parent's listing (structuralOf its prefix); its new name's absence is
// never cached (absentReply).
func (s *Server) multiInval(ops []wire.MultiOp) invalSet {
	var structural []string
	var inv invalSet
	for _, op := range ops {
		switch op.Kind {
		case wire.MultiCreate, wire.MultiDelete:
			structural = append(structural, op.Path)
		case wire.MultiSet:
			c := contentsOf(op.Path)
			inv.paths = append(inv.paths, c.paths...)
			inv.listings = append(inv.listings, c.listings...)
		}
	}
	st := s.structuralOf(structural...)
	inv.paths = dedup(append(inv.paths, st.paths...))
	inv.listings = dedup(append(inv.listings, st.listings...))
	return inv
}

func dedup(ps []string) []string {
	seen := make(map[string]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// fsmOps converts the wire ops to the log's (the two formats are kept
// apart: a protocol change never changes the log).
func fsmOps(ops []wire.MultiOp) []fsm.MultiOp {
	out := make([]fsm.MultiOp, len(ops))
	for i, op := range ops {
		out[i] = fsm.MultiOp{Kind: op.Kind, Path: op.Path, Data: op.Data, Generation: op.Generation,
			Directory: op.Directory, Ephemeral: op.Ephemeral, Sequential: op.Sequential}
	}
	return out
}
