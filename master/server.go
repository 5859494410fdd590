package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/master/fsm"
	"github.com/haspcell/hasp/master/raftstore"
)

// Server is one replica: a Raft member that, while it is the master, serves
// every client call.
type Server struct {
	cfg  Config
	log  *slog.Logger
	addr string // advertised address

	ln        net.Listener
	raftLayer *streamLayer // nil when cfg.Transport is set
	trans     raft.Transport
	store     *raftstore.Store
	fsm       *fsm.FSM
	raft      *raft.Raft
	leaderCh  chan bool

	clock        lease.Clock
	leases       *leaseTable
	verifier     *verifier
	handlerTable map[wire.MsgType]handlerFunc
	lockw        *lockWaiters
	cache        *cacheTable
	// followerServed and followerBehind count follower reads answered
	// here and sent to the master (Status; follower.go).
	followerServed, followerBehind atomic.Uint64

	// leading is the master state this replica runs while it leads; nil
	// otherwise. Read on every call, replaced by the leader loop.
	leading atomic.Pointer[leaderState]

	wg        sync.WaitGroup
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
	stopCh    chan struct{}
	readyCh   chan struct{} // closed once Raft runs; client calls wait for it

	mu    sync.Mutex // protects following fields
	conns map[net.Conn]struct{}
}

// leaderState exists for one term in which this replica is master and has
// committed a barrier (so its FSM reflects every earlier committed entry).
type leaderState struct {
	term   uint64
	doneCh chan struct{} // closed when leadership of this term ends
	lease  *masterLease
}

// New opens the replica's store, starts Raft and begins listening. It
// bootstraps a new cell when Dir holds no Raft state and InitialCell is set.
// Call Run to serve until a context ends, or Close.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = lease.SystemClock{}
	}
	if cfg.Dir == "" {
		return nil, errors.New("master: invalid config: dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	if _, err := cfg.LoadStored(); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("replica", cfg.ID),
		stopCh:   make(chan struct{}),
		readyCh:  make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		leaderCh: make(chan bool, 16),
	}
	s.clock = cfg.Clock
	s.leases = newLeaseTable(cfg.SessionLease)
	s.lockw = newLockWaiters()
	s.cache = newCacheTable(cfg.Clock, s.stopCh)
	s.handlerTable = s.buildHandlers()
	if err := s.openReplica(); err != nil {
		s.shutdown(false)
		return nil, err
	}
	return s, nil
}

// logCacheEntries is how many recent Raft entries are kept in memory.
const logCacheEntries = 128

func (s *Server) openReplica() error {
	if err := s.listen(); err != nil {
		return err
	}
	if err := s.cfg.store(); err != nil {
		return err
	}
	store, err := raftstore.Open(raftstore.Options{
		Dir: filepath.Join(s.cfg.Dir, "raft"), Logger: s.log,
	})
	if err != nil {
		return fmt.Errorf("master: open raft store: %w", err)
	}
	s.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.cfg.Dir, 2, newHclog(s.log, "snapshot", s.stopping))
	if err != nil {
		return fmt.Errorf("master: open snapshot store: %w", err)
	}
	s.fsm = fsm.New(fsm.Config{ContentLimit: s.cfg.ContentLimit, EventHistory: s.cfg.EventHistory})
	s.fsm.SetLockNotify(s.lockw.notify)
	return s.startRaft(snaps)
}

func (s *Server) listen() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("master: %w", err)
		}
	}
	s.ln = ln
	s.addr = s.cfg.advertise()
	if s.cfg.Transport != nil {
		s.trans = s.cfg.Transport
	} else {
		s.raftLayer = newStreamLayer(advertiseAddr(s.addr))
		s.trans = noPipeline{raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  s.raftLayer,
			MaxPool: 3,
			Timeout: 5 * time.Second,
			Logger:  newHclog(s.log, "raft-net", s.stopping),
		})}
	}
	s.track(func() { s.serveListener(ln) })
	return nil
}

func (s *Server) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.ID)
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = 5 * time.Millisecond
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.SnapshotInterval = 30 * time.Second
	rc.NotifyCh = s.leaderCh
	rc.Logger = newHclog(s.log, "raft", s.stopping)
	return rc
}

