package cellclient

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/haspcell/hasp/lease"
)

// Config configures a Client. The zero value of every field but Addrs
// means its default.
type Config struct {
	// Addrs lists the cell's replicas (host:port). Any one is enough to find
	// the master; list them all so the client survives any replica's loss.
	Addrs []string
	// Cell is the cell the client expects; "" or "local" accept any.
	Cell string
	// ClientName is shown to operators (default: the program name).
	ClientName string
	// DialTimeout bounds one TCP connect (default 2 s).
	DialTimeout time.Duration
	// AttemptTimeout bounds one try of one call at one replica (default 5 s).
	// A call is retried, at the same or a new master, until its context ends.
	AttemptTimeout time.Duration
	// GracePeriod is how long the client hunts for a master after its local
	// lease runs out before it declares the session expired (default 45 s).
	GracePeriod time.Duration
	// Logger receives the client's logs (default: discard).
	Logger *slog.Logger
	// Clock is the time source of the local session lease (default: the
	// system clock). Tests replace it to skew the client's clock.
	Clock lease.Clock
	// DisableCache turns the consistent client cache off: every read goes
	// to the master.
	DisableCache bool
	// CacheBytes bounds the cache's memory (default 64 MiB).
	CacheBytes int64
	// LocalAddr is the local IP address to connect from (e.g. "127.0.0.2");
	// "" lets the system choose. A host running tens of thousands of
	// sessions spreads them over addresses so that they do not share one
	// address's ephemeral ports.
	LocalAddr string

	localIP net.IP // LocalAddr, parsed by Validate
	// FollowerReads lets any replica answer this client's reads (Open of
	// an existing node, GetContentsAndStat, GetStat, ReadDir) from its own
	// state, to take read load off the master. Reads are then
	// read-your-writes and monotonic for this client, not linearizable:
	// they may miss other clients' recent writes. See
	// docs/consistency.md, "Follower reads". Implies no cache (the
	// master's invalidations cover only what it served itself). Reads with
	// a sequencer, writes, locks, watches and KeepAlives still go to the
	// master. Default false: linearizable reads.
	FollowerReads bool
}

func (c *Config) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 5 * time.Second
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = 45 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = lease.SystemClock{}
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addrs) == 0 {
		errs = append(errs, errors.New("no replica addresses"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", c.DialTimeout}, {"attempt timeout", c.AttemptTimeout}, {"grace period", c.GracePeriod}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	c.localIP = nil
	if c.LocalAddr != "" {
		if c.localIP = net.ParseIP(c.LocalAddr); c.localIP == nil {
			errs = append(errs, fmt.Errorf("local address %q is not an IP address", c.LocalAddr))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cellclient: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
