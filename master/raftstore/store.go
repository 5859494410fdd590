package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

var (
	// ErrKeyNotFound is returned by Get and GetUint64 for a missing key.
	// Its text is exactly "not found" because hashicorp/raft recognises a
	// missing stable key by comparing err.Error() with that string.
	ErrKeyNotFound = errors.New("not found")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("raftstore: store is closed")

	// ErrCorrupt is wrapped by errors about undecodable stored records.
	ErrCorrupt = errors.New("raftstore: corrupt record")
)

var (
	_ raft.LogStore    = (*Store)(nil)
	_ raft.StableStore = (*Store)(nil)
)

// maxPendingTxns bounds how many split transactions of one oversized
// StoreLogs/DeleteRange call may be in flight, to cap transient memory.
const maxPendingTxns = 4

// Store is a raft.LogStore and raft.StableStore backed by badger. It is
// safe for concurrent use; see the package documentation.
type Store struct {
	db  *badger.DB
	log *slog.Logger // never nil

	// mu is held shared by every operation and exclusively by Close, so
	// Close waits for in-flight calls and later calls see closed.
	mu     sync.RWMutex
	closed bool

	stop   chan struct{} // closed by Close to stop the GC goroutine
	gcDone chan struct{} // closed when the GC goroutine has exited
}

// Open opens (creating if needed) the store in opts.Dir and starts the
// background value-log GC goroutine unless opts.GCInterval is negative.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	db, err := badger.Open(opts.badgerOptions())
	if err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		db:     db,
		log:    opts.Logger,
		stop:   make(chan struct{}),
		gcDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.GCInterval < 0 {
		close(s.gcDone)
	} else {
		go s.gcLoop(opts.GCInterval)
	}
	return s, nil
}

// Close stops the GC goroutine and closes badger, flushing memtables. It
// waits for in-flight calls to finish. Calling Close again returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.stop)
	<-s.gcDone
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftstore: close: %w", err)
	}
	return nil
}

// gcLoop runs value-log GC every interval until stop is closed.
func (s *Store) gcLoop(interval time.Duration) {
	defer close(s.gcDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.runGC()
		}
	}
}

// runGC rewrites value-log files until badger reports nothing to do.
func (s *Store) runGC() {
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		err := s.db.RunValueLogGC(gcDiscardRatio)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("raftstore: value log GC failed", "err", err)
		}
		return
	}
}

// view runs fn in a read-only badger transaction unless the store is closed.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.View(fn)
}

// update runs fn in a read-write badger transaction (one fsync on commit).
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return s.db.Update(fn)
}

// batch runs fn against one WriteBatch and flushes it. fn also gets a
// read-only transaction for lookups. Badger commits the batch as a single
// transaction (one fsync) unless it exceeds its size limit, in which case
// it is split into several transactions committed in order.
func (s *Store) batch(fn func(wb *badger.WriteBatch, rd *badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	rd := s.db.NewTransaction(false)
	defer rd.Discard()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	wb.SetMaxPendingTxns(maxPendingTxns)
	if err := fn(wb, rd); err != nil {
		return err
	}
	return wb.Flush()
}

// wrap prefixes err with the operation name unless it is already one of
// the package's own sentinel-based errors.
func wrap(op string, err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("raftstore: %s: %w", op, err)
}

// keysOnly returns iterator options over log keys that fetch no values.
func keysOnly(reverse bool) badger.IteratorOptions {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Reverse = reverse
	o.Prefix = []byte{prefixLog}
	return o
}

// edgeIndex returns the lowest (or, if last, highest) stored log index, or
// 0 if there are no logs.
func edgeIndex(txn *badger.Txn, last bool) (uint64, error) {
	it := txn.NewIterator(keysOnly(last))
	defer it.Close()
	seek := logKey(0)
	if last {
		seek = logKey(math.MaxUint64)
	}
	it.Seek(seek)
	if !it.Valid() {
		return 0, nil
	}
	return parseLogKey(it.Item().Key())
}

// FirstIndex returns the lowest stored log index, or 0 if there are none.
func (s *Store) FirstIndex() (uint64, error) {
	return s.findEdge(false)
}

// LastIndex returns the highest stored log index, or 0 if there are none.
func (s *Store) LastIndex() (uint64, error) {
	return s.findEdge(true)
}

func (s *Store) findEdge(last bool) (uint64, error) {
	var idx uint64
	err := s.view(func(txn *badger.Txn) error {
		var err error
		idx, err = edgeIndex(txn, last)
		return err
	})
	if err != nil {
		return 0, wrap("find edge index", err)
	}
	return idx, nil
}

// GetLog reads the log at index into out. It returns raft.ErrLogNotFound
// (unwrapped) if there is no such log.
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	var buf []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if err != nil {
			return err
		}
		buf, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return wrap(fmt.Sprintf("get log %d", index), err)
	}
	if err := decodeLog(buf, out); err != nil {
		return fmt.Errorf("%w (log index %d)", err, index)
	}
	return nil
}

// StoreLog stores one log; see StoreLogs.
func (s *Store) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

// StoreLogs durably stores logs, overwriting any logs with the same
// indexes, in one badger write batch (a single fsync unless the batch
// exceeds ~15% of MemTableSize). Gaps between indexes are allowed.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	err := s.batch(func(wb *badger.WriteBatch, _ *badger.Txn) error {
		for _, l := range logs {
			if l == nil {
				return errors.New("nil log")
			}
			v, err := encodeLog(l)
			if err != nil {
				return err
			}
			if err := wb.Set(logKey(l.Index), v); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("store logs", err)
}

// DeleteRange deletes all stored logs with min <= index <= max. Missing
// indexes are skipped and min > max is a no-op. Only existing keys are
// visited, so huge ranges cost O(stored logs in range).
//
// If the batch has to be split and the process crashes midway, the
// deletion order keeps the survivors contiguous for raft's two patterns:
// a range reaching the last log (conflict truncation) is deleted from the
// top down, any other range (compaction) from the bottom up.
func (s *Store) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	err := s.batch(func(wb *badger.WriteBatch, rd *badger.Txn) error {
		last, err := edgeIndex(rd, true)
		if err != nil {
			return err
		}
		return deleteLogKeys(wb, rd, min, max, max >= last)
	})
	return wrap(fmt.Sprintf("delete range [%d, %d]", min, max), err)
}

// deleteLogKeys queues deletes for every stored log key in [min, max],
// walking downwards from max if reverse, else upwards from min.
func deleteLogKeys(wb *badger.WriteBatch, rd *badger.Txn, min, max uint64, reverse bool) error {
	it := rd.NewIterator(keysOnly(reverse))
	defer it.Close()
	start := min
	if reverse {
		start = max
	}
	for it.Seek(logKey(start)); it.Valid(); it.Next() {
		key := it.Item().KeyCopy(nil)
		idx, err := parseLogKey(key)
		if err != nil {
			return err
		}
		if idx < min || idx > max {
			return nil
		}
		if err := wb.Delete(key); err != nil {
			return err
		}
	}
	return nil
}
