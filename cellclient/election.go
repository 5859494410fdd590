package cellclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/locks"
)

// ErrNoLeader: nobody holds the election's lock (or the winner has not yet
// published its identity).
var ErrNoLeader = errors.New("cellclient: no leader")

// ErrResigned is Leadership.Err after Resign.
var ErrResigned = errors.New("cellclient: resigned")

// DefaultObserveInterval is how often Observe reads the election file
// besides following its events, and how often a Leadership checks its
// sequencer.
const DefaultObserveInterval = 500 * time.Millisecond

// Election is primary election on one file (DESIGN.md §7): a campaign
// takes the file's exclusive lock and writes the winner's identity into
// the file, fenced by the lock's sequencer; observers read it. The file's
// directory must exist; the file is created if needed.
type Election struct {
	c    *Client
	name string
	// Interval is how often Observe and the Leadership loss check poll.
	// Set it before use; 0 means DefaultObserveInterval.
	Interval time.Duration
	// LockDelay is the campaign's lock-delay (nil: DefaultLockDelay): after
	// a leader's session expires, nobody else is elected for this long, so
	// that a leader that was cut off has time to notice and stop.
	LockDelay *time.Duration
}

// NewElection returns the election held on the file called name.
func NewElection(c *Client, name string) *Election {
	return &Election{c: c, name: name}
}

func (e *Election) interval() time.Duration {
	if e.Interval > 0 {
		return e.Interval
	}
	return DefaultObserveInterval
}

// LeaderInfo is who leads: the identity the winner published and the
// sequencer of its holding. The zero value means no leader.
type LeaderInfo struct {
	Identity  string
	Sequencer Sequencer
}

// record is the election file's contents.
type record struct {
	Identity  string `json:"identity"`
	Sequencer string `json:"sequencer"`
}

// Campaign blocks until this client is elected (or ctx ends), then
// publishes identity in the election file and returns the Leadership.
// Campaigns are granted in the order they reached the master.
func (e *Election) Campaign(ctx context.Context, identity string) (*Leadership, error) {
	h, err := e.c.Open(ctx, e.name, &OpenOptions{Create: fsapi.CreateMay, LockDelay: e.LockDelay})
	if err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	if err := h.Acquire(ctx, locks.Exclusive); err != nil {
		h.Close()
		return nil, fmt.Errorf("campaign: %w", err)
	}
	seq, err := h.GetSequencer()
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("campaign: %w", err)
	}
	data, _ := json.Marshal(record{Identity: identity, Sequencer: seq.String()})
	// Fenced: the write applies only while this holding is current.
	h.SetSequencer(seq)
	if _, err := h.SetContents(ctx, data, fsapi.AnyGeneration); err != nil {
		h.Close() // releases
		return nil, fmt.Errorf("campaign: publish identity: %w", err)
	}
	l := &Leadership{e: e, h: h, seq: seq, identity: identity, done: make(chan struct{}), stop: make(chan struct{})}
	go l.watch()
	return l, nil
}

// Leadership is one won campaign.
type Leadership struct {
	e        *Election
	h        *Handle
	seq      Sequencer
	identity string
	done     chan struct{}
	stop     chan struct{}

	mu  sync.Mutex // protects following fields
	err error
}

// Sequencer is the holding's sequencer: hand it to the servers the leader
// talks to, so they can reject a deposed leader (Client.CheckSequencer, or
// a locks.Fence).
func (l *Leadership) Sequencer() Sequencer { return l.seq }

// Identity is the identity this leader published.
func (l *Leadership) Identity() string { return l.identity }

// Done is closed when leadership is lost: the session expired or was
// closed, the lock is no longer held at this generation (the file was
// deleted by this session, or the lock released), or Resign. Err says why.
//
// A session in jeopardy may already have expired at the master without the
// client knowing yet: a leader that must never overlap with the next one
// stops its work when Client.StateChange reports jeopardy, and relies on
// the lock-delay (as `hasp elect` does), or fences its actions with the
// sequencer.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err says why leadership ended (nil while it lasts).
func (l *Leadership) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Leadership) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		close(l.done)
	}
}

