package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/lease"
	"github.com/haspcell/hasp/master/fsm"
)

// Config configures one replica. A zero field means the value stored in
// Dir by an earlier run, else the default of DefaultConfig. New validates
// the result and stores it in Dir, so a restart needs only Dir.
type Config struct {
	// ID names the replica in the Raft configuration (e.g. "r1"). Required
	// unless Dir already holds a replica (then the stored one is used).
	ID string
	// Dir holds the Raft log (badger), snapshots and replica.json. Required.
	Dir string
	// Listen is the TCP address that serves both Raft and clients
	// (e.g. "127.0.0.1:7001"). Required unless stored in Dir.
	Listen string
	// Advertise is the address peers and clients use to reach this replica.
	// Default: Listen.
	Advertise string
	// CellName is the cell's name, /ls/CELL/...; the same on every replica.
	CellName string
	// InitialCell lists every replica of a new cell (ID → address). It is
	// used only when Dir is empty, to bootstrap Raft; a restart ignores it.
	InitialCell map[string]string
	// ContentLimit is the largest file in bytes (default 256 KiB). It is a
	// cell-wide setting: every replica must use the same value.
	ContentLimit int
	// SessionLease is the session lease a KeepAlive grants (default 12 s).
	SessionLease time.Duration

	// HeartbeatTimeout and ElectionTimeout are Raft's (default 300 ms each:
	// kill -9 of the master → first acknowledged write took a median of
	// 0.84 s here, with no spurious elections under 64-client load on two
	// cores; 500 ms took 1.33 s). Shorter fails over faster but risks
	// elections under load. The master lease is HeartbeatTimeout·(1−ε)−δ.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LeaderLeaseTimeout is Raft's step-down timer (default 300 ms, the
	// heartbeat timeout). It is not the master lease: it only decides how
	// soon a master out of touch with a majority stops trying. At 150 ms a
	// master whose CPU was saturated by 10,000 sessions' reconnecting
	// clients stepped down again and again.
	LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot
	// (default 8192); TrailingLogs how many stay after one (default 10240).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// EventHistory is how many recent change events the replica keeps in
	// memory for watches (default 32768, 136 bytes each plus the
	// path). A watch that resumes from an older revision gets
	// fsapi.ErrCompacted. The replica's own setting: replicas may differ.
	EventHistory int

	// Logger receives the replica's logs (default: discard).
	Logger *slog.Logger
	// Clock is the time source for master and session leases (default: the
	// system clock). Raft keeps its own timers.
	Clock lease.Clock

	// Transport replaces Raft's TCP transport (tests: raft.InmemTransport).
	// Then Listen serves clients only.
	Transport raft.Transport
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener
}

// maxEventHistory bounds Config.EventHistory (about 1.4 GiB of events).
const maxEventHistory = 10_000_000

// DefaultConfig returns the defaults for a replica on a LAN.
func DefaultConfig() Config {
	return Config{
		ContentLimit:       fsapi.DefaultContentLimit,
		SessionLease:       12 * time.Second,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 300 * time.Millisecond,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		EventHistory:       fsm.DefaultEventHistory,
	}
}

// Validate checks the fields and their relations. It does not look at Dir.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.ID != "", "id is required")
	check(c.Dir != "", "dir is required")
	check(c.Listen != "" || c.Listener != nil, "listen address is required")
	if err := fsapi.CheckCellName(c.CellName); err != nil {
		errs = append(errs, err)
	}
	check(c.ContentLimit > 0 && c.ContentLimit <= 1<<20, "content limit %d must be in (0, 1 MiB]", c.ContentLimit)
	check(c.EventHistory >= 0 && c.EventHistory <= maxEventHistory, "event history %d must be in [0, %d] (0: the default)", c.EventHistory, maxEventHistory)
	check(c.SessionLease >= time.Second, "session lease %v must be at least 1s", c.SessionLease)
	check(c.HeartbeatTimeout >= 5*time.Millisecond, "heartbeat timeout %v too small", c.HeartbeatTimeout)
	check(c.ElectionTimeout >= c.HeartbeatTimeout, "election timeout %v below heartbeat timeout %v", c.ElectionTimeout, c.HeartbeatTimeout)
	check(c.LeaderLeaseTimeout > 0 && c.LeaderLeaseTimeout <= c.HeartbeatTimeout,
		"leader lease timeout %v must be in (0, heartbeat timeout]", c.LeaderLeaseTimeout)
	if len(c.InitialCell) > 0 {
		_, ok := c.InitialCell[c.ID]
		check(ok, "initial cell does not list this replica's id %q", c.ID)
	}
	if len(errs) > 0 {
		return fmt.Errorf("master: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *Config) advertise() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	if c.Listener != nil {
		return c.Listener.Addr().String()
	}
	return c.Listen
}

// ParseInitialCell parses "r1=127.0.0.1:7001,r2=..." into a map.
func ParseInitialCell(s string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("master: initial cell entry %q is not ID=HOST:PORT", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("master: initial cell entry %q: %v", part, err)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("master: initial cell lists %q twice", id)
		}
		out[id] = addr
	}
	return out, nil
}

