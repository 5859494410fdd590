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
		// A Watch is held up to maxWatchHold (watch.go).
		wire.MsgWatch: rpc(s, maxCallTime+maxWatchHold, s.watch),
		wire.MsgMulti: rpc(s, maxCallTime, s.multi),
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
func (s *Server) session(ctx context.Context, h wire.Header) (*leaderState, error) {
	ls, err := s.liveSession(ctx, h)
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
//
// Only a master that knows its state is current may call a session gone: a
// deposed master resumed after a pause still thinks it leads, and its FSM
// lacks sessions created since. So without the master lease, a missing
// session is looked up again after a ReadIndex round, which a deposed
// master fails (the client then hunts for the real master).
func (s *Server) liveSession(ctx context.Context, h wire.Header) (*leaderState, error) {
	ls, err := s.master()
	if err != nil {
		return nil, err
	}
	if _, ok := s.fsm.Session(h.Session); ok {
		return ls, nil
	}
	if !s.leaseHolds(ls) {
		if err := s.readIndex(ctx); err != nil {
			return nil, s.raftErr(err)
		}
		if _, ok := s.fsm.Session(h.Session); ok {
			return ls, nil
		}
	}
	return nil, fmt.Errorf("%w: session %d", fsapi.ErrSessionExpired, h.Session)
}

// propose commits one command and returns the FSM's result.
func (s *Server) propose(ctx context.Context, t fsm.CmdType, cmd any) (*fsm.Result, error) {
	res, _, err := s.proposeIndex(ctx, t, cmd)
	return res, err
}

func (s *Server) proposeIndex(ctx context.Context, t fsm.CmdType, cmd any) (*fsm.Result, uint64, error) {
	return s.proposeThen(ctx, t, cmd, nil)
}

// proposeThen is proposeIndex that calls resolved (if not nil) once the
// entry has been applied or has surely failed, even if ctx ends first.
func (s *Server) proposeThen(ctx context.Context, t fsm.CmdType, cmd any, resolved func()) (*fsm.Result, uint64, error) {
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		if resolved != nil {
			resolved()
		}
		return nil, 0, err
	}
	ls := s.leading.Load()
	t0 := s.clock.Now()
	f := s.raft.Apply(data, applyTimeout)
	errCh := make(chan error, 1)
	go func() {
		errCh <- f.Error()
		if resolved != nil {
			resolved()
		}
	}()
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
	if res.ErrKind == fsm.ErrKindStaleTerm {
		// Appended after this replica had left the term the write was
		// prepared in (fsm.WriteMeta.Term): not applied; retry.
		return nil, 0, &fsapi.NotMasterError{}
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
//
// inv lists what the write may change: cached copies are invalidated first
// (see cachetable.go).
func (s *Server) write(ctx context.Context, h wire.Header, w wire.WriteHeader, inv invalSet, t fsm.CmdType,
	build func(fsm.WriteMeta) any) (*fsm.Result, uint64, error) {
	ls, err := s.session(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	meta := fsm.WriteMeta{Session: h.Session, Seq: w.Seq, AckBelow: w.AckBelow, Time: time.Now().UnixNano(), Term: ls.term}
	res, idx, err := s.proposeInvalidatingIndex(ctx, ls, inv, t, build(meta))
	if err != nil {
		return nil, 0, err
	}
	return res, idx, res.Err()
}

// invalSet is what a write may change: nodes whose cached copies must go,
// and directories whose cached listings must go.
type invalSet struct {
	paths, listings []string
}

// contentsOf is what changing a node's contents (or stat) touches: the
// node, and its parent's listing, which shows the node's stat.
func contentsOf(path string) invalSet {
	if path == fsapi.Root {
		return invalSet{paths: []string{path}}
	}
	return invalSet{paths: []string{path}, listings: []string{fsapi.Parent(path)}}
}

// structuralOf is what creating or deleting a node touches: the node, its
// parent (whose stat counts children) and the parent's listing, and the
// same for every ephemeral ancestor a delete may cascade to. It reads the
// current state; anything it adds beyond what the write changes is only an
// extra invalidation.
func (s *Server) structuralOf(paths ...string) invalSet {
	v := s.fsm.View()
	var inv invalSet
	seen := map[string]bool{}
	add := func(set *[]string, p string) {
		if !seen[p+"\x00"+boolKey(set == &inv.listings)] {
			seen[p+"\x00"+boolKey(set == &inv.listings)] = true
			*set = append(*set, p)
		}
	}
	for _, p := range paths {
		add(&inv.paths, p)
		for p != fsapi.Root {
			parent := fsapi.Parent(p)
			add(&inv.paths, parent)
			add(&inv.listings, parent)
			n, ok := v.Get(parent)
			if !ok || n.Stat.EphemeralOwner == 0 {
				break
			}
			p = parent
		}
	}
	return inv
}

func boolKey(b bool) string {
	if b {
		return "l"
	}
	return "c"
}

// sessionEndPaths is what ending a session touches: its ephemeral nodes.
func (s *Server) sessionEndPaths(id uint64) invalSet {
	return s.structuralOf(s.fsm.SessionEphemerals(id)...)
}

// proposeInvalidating commits cmd after invalidating inv's cached copies.
func (s *Server) proposeInvalidating(ctx context.Context, ls *leaderState, inv invalSet, t fsm.CmdType, cmd any) (*fsm.Result, error) {
	res, _, err := s.proposeInvalidatingIndex(ctx, ls, inv, t, cmd)
	return res, err
}

func (s *Server) proposeInvalidatingIndex(ctx context.Context, ls *leaderState, inv invalSet, t fsm.CmdType, cmd any) (*fsm.Result, uint64, error) {
	if len(inv.paths) == 0 && len(inv.listings) == 0 {
		return s.proposeIndex(ctx, t, cmd)
	}
	ticket := s.cache.beginWrite(inv.paths, inv.listings, s.fsm.AppliedIndex)
	var stop <-chan struct{}
	if ls != nil {
		stop = ls.doneCh
	}
	if err := s.cache.waitWrite(ctx, ticket, stop, s.leases.endOf); err != nil {
		s.cache.endWrite(ticket)
		if stop != nil && errors.Is(err, errSteppedDown) {
			return nil, 0, &fsapi.NotMasterError{}
		}
		return nil, 0, err
	}
	// The wait above counted on this term's tables. If the term ended
	// meanwhile, a cleared lease table reads as "every lease ended" and
	// the wait may have passed without the acknowledgements; the entry
	// must then not be proposed, in particular not in a later term this
	// replica leads again, whose tables never saw this write. (The term's
	// done channel is closed before its tables are cleared.)
	if ls != nil && (isClosed(ls.doneCh) || s.leading.Load() != ls) {
		s.cache.endWrite(ticket)
		return nil, 0, &fsapi.NotMasterError{}
	}
	// The nodes stay uncachable until the entry is applied or has failed,
	// even if this call gives up first.
	return s.proposeThen(ctx, t, cmd, func() { s.cache.endWrite(ticket) })
}

// read returns a view of the namespace from which a linearizable read can
// be served: "read, then check". It takes the view first and then checks
// the master lease; if the lease held at the check it held when the view
// was taken, so no other master can have committed anything the view
// lacks. Without a valid lease it takes the ReadIndex path.
func (s *Server) read(ctx context.Context, h wire.Header, path string) (*fsm.View, error) {
	return s.readAt(ctx, h, 0, path)
}

// readAt is read from a view that has also applied minRev, the client's
// token (follower.go): a follower may apply a committed entry before the
// master's own state machine does, and a client that saw it there must
// not see the master's state without it.
func (s *Server) readAt(ctx context.Context, h wire.Header, minRev uint64, path string) (*fsm.View, error) {
	if err := fsapi.CheckPath(path); err != nil {
		return nil, err
	}
	ls, err := s.session(ctx, h)
	if err != nil {
		return nil, err
	}
	if minRev > s.fsm.AppliedIndex() {
		return s.readAhead(ctx, minRev)
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
	return s.readNodeAt(ctx, h, 0, ref)
}

// readNodeAt is readNode from a view that has applied minRev (see readAt).
func (s *Server) readNodeAt(ctx context.Context, h wire.Header, minRev uint64, ref wire.NodeRef) (*fsm.View, *fsm.Node, error) {
	v, err := s.readAt(ctx, h, minRev, ref.Path)
	if err != nil {
		return nil, nil, err
	}
	n, err := lookup(v, ref)
	if err != nil {
		return v, nil, err // the view: the revision a node's absence was read at
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
	cmd := &fsm.CreateSession{Time: now.UnixNano(), LeaseMillis: s.cfg.SessionLease.Milliseconds(), ClientName: req.ClientName,
		Caching: req.Caching}
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
	ls, err := s.liveSession(ctx, req.Header)
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
	invs, changed, ok := s.cache.keepAlive(req.Session, req.InvalAck, req.InvalAckEpoch, req.FlushedEpoch, ls.term)
	if !ok {
		return nil, &fsapi.NotMasterError{}
	}
	t := s.clock.NewTimer(hold)
	defer t.Stop()
	// Held until the lease nears its end, or until there are invalidations
	// to deliver.
	for len(invs) == 0 {
		select {
		case <-t.C():
		case <-changed:
			if invs, changed, ok = s.cache.keepAlive(req.Session, 0, 0, 0, ls.term); !ok {
				return nil, &fsapi.NotMasterError{}
			}
			continue
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ls.doneCh:
			return nil, &fsapi.NotMasterError{}
		case <-s.stopCh:
			return nil, &fsapi.NotMasterError{}
		}
		break
	}
	sent := s.clock.Now()
	if !s.leaseHolds(ls) {
		// Extend a session's lease, or call it expired, only as the master
		// of the moment: a master deposed while paused (SIGSTOP) would
		// otherwise answer from its stale lease table and end a session
		// that the real master keeps alive, or grant it a lease the real
		// master does not know of. A ReadIndex round after sent shows that
		// no newer master existed at sent, so any later master's
		// extension of this session (a full lease from its takeover)
		// covers this one.
		if err := s.verifier.verify(ctx); err != nil {
			return nil, s.raftErr(err)
		}
		if s.leading.Load() != ls {
			return nil, &fsapi.NotMasterError{}
		}
	}
	if !s.leases.extend(req.Session, sent) {
		// The lease ended at this master, whose expiry loop is ending the
		// session through Raft. Say "expired" only once that committed
		// (liveSession then finds the session gone): until then the
		// expiry may still fail, and a later master would keep the
		// session alive with its locks and ephemeral nodes while its
		// client had given up. The client retries meanwhile.
		return nil, fmt.Errorf("%w: session %d's lease ended; its expiry is being committed", fsapi.ErrUnavailable, req.Session)
	}
	return &wire.KeepAliveResponse{
		// The invalidations are numbered in ls's term: the reply says so
		// even if this replica has since moved on to another term.
		RespHeader:    wire.RespHeader{Epoch: ls.term},
		LeaseMillis:   s.cfg.SessionLease.Milliseconds(),
		HeldMillis:    sent.Sub(arrived).Milliseconds(),
		Invalidations: invs,
	}, nil
}

func (s *Server) closeSession(ctx context.Context, req *wire.CloseSessionRequest) (*wire.CloseSessionResponse, error) {
	// A closing client has stopped using its cache (Client.Close disables
	// it first): forget it now, so that neither this write nor any other
	// waits for its acknowledgement or its flush.
	if _, err := s.session(ctx, req.Header); err == nil {
		s.cache.dropSession(req.Session)
	}
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, s.sessionEndPaths(req.Session), fsm.CmdCloseSession, func(m fsm.WriteMeta) any {
		return &fsm.CloseSession{Meta: m}
	})
	if err == nil {
		s.leases.remove(req.Session)
		s.cache.dropSession(req.Session)
	}
	return &wire.CloseSessionResponse{RespHeader: wire.RespHeader{Revision: idx}}, err
}

func (s *Server) open(ctx context.Context, req *wire.OpenRequest) (*wire.OpenResponse, error) {
	if req.Sequential {
		return s.openSequential(ctx, req)
	}
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if req.Create == fsapi.CreateNo {
		v, n, done, err := s.readCall(ctx, req.Header, req.ReadOptions, wire.NodeRef{Path: req.Path}, false)
		if err != nil {
			return absentReply[wire.OpenResponse](done, v, req.Path, err)
		}
		return &wire.OpenResponse{RespHeader: wire.RespHeader{Revision: v.Revision(), Cacheable: done()}, Stat: n.Stat}, nil
	}
	if err := s.checkSize(len(req.Contents)); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, s.structuralOf(req.Path), fsm.CmdOpen, func(m fsm.WriteMeta) any {
		return &fsm.Open{Meta: m, Path: req.Path, Create: uint8(req.Create), Ephemeral: req.Ephemeral,
			Directory: req.Directory, Contents: req.Contents}
	})
	if err != nil {
		return nil, err
	}
	return &wire.OpenResponse{RespHeader: wire.RespHeader{Revision: idx}, Stat: res.Stat, Created: res.Created}, nil
}

// openSequential creates req.Path followed by the parent's next sequence
// number. The number is taken when the entry is applied, so the name is
// unknown here: the write invalidates the parent and its listing, and no
// client caches the absence of a name a sequential create may take
// (absentReply), so nothing else can hold a stale copy of the new node.
func (s *Server) openSequential(ctx context.Context, req *wire.OpenRequest) (*wire.OpenResponse, error) {
	if err := fsapi.CheckSequentialPath(req.Path); err != nil {
		return nil, err
	}
	if req.Create == fsapi.CreateNo {
		return nil, fmt.Errorf("%w: open %s: a sequential open must create", fsapi.ErrBadRequest, req.Path)
	}
	if err := s.checkSize(len(req.Contents)); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, s.structuralOf(req.Path), fsm.CmdOpen, func(m fsm.WriteMeta) any {
		return &fsm.Open{Meta: m, Path: req.Path, Create: uint8(req.Create), Ephemeral: req.Ephemeral,
			Directory: req.Directory, Contents: req.Contents, Sequential: true}
	})
	if err != nil {
		return nil, err
	}
	return &wire.OpenResponse{RespHeader: wire.RespHeader{Revision: idx}, Stat: res.Stat, Created: res.Created, Path: res.Path}, nil
}

func (s *Server) getContents(ctx context.Context, req *wire.GetContentsRequest) (*wire.GetContentsResponse, error) {
	v, n, done, err := s.readCall(ctx, req.Header, req.ReadOptions, req.NodeRef, false)
	if err != nil {
		return absentReply[wire.GetContentsResponse](done, v, req.Path, err)
	}
	if n.Stat.IsDir {
		return nil, fmt.Errorf("%w: %s", fsapi.ErrIsDir, req.Path)
	}
	return &wire.GetContentsResponse{RespHeader: wire.RespHeader{Revision: v.Revision(), Cacheable: done()},
		Data: n.Data, Stat: n.Stat}, nil
}

func (s *Server) getStat(ctx context.Context, req *wire.GetStatRequest) (*wire.GetStatResponse, error) {
	v, n, done, err := s.readCall(ctx, req.Header, req.ReadOptions, req.NodeRef, false)
	if err != nil {
		return absentReply[wire.GetStatResponse](done, v, req.Path, err)
	}
	return &wire.GetStatResponse{RespHeader: wire.RespHeader{Revision: v.Revision(), Cacheable: done()}, Stat: n.Stat}, nil
}

func (s *Server) readDir(ctx context.Context, req *wire.ReadDirRequest) (*wire.ReadDirResponse, error) {
	v, n, done, err := s.readCall(ctx, req.Header, req.ReadOptions, req.NodeRef, true)
	if err != nil {
		return nil, err
	}
	if !n.Stat.IsDir {
		return nil, fmt.Errorf("%w: %s", fsapi.ErrNotDir, req.Path)
	}
	return &wire.ReadDirResponse{RespHeader: wire.RespHeader{Revision: v.Revision(), Cacheable: done()},
		Stat: n.Stat, Entries: v.List(req.Path)}, nil
}

// cacheRead registers a caching session as a cacher of what a read is
// about to answer (ref's node, or its listing); the function it returns,
// called after the read, says whether the answer may be cached.
func (s *Server) cacheRead(h wire.Header, ref wire.NodeRef, listing bool) func() bool {
	if len(ref.Sequencer) > 0 || fsapi.CheckPath(ref.Path) != nil {
		return func() bool { return false }
	}
	if si, ok := s.fsm.Session(h.Session); !ok || !si.Caching {
		return func() bool { return false }
	}
	tok := s.cache.beginRead(h.Session, ref.Path, listing)
	return func() bool { return s.cache.endRead(tok) }
}

// absentReply is a read's failure; a node's absence may be cached, except
// that of a name a sequential create may take (fsapi.MaybeSequential):
// such a create cannot invalidate its new name beforehand, because the
// state machine picks the number when it applies the create.
func absentReply[R any, PR interface {
	*R
	responder
}](done func() bool, v *fsm.View, path string, err error) (PR, error) {
	resp := PR(new(R))
	if v != nil && errors.Is(err, fsapi.ErrNotExist) {
		resp.Header().Revision = v.Revision()
		resp.Header().Cacheable = done() && !fsapi.MaybeSequential(path)
	}
	return resp, err
}

func (s *Server) setContents(ctx context.Context, req *wire.SetContentsRequest) (*wire.SetContentsResponse, error) {
	if err := fsapi.CheckPath(req.Path); err != nil {
		return nil, err
	}
	if err := s.checkSize(len(req.Data)); err != nil {
		return nil, err
	}
	res, idx, err := s.write(ctx, req.Header, req.WriteHeader, contentsOf(req.Path), fsm.CmdSetContents, func(m fsm.WriteMeta) any {
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
	_, idx, err := s.write(ctx, req.Header, req.WriteHeader, s.structuralOf(req.Path), fsm.CmdDelete, func(m fsm.WriteMeta) any {
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
		EventsHeld:  s.fsm.EventCount(), EventFloor: s.fsm.EventFloor(), Watches: s.fsm.EventWaiters(),
		FollowerReads: s.followerServed.Load(), FollowerBehind: s.followerBehind.Load(),
	}
	if s.IsMaster() {
		resp.CacheEntries, resp.InvalidationsPending = s.cache.stats()
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