// watch ends the leadership when the session ends or the holding turns
// stale.
func (l *Leadership) watch() {
	t := time.NewTicker(l.e.interval())
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.e.c.Done():
			l.end(fmt.Errorf("leadership of %s lost: %w", l.e.name, l.e.c.Err()))
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), l.e.interval()+l.e.c.cfg.AttemptTimeout)
			err := l.e.c.CheckSequencer(ctx, l.seq)
			cancel()
			if errors.Is(err, fsapi.ErrStaleSequencer) {
				l.end(fmt.Errorf("leadership of %s lost: %w", l.e.name, err))
				return
			}
		}
	}
}

// Resign gives up leadership: the lock is released (no lock-delay), and
// the next campaign in line wins.
func (l *Leadership) Resign(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil
	default:
		close(l.stop)
	}
	err := l.h.Release(ctx)
	l.h.Close()
	l.end(ErrResigned)
	if errors.Is(err, fsapi.ErrNotHeld) {
		err = nil // lost already
	}
	return err
}

// Leader returns the current leader, or an error wrapping ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (LeaderInfo, error) {
	h, err := e.c.Open(ctx, e.name, nil)
	if errors.Is(err, fsapi.ErrNotExist) {
		return LeaderInfo{}, fmt.Errorf("%w: %s does not exist", ErrNoLeader, e.name)
	}
	if err != nil {
		return LeaderInfo{}, err
	}
	defer h.Close()
	// A winner publishes its identity just after it is granted the lock:
	// look again briefly when the file still names an older holding.
	for try := 0; ; try++ {
		li, err := e.read(ctx, h)
		if err == nil || !errors.Is(err, errUnpublished) || try >= 20 {
			return li, err
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return LeaderInfo{}, err
		}
	}
}

var errUnpublished = fmt.Errorf("%w: the winner has not published its identity yet", ErrNoLeader)

func (e *Election) read(ctx context.Context, h *Handle) (LeaderInfo, error) {
	info, err := h.GetLock(ctx)
	if err != nil {
		return LeaderInfo{}, err
	}
	if info.Mode != locks.Exclusive {
		return LeaderInfo{}, fmt.Errorf("%w: %s is not locked", ErrNoLeader, e.name)
	}
	data, _, err := h.GetContentsAndStat(ctx)
	if err != nil {
		return LeaderInfo{}, err
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return LeaderInfo{}, errUnpublished
	}
	seq, err := locks.ParseSequencerString(rec.Sequencer)
	if err != nil || seq.Generation != info.Generation || seq.Instance != h.Instance() {
		return LeaderInfo{}, errUnpublished
	}
	return LeaderInfo{Identity: rec.Identity, Sequencer: seq}, nil
}

// Observe delivers the leader now and then every change of leader (a zero
// LeaderInfo when there is none) until ctx ends, when the channel is
// closed. It watches the election file, so a new leader (a lock grant and
// the identity written after it) and a leader gone with no successor (the
// lock-released event of its resignation or its session's end) are seen
// within a round trip of the change. It also reads every Interval, as a
// safety net while its watch is being re-established. A change shorter
// than a round trip may be missed, but the last state is always delivered.
func (e *Election) Observe(ctx context.Context) <-chan LeaderInfo {
	out := make(chan LeaderInfo)
	go func() {
		defer close(out)
		var last LeaderInfo
		first := true
		t := time.NewTicker(e.interval())
		defer t.Stop()
		var events <-chan WatchEvent
		stopWatch := func() {}
		defer func() { stopWatch() }()
		for {
			if events == nil {
				// Watch from now, then read: a change after the read shows
				// up as an event. A failed watch is tried again next round.
				stopWatch()
				events, stopWatch = e.watchFile(ctx)
			}
			li, err := e.Leader(ctx)
			if err == nil || errors.Is(err, ErrNoLeader) {
				if first || li != last {
					select {
					case out <- li:
					case <-ctx.Done():
						return
					}
					last, first = li, false
				}
			}
			select {
			case ev, ok := <-events:
				if !ok || ev.Err != nil {
					events = nil
				}
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// watchFile watches the election file; on an error it returns a nil
// channel (never ready).
func (e *Election) watchFile(ctx context.Context) (<-chan WatchEvent, func()) {
	wctx, cancel := context.WithCancel(ctx)
	ch, err := e.c.Watch(wctx, e.name, WatchOptions{})
	if err != nil {
		cancel()
		return nil, func() {}
	}
	return ch, cancel
}
