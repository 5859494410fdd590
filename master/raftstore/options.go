package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Size and tuning defaults. They target a heap of a few tens of MiB per
// store, because several stores may share one process in dev mode.
const (
	// DefaultMemTableSize is the default Options.MemTableSize (8 MiB).
	DefaultMemTableSize int64 = 8 << 20
	// DefaultValueLogFileSize is the default Options.ValueLogFileSize (32 MiB).
	DefaultValueLogFileSize int64 = 32 << 20
	// DefaultBlockCacheSize is the default Options.BlockCacheSize (8 MiB).
	DefaultBlockCacheSize int64 = 8 << 20
	// DefaultGCInterval is the default Options.GCInterval (5 minutes).
	DefaultGCInterval = 5 * time.Minute

	minMemTableSize       int64   = 1 << 20
	minValueLogFileSize   int64   = 1 << 20
	maxValueLogFileSize   int64   = 2<<30 - 1
	gcDiscardRatio        float64 = 0.5
	valueThreshold        int64   = 4 << 10
	baseTableSize         int64   = 1 << 20
	baseLevelSize         int64   = 4 << 20
	indexCacheSize        int64   = 2 << 20
	numMemtables                  = 2
	numLevelZeroTables            = 2
	numLevelZeroTablesStl         = 8
	numCompactors                 = 2
)

// Options configures a Store. The zero value of every field except Dir
// selects the documented default; use DefaultOptions to get them spelled out.
type Options struct {
	// Dir is the directory holding the badger files. Required. It is
	// created if missing. Only one Store (in any process) may have a given
	// Dir open at a time; badger takes a lock file and Open fails otherwise.
	Dir string

	// Logger receives badger's internal log lines at the matching slog
	// level (Debug/Info/Warn/Error) plus the store's own GC warnings.
	// Nil means silent.
	Logger *slog.Logger

	// MemTableSize is the size in bytes of one badger memtable. Default
	// 8 MiB, minimum 1 MiB. Up to two memtables (plus a batch overhead of
	// ~15%) live on the heap at once, so this is the main knob for the
	// store's memory footprint. Hazard: a single StoreLogs call larger than
	// ~15% of this is split into several badger transactions (one fsync
	// each); a crash can then persist only a prefix of the batch.
	MemTableSize int64

	// ValueLogFileSize is the size in bytes of one value-log file. Values
	// larger than 4 KiB (big raft entries) live in the value log, which is
	// mmapped rather than heap-allocated. Default 32 MiB; must be in
	// [1 MiB, 2 GiB). Hazard: a single log entry can never exceed this.
	ValueLogFileSize int64

	// BlockCacheSize is the size in bytes of the badger block cache used
	// when reading SSTables. Default 8 MiB; must not be negative.
	BlockCacheSize int64

	// GCInterval is how often the background goroutine runs value-log
	// garbage collection (RunValueLogGC(0.5) repeated until it reports no
	// more work). 0 selects the default of 5 minutes; a negative value
	// disables GC entirely. Hazard: disabling GC lets the value log grow
	// without bound after raft compacts its log.
	GCInterval time.Duration
}

// DefaultOptions returns Options for dir with every default spelled out.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:              dir,
		MemTableSize:     DefaultMemTableSize,
		ValueLogFileSize: DefaultValueLogFileSize,
		BlockCacheSize:   DefaultBlockCacheSize,
		GCInterval:       DefaultGCInterval,
	}
}

// Validate reports whether o (after zero fields take their defaults) can be
// used to open a Store.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if o.MemTableSize < minMemTableSize {
		errs = append(errs, fmt.Errorf("MemTableSize %d is below the minimum %d", o.MemTableSize, minMemTableSize))
	}
	if o.ValueLogFileSize < minValueLogFileSize || o.ValueLogFileSize > maxValueLogFileSize {
		errs = append(errs, fmt.Errorf("ValueLogFileSize %d is outside [%d, %d]",
			o.ValueLogFileSize, minValueLogFileSize, maxValueLogFileSize))
	}
	if o.BlockCacheSize < 0 {
		errs = append(errs, fmt.Errorf("BlockCacheSize %d is negative", o.BlockCacheSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftstore: invalid options: %w", err)
	}
	return nil
}

// withDefaults replaces zero-valued tunables with their defaults.
func (o Options) withDefaults() Options {
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = DefaultValueLogFileSize
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = DefaultBlockCacheSize
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	return o
}

// badgerOptions translates validated, defaulted Options into badger's.
func (o Options) badgerOptions() badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithLogger(newBadgerLogger(o.Logger)).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithNumVersionsToKeep(1).
		WithCompression(options.None).
		WithMemTableSize(o.MemTableSize).
		WithNumMemtables(numMemtables).
		WithValueThreshold(valueThreshold).
		WithValueLogFileSize(o.ValueLogFileSize).
		WithBlockCacheSize(o.BlockCacheSize).
		WithIndexCacheSize(indexCacheSize).
		WithBaseTableSize(baseTableSize).
		WithBaseLevelSize(baseLevelSize).
		WithNumLevelZeroTables(numLevelZeroTables).
		WithNumLevelZeroTablesStall(numLevelZeroTablesStl).
		WithNumCompactors(numCompactors)
	return bo
}
