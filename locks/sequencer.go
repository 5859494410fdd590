package locks

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/haspcell/hasp/fsapi"
)

// Sequencer names one holding of a lock: the node (Path and its Instance),
// the Mode and the lock Generation. A holder hands it to the servers it
// talks to; they check it with the master (Table.CheckSequencer) or against
// the newest one they have seen (Fence).
type Sequencer struct {
	Path       string
	Instance   uint64
	Mode       Mode
	Generation uint64
}

// SequencerVersion is the format version Encode writes and String names.
const SequencerVersion = 1

// Encoded form, version 1: the version byte, the mode byte, Instance and
// Generation as 8-byte big-endian integers, then the path (the rest).
const seqHeaderLen = 1 + 1 + 8 + 8

const seqPrefix = "hasp-seq:v1:"

// Encode returns the sequencer's opaque bytes. Treat them as opaque: only
// ParseSequencer reads them.
func (s Sequencer) Encode() []byte {
	b := make([]byte, seqHeaderLen, seqHeaderLen+len(s.Path))
	b[0] = SequencerVersion
	b[1] = byte(s.Mode)
	binary.BigEndian.PutUint64(b[2:], s.Instance)
	binary.BigEndian.PutUint64(b[10:], s.Generation)
	return append(b, s.Path...)
}

// ParseSequencer decodes bytes made by Encode. Anything else fails with an
// error wrapping fsapi.ErrBadRequest that says what is wrong; it never
// panics. A successful parse re-encodes to the same bytes.
func ParseSequencer(b []byte) (Sequencer, error) {
	if len(b) == 0 {
		return Sequencer{}, badSequencer("empty")
	}
	if b[0] != SequencerVersion {
		return Sequencer{}, badSequencer(fmt.Sprintf("unknown version %d (this build reads %d)", b[0], SequencerVersion))
	}
	if len(b) < seqHeaderLen+1 {
		return Sequencer{}, badSequencer(fmt.Sprintf("truncated: %d bytes", len(b)))
	}
	s := Sequencer{
		Mode:       Mode(b[1]),
		Instance:   binary.BigEndian.Uint64(b[2:]),
		Generation: binary.BigEndian.Uint64(b[10:]),
		Path:       string(b[seqHeaderLen:]),
	}
	return s, s.validate()
}

func (s Sequencer) validate() error {
	if !s.Mode.Valid() {
		return badSequencer(fmt.Sprintf("invalid mode %d", uint8(s.Mode)))
	}
	if s.Generation == 0 {
		return badSequencer("generation 0 (no lock is ever held at generation 0)")
	}
	if err := fsapi.CheckPath(s.Path); err != nil {
		return fmt.Errorf("%w: locks: bad sequencer: %w", fsapi.ErrBadRequest, err)
	}
	return nil
}

func badSequencer(why string) error {
	return fmt.Errorf("%w: locks: bad sequencer: %s", fsapi.ErrBadRequest, why)
}

// String is the printable form "hasp-seq:v1:PATH:INSTANCE:MODE:GENERATION",
// e.g. "hasp-seq:v1:/service/leader:42:exclusive:7". Paths cannot contain
// ':' (fsapi.CheckPath), so the form is unambiguous.
func (s Sequencer) String() string {
	return seqPrefix + s.Path + ":" + strconv.FormatUint(s.Instance, 10) + ":" + s.Mode.String() +
		":" + strconv.FormatUint(s.Generation, 10)
}

// ParseSequencerString parses the form String prints. Errors wrap
// fsapi.ErrBadRequest. A successful parse prints back the same string.
func ParseSequencerString(str string) (Sequencer, error) {
	rest, ok := strings.CutPrefix(str, seqPrefix)
	if !ok && strings.HasPrefix(str, "hasp-seq:v") {
		return Sequencer{}, badSequencer(fmt.Sprintf("%.40q: unknown version (this build reads v%d)", str, SequencerVersion))
	}
	if !ok {
		return Sequencer{}, badSequencer(fmt.Sprintf("%.40q does not start with %q", str, seqPrefix))
	}
	f := strings.Split(rest, ":")
	if len(f) != 4 {
		return Sequencer{}, badSequencer(fmt.Sprintf("%.80q: want PATH:INSTANCE:MODE:GENERATION after %q", str, seqPrefix))
	}
	inst, err1 := parseUint(f[1])
	gen, err2 := parseUint(f[3])
	if err1 != nil || err2 != nil {
		return Sequencer{}, badSequencer(fmt.Sprintf("%.80q: instance and generation must be decimal numbers without leading zeros", str))
	}
	mode, err := ParseMode(f[2])
	if err != nil || f[2] != mode.String() {
		return Sequencer{}, badSequencer(fmt.Sprintf("%.80q: mode must be exclusive or shared", str))
	}
	s := Sequencer{Path: f[0], Instance: inst, Mode: mode, Generation: gen}
	return s, s.validate()
}

// parseUint accepts only the canonical decimal form (no sign, no leading
// zeros), so that parse and print round-trip exactly.
func parseUint(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err == nil && strconv.FormatUint(v, 10) != s {
		err = fmt.Errorf("non-canonical number %q", s)
	}
	return v, err
}

// Sequencer returns the sequencer for h's hold on path, on the node
// instance the caller names. It fails with ErrNotHeld if h does not hold
// the lock.
func (t *Table) Sequencer(path string, h Holder, instance uint64) (Sequencer, error) {
	l := t.locks[path]
	if l == nil || l.holds(h) < 0 {
		return Sequencer{}, t.notHeld(path, h)
	}
	return Sequencer{Path: path, Instance: instance, Mode: l.Mode, Generation: l.Generation}, nil
}

// CheckSequencer says whether seq is current: the node on seq.Path is still
// the instance the sequencer names (the caller passes the current instance,
// 0 if the node does not exist), and its lock is still held, in seq.Mode, at
// seq.Generation. Otherwise it returns an error wrapping ErrStaleSequencer
// that says what changed.
func (t *Table) CheckSequencer(seq Sequencer, instance uint64) error {
	stale := func(why string) error { return fmt.Errorf("%w: %v: %s", ErrStaleSequencer, seq, why) }
	if instance != seq.Instance {
		if instance == 0 {
			return stale("the node no longer exists")
		}
		return stale(fmt.Sprintf("the node was deleted and recreated (instance is now %d)", instance))
	}
	l := t.locks[seq.Path]
	switch {
	case l == nil || !l.Held():
		return stale("the lock is not held")
	case l.Generation != seq.Generation:
		return stale(fmt.Sprintf("the lock is now at generation %d", l.Generation))
	case l.Mode != seq.Mode:
		return stale(fmt.Sprintf("the lock is held %v", l.Mode))
	}
	return nil
}
