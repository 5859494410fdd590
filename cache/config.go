package cache

import (
	"errors"
	"fmt"
	"math/bits"
)

const (
	// DefaultMaxBytes is the default bound on the bytes the entries account for.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxMarks is the default number of invalidation marks remembered.
	DefaultMaxMarks = 1 << 16
	// DefaultShards is the default number of independently locked shards.
	DefaultShards = 16
	// MaxShards is the largest allowed number of shards.
	MaxShards = 256
	// EntryOverhead is what each entry costs beyond its path and data, in
	// bytes: an estimate of the entry struct, its list element and its map
	// slot. It keeps a flood of empty entries (negative ones, say) bounded.
	EntryOverhead = 256
)

// Config configures a Cache. The zero value of every field means its default.
type Config struct {
	// MaxBytes bounds the memory the cached entries account for, in bytes
	// (default 64 MiB). Each entry counts its path, its data (contents, or
	// the names and stats of a listing) and EntryOverhead. The bound is split
	// evenly across the shards; an entry larger than one shard's share is
	// not cached, so keep MaxBytes/Shards well above the cell's content
	// limit (256 KiB by default).
	MaxBytes int64
	// MaxMarks bounds how many invalidation marks (path → newest
	// invalidation revision) are remembered, across all shards (default
	// 65,536; each costs about 100 bytes plus its path, outside MaxBytes).
	// A shard that overflows forgets its least recently marked path and
	// raises its floor to that mark's revision, so replies read at or below
	// it are refused: too small a value refuses more in-flight replies, it
	// never serves stale data.
	MaxMarks int
	// Shards is the number of independently locked parts of the cache, a
	// power of two from 1 to MaxShards (default 16). More shards mean less
	// lock contention; each shard evicts in LRU order within its share of
	// MaxBytes, so the eviction order is exactly LRU only with one shard.
	Shards int
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{MaxBytes: DefaultMaxBytes, MaxMarks: DefaultMaxMarks, Shards: DefaultShards}
}

func (c *Config) setDefaults() {
	d := DefaultConfig()
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxMarks == 0 {
		c.MaxMarks = d.MaxMarks
	}
	if c.Shards == 0 {
		c.Shards = d.Shards
	}
}

// Validate checks the configuration. Zero fields count as their defaults.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if c.Shards < 1 || c.Shards > MaxShards || bits.OnesCount(uint(c.Shards)) != 1 {
		errs = append(errs, fmt.Errorf("shards %d is not a power of two from 1 to %d", c.Shards, MaxShards))
	} else {
		if c.MaxBytes < int64(c.Shards)*EntryOverhead {
			errs = append(errs, fmt.Errorf("max bytes %d leaves a shard less than one entry's overhead (%d shards × %d)",
				c.MaxBytes, c.Shards, EntryOverhead))
		}
		if c.MaxMarks < c.Shards {
			errs = append(errs, fmt.Errorf("max marks %d is fewer than one per shard (%d shards)", c.MaxMarks, c.Shards))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cache: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
