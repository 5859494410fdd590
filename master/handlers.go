package master

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/fsm"
)

// applyTimeout bounds how long a write waits to enter Raft's queue.
const applyTimeout = 10 * time.Second

func (s *Server) buildHandlers() map[wire.MsgType]handlerFunc {
	return map[wire.MsgType]handlerFunc{
		wire.MsgCreateSession: rpc(s, maxCallTime, s.createSession),
		wire.MsgKeepAlive:     rpc(s, 0, s.keepAlive),
		wire.MsgCloseSession:  rpc(s, maxCallTime, s.closeSession),
		wire.MsgOpen:          rpc(s, maxCallTime, s.open),
		wire.MsgGetContents:   rpc(s, maxCallTime, s.getContents),
		wire.MsgGetStat:       rpc(s, maxCallTime, s.getStat),
		wire.MsgReadDir:       rpc(s, maxCallTime, s.readDir),
		wire.MsgSetContents:   rpc(s, maxCallTime, s.setContents),
		wire.MsgDelete:        rpc(s, maxCallTime, s.delete),
		wire.MsgStatus:        rpc(s, maxCallTime, s.status),
		// A queued Acquire and LockWait are held up to maxLockHold.
		wire.MsgAcquire:        rpc(s, maxCallTime+maxLockHold, s.acquire),
		wire.MsgLockWait:       rpc(s, maxCallTime+maxLockHold, s.lockWait),
		wire.MsgRelease:        rpc(s, maxCallTime, s.release),
		wire.MsgCancelWait:     rpc(s, maxCallTime, s.cancelWait),
		wire.MsgCheckSequencer: rpc(s, maxCallTime, s.checkSequencer),
		wire.MsgGetLock:        rpc(s, maxCallTime, s.getLock),
	}
}

// master returns the current master state, or a NotMasterError naming the
// master if this replica knows it.
func (s *Server) master() (*leaderState, error) {
	if ls := s.leading.Load(); ls != nil {
		return ls, nil
	}
	addr, _ := s.raft.LeaderWithID()
	return nil, &fsapi.NotMasterError{Leader: string(addr)}
}

// session checks that the call comes from a live session on the master,
// in the current epoch (the Raft term of this master). A call from an
// older epoch is rejected with the new one: the client then knows a
// fail-over happened (and flushes what it may have missed) before its calls
// go on. A call from a newer epoch means this master is stale.
func (s *Server) session(h wire.Header) (*leaderState, error) {
	ls, err := s.liveSession(h)
	if err != nil {
		return nil, err
	}
	switch {
	case h.Epoch == 0 || h.Epoch == ls.term:
		return ls, nil
	case h.Epoch < ls.term:
		return nil, &fsapi.WrongEpochError{Epoch: ls.term}
	}
	return nil, &fsapi.NotMasterError{}
}

// liveSession checks the master and the session, not the epoch.
func (s *Server) liveSession(h wire.Header) (*leaderState, error) {
	ls, err := s.master()
	if err != nil {
		return nil, err
	}
	if _, ok := s.fsm.Session(h.Session); !ok {
		return nil, fmt.Errorf("%w: session %d", fsapi.ErrSessionExpired, h.Session)
	}
	return ls, nil
}

// propose commits one command and returns the FSM's result.
func (s *Server) propose(ctx context.Context, t fsm.CmdType, cmd any) (*fsm.Result, error) {
	res, _, err := s.proposeIndex(ctx, t, cmd)
	return res, err
}

func (s *Server) proposeIndex(ctx context.Context, t fsm.CmdType, cmd any) (*fsm.Result, uint64, error) {
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		return nil, 0, err
	}
	ls := s.leading.Load()
	t0 := s.clock.Now()
	f := s.raft.Apply(data, applyTimeout)
	errCh := make(chan error, 1)
	go func() { errCh <- f.Error() }()
	select {
	case err = <-errCh:
	case <-ctx.Done():
		// The entry may still commit; the client's retry is deduplicated.
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, s.raftErr(err)
	}
	if ls != nil {
		// A committed entry proposed at t0 renews the master lease.
		ls.lease.renewed(ls.term, t0)
	}
	res, ok := f.Response().(*fsm.Result)
	if !ok {
		return nil, 0, fmt.Errorf("master: FSM answered %T", f.Response())
	}
	return res, f.Index(), nil
}

// raftErr maps Raft's failures to errors the client retries on.
func (s *Server) raftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
		addr, _ := s.raft.LeaderWithID()
		return &fsapi.NotMasterError{Leader: string(addr)}
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: raft queue full: %v", fsapi.ErrUnavailable, err)
	}
	return err
}

// write validates nothing itself: it stamps the command with the session's
// write header and the leader's clock, commits it, and returns the result.
func (s *Server) write(ctx context.Context, h wire.Header, w wire.WriteHeader, t fsm.CmdType,
	build func(fsm.WriteMeta) any) (*fsm.Result, uint64, error) {
	if _, err := s.session(h); err != nil {
		return nil, 0, err
	}
	meta := fsm.WriteMeta{Session: h.Session, Seq: w.Seq, AckBelow: w.AckBelow, Time: time.Now().UnixNano()}
	res, idx, err := s.proposeIndex(ctx, t, build(meta))
	if err != nil {
		return nil, 0, err
	}
	return res, idx, res.Err()
}

