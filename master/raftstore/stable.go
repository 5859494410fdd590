package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Set durably stores val under key (one transaction, one fsync). Set and
// SetUint64 share one key space, as in raft-boltdb.
func (s *Store) Set(key, val []byte) error {
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), val)
	})
	return wrap(fmt.Sprintf("set %q", key), err)
}

// Get returns the value stored under key, or ErrKeyNotFound (unwrapped).
// A stored empty or nil value reads back as a non-nil empty slice.
func (s *Store) Get(key []byte) ([]byte, error) {
	var val []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %q", key), err)
	}
	if val == nil {
		val = []byte{}
	}
	return val, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the uint64 stored under key by SetUint64, or
// ErrKeyNotFound (unwrapped) with 0 if key is missing. Unlike
// raft.InmemStore, which returns 0 and a nil error, a missing key is an
// error here, matching raft-boltdb; raft accepts both.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	val, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(val) != 8 {
		return 0, fmt.Errorf("%w: value of key %q is %d bytes, want 8", ErrCorrupt, key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}