// raftServers returns InitialCell as a sorted Raft configuration.
func (c *Config) raftServers() []raft.Server {
	ids := make([]string, 0, len(c.InitialCell))
	for id := range c.InitialCell {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []raft.Server
	for _, id := range ids {
		out = append(out, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(c.InitialCell[id])})
	}
	return out
}

// replicaFile is what a replica remembers about itself in Dir, so that a
// restart needs only --dir. Durations are in milliseconds.
type replicaFile struct {
	ID                string `json:"id"`
	Listen            string `json:"listen"`
	Advertise         string `json:"advertise"`
	CellName          string `json:"cell_name"`
	ContentLimit      int    `json:"content_limit"`
	SessionLeaseMS    int64  `json:"session_lease_ms,omitempty"`
	HeartbeatMS       int64  `json:"heartbeat_timeout_ms,omitempty"`
	ElectionMS        int64  `json:"election_timeout_ms,omitempty"`
	LeaderLeaseMS     int64  `json:"leader_lease_timeout_ms,omitempty"`
	SnapshotThreshold uint64 `json:"snapshot_threshold,omitempty"`
	TrailingLogs      uint64 `json:"trailing_logs,omitempty"`
	EventHistory      int    `json:"event_history,omitempty"`
}

const replicaFileName = "replica.json"

// LoadStored fills empty fields of c from Dir/replica.json, if present, and
// reports whether it was. A field given in both places must agree.
func (c *Config) LoadStored() (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, replicaFileName))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("master: %w", err)
	}
	var rf replicaFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return false, fmt.Errorf("master: %s is corrupt: %w", replicaFileName, err)
	}
	merge := func(name string, field *string, stored string) error {
		if *field == "" {
			*field = stored
			return nil
		}
		if stored != "" && *field != stored {
			return fmt.Errorf("master: --%s %q differs from %q stored in %s", name, *field, stored, c.Dir)
		}
		return nil
	}
	for _, m := range []struct {
		name  string
		field *string
		value string
	}{{"id", &c.ID, rf.ID}, {"listen", &c.Listen, rf.Listen}, {"advertise", &c.Advertise, rf.Advertise}, {"cell-name", &c.CellName, rf.CellName}} {
		if err := merge(m.name, m.field, m.value); err != nil {
			return true, err
		}
	}
	if c.ContentLimit != 0 && rf.ContentLimit != 0 && c.ContentLimit != rf.ContentLimit {
		return true, fmt.Errorf("master: content limit %d differs from %d stored in %s; it is fixed for the cell's life",
			c.ContentLimit, rf.ContentLimit, c.Dir)
	}
	fillInt(&c.ContentLimit, rf.ContentLimit)
	fillMS(&c.SessionLease, rf.SessionLeaseMS)
	fillMS(&c.HeartbeatTimeout, rf.HeartbeatMS)
	fillMS(&c.ElectionTimeout, rf.ElectionMS)
	fillMS(&c.LeaderLeaseTimeout, rf.LeaderLeaseMS)
	fillInt(&c.SnapshotThreshold, rf.SnapshotThreshold)
	fillInt(&c.TrailingLogs, rf.TrailingLogs)
	fillInt(&c.EventHistory, rf.EventHistory)
	return true, nil
}

// fillDefaults sets every zero field that has a default.
func (c *Config) fillDefaults() {
	d := DefaultConfig()
	fillInt(&c.ContentLimit, d.ContentLimit)
	fillInt(&c.SnapshotThreshold, d.SnapshotThreshold)
	fillInt(&c.TrailingLogs, d.TrailingLogs)
	fillInt(&c.EventHistory, d.EventHistory)
	for _, f := range []struct {
		field *time.Duration
		def   time.Duration
	}{
		{&c.SessionLease, d.SessionLease}, {&c.HeartbeatTimeout, d.HeartbeatTimeout},
		{&c.ElectionTimeout, d.ElectionTimeout}, {&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout},
	} {
		if *f.field == 0 {
			*f.field = f.def
		}
	}
}

func fillInt[T int | uint64](field *T, v T) {
	if *field == 0 {
		*field = v
	}
}

func fillMS(field *time.Duration, ms int64) {
	if *field == 0 {
		*field = time.Duration(ms) * time.Millisecond
	}
}

func (c *Config) store() error {
	rf := replicaFile{ID: c.ID, Listen: c.Listen, Advertise: c.Advertise, CellName: c.CellName, ContentLimit: c.ContentLimit,
		SessionLeaseMS: c.SessionLease.Milliseconds(), HeartbeatMS: c.HeartbeatTimeout.Milliseconds(),
		ElectionMS: c.ElectionTimeout.Milliseconds(), LeaderLeaseMS: c.LeaderLeaseTimeout.Milliseconds(),
		SnapshotThreshold: c.SnapshotThreshold, TrailingLogs: c.TrailingLogs, EventHistory: c.EventHistory}
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(c.Dir, replicaFileName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("master: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.Dir, replicaFileName))
}