// read returns a view of the namespace from which a linearizable read can
// be served: "read, then check". It takes the view first and then checks
// the master lease; if the lease held at the check it held when the view
// was taken, so no other master can have committed anything the view
// lacks. Without a valid lease it takes the ReadIndex path.
func (s *Server) read(ctx context.Context, h wire.Header, path string) (*fsm.View, error) {
	if err := fsapi.CheckPath(path); err != nil {
		return nil, err
	}
	ls, err := s.session(h)
	if err != nil {
		return nil, err
	}
	v := s.fsm.View()
	if s.leaseHolds(ls) {
		return v, nil
	}
	if err := s.readIndex(ctx); err != nil {
		return nil, s.raftErr(err)
	}
	return s.fsm.View(), nil
}

// readNode is read followed by lookup: the node a read call names, and the
// view (so the revision) it was read from.
func (s *Server) readNode(ctx context.Context, h wire.Header, ref wire.NodeRef) (*fsm.View, *fsm.Node, error) {
	v, err := s.read(ctx, h, ref.Path)
	if err != nil {
		return nil, nil, err
	}
	n, err := lookup(v, ref)
	if err != nil {
		return nil, nil, err
	}
	if err := s.checkRef(ref); err != nil {
		return nil, nil, err
	}
	return v, n, nil
}

// lookup finds a node of the given instance (0: any) in a view.
func lookup(v *fsm.View, ref wire.NodeRef) (*fsm.Node, error) {
	n, ok := v.Get(ref.Path)
	if !ok {
		if ref.Instance != 0 {
			return nil, fmt.Errorf("%w: %s", fsapi.ErrHandleInvalid, ref.Path)
		}
		return nil, fmt.Errorf("%w: %s", fsapi.ErrNotExist, ref.Path)
	}
	if ref.Instance != 0 && n.Stat.Instance != ref.Instance {
		return nil, fmt.Errorf("%w: %s (instance %d, now %d)", fsapi.ErrHandleInvalid, ref.Path, ref.Instance, n.Stat.Instance)
	}
	return n, nil
}

func (s *Server) checkSize(n int) error {
	if n > s.cfg.ContentLimit {
		return fmt.Errorf("%w: contents of %d bytes exceed the cell's limit of %d", fsapi.ErrTooLarge, n, s.cfg.ContentLimit)
	}
	return nil
}

func (s *Server) createSession(ctx context.Context, req *wire.CreateSessionRequest) (*wire.CreateSessionResponse, error) {
	if req.Version != wire.ProtocolVersion {
		return nil, fmt.Errorf("%w: protocol version %d; this replica speaks %d", fsapi.ErrBadRequest, req.Version, wire.ProtocolVersion)
	}
	if req.Cell != "" && req.Cell != fsapi.LocalCell && req.Cell != s.cfg.CellName {
		return nil, fmt.Errorf("%w: client wants cell %q, this is %q", fsapi.ErrWrongCell, req.Cell, s.cfg.CellName)
	}
	if _, err := s.master(); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	cmd := &fsm.CreateSession{Time: now.UnixNano(), LeaseMillis: s.cfg.SessionLease.Milliseconds(), ClientName: req.ClientName}
	res, idx, err := s.proposeIndex(ctx, fsm.CmdCreateSession, cmd)
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	s.leases.add(res.Session, now)
	return &wire.CreateSessionResponse{
		RespHeader:   wire.RespHeader{Revision: idx},
		Session:      res.Session,
		Cell:         s.cfg.CellName,
		ContentLimit: s.cfg.ContentLimit,
		LeaseMillis:  s.cfg.SessionLease.Milliseconds(),
	}, nil
}

// keepAlive holds the call until the session's lease nears its end (or the
// master steps down), then extends the lease from the moment of the reply.
func (s *Server) keepAlive(ctx context.Context, req *wire.KeepAliveRequest) (*wire.KeepAliveResponse, error) {
	ls, err := s.liveSession(req.Header)
	if err != nil {
		return nil, err
	}
	arrived := s.clock.Now()
	s.leases.ensure([]uint64{req.Session}, arrived)
	hold := s.leases.holdFor(req.Session, arrived)
	if req.Epoch != ls.term {
		// A client that has not seen this epoch learns it at once.
		hold = 0
	}
	t := s.clock.NewTimer(hold)
	defer t.Stop()
	select {
	case <-t.C():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ls.doneCh:
		return nil, &fsapi.NotMasterError{}
	case <-s.stopCh:
		return nil, &fsapi.NotMasterError{}
	}
	sent := s.clock.Now()
	if !s.leases.extend(req.Session, sent) {
		return nil, fmt.Errorf("%w: session %d", fsapi.ErrSessionExpired, req.Session)
	}
	return &wire.KeepAliveResponse{
		LeaseMillis: s.cfg.SessionLease.Milliseconds(),
		HeldMillis:  sent.Sub(arrived).Milliseconds(),
	}, nil
}