func (s *Server) startRaft(snaps raft.SnapshotStore) error {
	rc := s.raftConfig()
	has, err := raft.HasExistingState(s.store, s.store, snaps)
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	if has {
		// Raft does not persist the leader it was sticky to: wait out any
		// master lease this replica may have helped grant before it can vote.
		time.Sleep(lease.RestartDelay(s.cfg.HeartbeatTimeout, lease.DefaultEpsilon))
	}
	if !has && len(s.cfg.InitialCell) > 0 {
		cfg := raft.Configuration{Servers: s.cfg.raftServers()}
		if err := raft.BootstrapCluster(rc, s.store, s.store, snaps, s.trans, cfg); err != nil {
			return fmt.Errorf("master: bootstrap: %w", err)
		}
		s.log.Info("bootstrapped a new cell", "servers", len(cfg.Servers))
	}
	// Recent entries are read back to replicate them: serve those from
	// memory instead of badger (a profile showed 7–8% of the master's CPU
	// there). 128 entries bound the cache at 32 MiB even at the largest
	// contents; typical entries are well under 1 KiB.
	logs, err := raft.NewLogCache(logCacheEntries, s.store)
	if err != nil {
		return fmt.Errorf("master: log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, s.fsm, logs, s.store, snaps, s.trans)
	if err != nil {
		return fmt.Errorf("master: start raft: %w", err)
	}
	s.raft = r
	s.verifier = newVerifier(r)
	s.track(s.leaderLoop)
	close(s.readyCh)
	return nil
}

// Run serves until ctx ends, then shuts the replica down.
func (s *Server) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.stopCh:
	}
	return s.Close()
}

// Close stops serving and shuts Raft and the store down; a master first
// hands leadership to another replica. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown(true) })
	return s.closeErr
}

// Crash stops the replica like Close but without handing leadership off, as
// a process crash would (for tests). Its store is still closed cleanly.
func (s *Server) Crash() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown(false) })
	return s.closeErr
}

func (s *Server) shutdown(handOff bool) error {
	s.closing.Store(true)
	if handOff {
		s.handOff()
	}
	select {
	case <-s.stopCh:
	default:
		close(s.stopCh)
	}
	var errs []error
	if s.ln != nil {
		s.ln.Close()
	}
	s.closeConns()
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.raftLayer != nil {
		s.raftLayer.Close()
	}
	if c, ok := s.trans.(interface{ Close() error }); ok && s.cfg.Transport == nil {
		c.Close()
	}
	s.wg.Wait()
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopping reports whether Close has begun.
func (s *Server) stopping() bool { return s.closing.Load() }

// handOff, on a master that is shutting down cleanly, drops the master
// lease and transfers leadership, so clients wait for a transfer (tens of
// milliseconds) rather than an election timeout. The lease goes first: a
// transfer bypasses follower stickiness, which the lease relies on.
func (s *Server) handOff() {
	ls := s.leading.Swap(nil)
	if ls == nil || s.raft == nil {
		return
	}
	ls.lease.drop()
	close(ls.doneCh)
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.ElectionTimeout)
	defer cancel()
	if err := s.awaitFuture(ctx, s.raft.LeadershipTransfer()); err != nil {
		s.log.Debug("leadership transfer at shutdown failed", "err", err)
	}
}

// TransferLeadership hands the master role to the replica whose Raft ID is
// id, and returns once Raft has handed it over (or failed to). It drops
// this master's lease first, for the rest of its term: a transfer bypasses
// the followers' stickiness that the lease relies on, and a failed
// transfer's election may still come later. Meanwhile, and for the rest of
// the term if the transfer fails, reads take the ReadIndex path.
func (s *Server) TransferLeadership(ctx context.Context, id string) error {
	ls := s.leading.Load()
	if ls == nil {
		return &fsapi.NotMasterError{}
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, srv := range cf.Configuration().Servers {
		if string(srv.ID) == id {
			ls.lease.drop()
			return s.awaitFuture(ctx, s.raft.LeadershipTransferToServer(srv.ID, srv.Address))
		}
	}
	return fmt.Errorf("%w: no replica %q in the cell", fsapi.ErrBadRequest, id)
}

// awaitFuture waits for f, or for ctx to end.
func (s *Server) awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track runs f in a goroutine that Close waits for.
func (s *Server) track(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) addConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.stopCh:
		return false
	default:
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Addr is the replica's advertised address.
func (s *Server) Addr() string { return s.addr }

// ID is the replica's id.
func (s *Server) ID() string { return s.cfg.ID }

// Raft exposes the Raft instance to tests and tools in this module.
func (s *Server) Raft() *raft.Raft { return s.raft }

// FSM exposes the state machine to tests in this module.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// IsMaster reports whether this replica currently acts as master.
func (s *Server) IsMaster() bool { return s.leading.Load() != nil }

// LockWakeups counts the waiting lock calls this replica has woken because
// their request was granted or dropped (see StatusResponse.LockWakeups).
func (s *Server) LockWakeups() uint64 { return s.lockw.wakeups.Load() }

// noPipeline is raft's network transport without pipelined replication.
// raft v1.8.0's netPipeline can wedge: after a follower answers
// Success=false, the send loop may park on a full in-flight channel while
// the response decoder parks on a done channel nobody reads, so the
// leader never replicates to that follower again (heartbeats still flow,
// so no election heals it) and raft.Shutdown waits forever
// (hashicorp/raft#612; Grafana Pyroscope disabled pipelining for it). We saw
// it as a replica that ignored SIGTERM for 20 minutes. Without a pipeline
// raft sends one AppendEntries at a time per follower, each batching up to
// MaxAppendEntries entries; on a LAN the lost overlap is small.
type noPipeline struct{ *raft.NetworkTransport }

func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