func (s *Server) closeSession(ctx context.Context, req *wire.CloseSessionRequest) (*wire.CloseSessionResponse, error) {
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, fsm.CmdCloseSession, func(m fsm.WriteMeta) any {
		return &fsm.CloseSession{Meta: m}
	})
	if err == nil {
		s.leases.remove(req.Session)
	}
	return &wire.CloseSessionResponse{RespHeader: wire.RespHeader{Revision: idx}}, err
}

func (s *Server) open(ctx context.Context, req *wire.OpenRequest) (*wire.OpenResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if req.Create == fsapi.CreateNo {
		v, n, err := s.readNode(ctx, req.Header, wire.NodeRef{Path: req.Path})
		if err != nil {
			return nil, err
		}
		return &wire.OpenResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}, Stat: n.Stat}, nil
	}
	if err := s.checkSize(len(req.Contents)); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, fsm.CmdOpen, func(m fsm.WriteMeta) any {
		return &fsm.Open{Meta: m, Path: req.Path, Create: uint8(req.Create), Ephemeral: req.Ephemeral,
			Directory: req.Directory, Contents: req.Contents}
	})
	if err != nil {
		return nil, err
	}
	return &wire.OpenResponse{RespHeader: wire.RespHeader{Revision: idx}, Stat: res.Stat, Created: res.Created}, nil
}

func (s *Server) getContents(ctx context.Context, req *wire.GetContentsRequest) (*wire.GetContentsResponse, error) {
	v, n, err := s.readNode(ctx, req.Header, req.NodeRef)
	if err != nil {
		return nil, err
	}
	if n.Stat.IsDir {
		return nil, fmt.Errorf("%w: %s", fsapi.ErrIsDir, req.Path)
	}
	return &wire.GetContentsResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}, Data: n.Data, Stat: n.Stat}, nil
}

func (s *Server) getStat(ctx context.Context, req *wire.GetStatRequest) (*wire.GetStatResponse, error) {
	v, n, err := s.readNode(ctx, req.Header, req.NodeRef)
	if err != nil {
		return nil, err
	}
	return &wire.GetStatResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}, Stat: n.Stat}, nil
}

func (s *Server) readDir(ctx context.Context, req *wire.ReadDirRequest) (*wire.ReadDirResponse, error) {
	v, n, err := s.readNode(ctx, req.Header, req.NodeRef)
	if err != nil {
		return nil, err
	}
	if !n.Stat.IsDir {
		return nil, fmt.Errorf("%w: %s", fsapi.ErrNotDir, req.Path)
	}
	return &wire.ReadDirResponse{RespHeader: wire.RespHeader{Revision: v.Revision()}, Stat: n.Stat, Entries: v.List(req.Path)}, nil
}

func (s *Server) setContents(ctx context.Context, req *wire.SetContentsRequest) (*wire.SetContentsResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if err := s.checkSize(len(req.Data)); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, fsm.CmdSetContents, func(m fsm.WriteMeta) any {
		return &fsm.SetContents{Meta: m, Path: req.Path, Instance: req.Instance, Data: req.Data,
			IfGeneration: req.IfGeneration, Sequencer: req.Sequencer}
	})
	if err != nil {
		return nil, err
	}
	return &wire.SetContentsResponse{RespHeader: wire.RespHeader{Revision: idx}, Stat: res.Stat}, nil
}

func (s *Server) delete(ctx context.Context, req *wire.DeleteRequest) (*wire.DeleteResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, fsm.CmdDelete, func(m fsm.WriteMeta) any {
		return &fsm.Delete{Meta: m, Path: req.Path, Instance: req.Instance, Sequencer: req.Sequencer}
	})
	return &wire.DeleteResponse{RespHeader: wire.RespHeader{Revision: idx}}, err
}

func (s *Server) status(ctx context.Context, _ *wire.StatusRequest) (*wire.StatusResponse, error) {
	leaderAddr, leaderID := s.raft.LeaderWithID()
	resp := &wire.StatusResponse{
		ID: s.cfg.ID, Address: s.addr, Cell: s.cfg.CellName, State: s.stateName(),
		Term: s.raft.CurrentTerm(), LastIndex: s.raft.LastIndex(), CommitIndex: s.raft.CommitIndex(),
		AppliedIndex: s.raft.AppliedIndex(), LeaderID: string(leaderID), LeaderAddr: string(leaderAddr),
		Sessions: len(s.fsm.Sessions()), Nodes: s.fsm.View().NodeCount(),
		LockWakeups: s.lockw.wakeups.Load(),
	}
	if ls := s.leading.Load(); ls != nil {
		resp.LeaseRemainingMillis = ls.lease.remaining(ls.term, s.clock.Now()).Milliseconds()
	}
	if f := s.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			resp.Servers = append(resp.Servers, wire.Server{ID: string(srv.ID), Address: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
		}
	}
	return resp, nil
}

func (s *Server) stateName() string {
	switch s.raft.State() {
	case raft.Leader:
		if s.IsMaster() {
			return "master"
		}
		return "candidate"
	case raft.Follower:
		return "replica"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}
