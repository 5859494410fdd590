package fsm

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// CmdType is the first byte of every Raft log entry this FSM applies. The
// log format is separate from the client wire format (fsapi/wire), so a
// change to the protocol never changes what is replicated. Never renumber.
type CmdType uint8

// IgnoreUnknown marks a command that an older replica may skip if it does
// not know the type (Consul's pattern). Without the bit, an unknown type
// panics: applying part of the log would diverge replicas.
const IgnoreUnknown CmdType = 0x80

const (
	CmdCreateSession CmdType = 1
	CmdCloseSession  CmdType = 2
	CmdOpen          CmdType = 3
	CmdSetContents   CmdType = 4
	CmdDelete        CmdType = 5
	// CmdNoop changes nothing; the leader commits it as a barrier.
	CmdNoop CmdType = 6
	// Lock commands (DESIGN.md §7). Meta.Time is "now" for the lock table.
	CmdAcquire    CmdType = 7
	CmdRelease    CmdType = 8
	CmdCancelWait CmdType = 9
	// CmdLockTick is proposed by the leader when the lock table's
	// NextDeadline passes; it grants waiters whose lock-delay has ended.
	CmdLockTick CmdType = 10
	// CmdMulti applies several namespace writes all or none (multi.go).
	CmdMulti CmdType = 11
)

// WriteMeta is stamped on every client write. Time is the leader's wall
// clock (Unix nanoseconds) when it proposed the command: the FSM never reads
// a clock. Session/Seq/AckBelow drive exactly-once application (see
// wire.WriteHeader); Seq 0 disables deduplication.
//
// Term is the master term in which the leader invalidated the clients'
// cached copies of what the write changes (0: no check). The entry takes
// effect only if it was appended in that term: a replica that steps down
// and leads again may append a write prepared in its earlier term, whose
// invalidations the later term's cache bookkeeping never saw. Such an
// entry fails with ErrKindStaleTerm and leaves the dedup table alone, so
// the client's retry applies it.
type WriteMeta struct {
	Session  uint64
	Seq      uint64
	AckBelow uint64
	Time     int64
	Term     uint64 `codec:",omitempty"`
}

// CreateSession creates a session whose id is the entry's Raft index.
type CreateSession struct {
	Time        int64
	LeaseMillis int64
	ClientName  string
	Caching     bool `codec:",omitempty"`
}

// CloseSession ends a session: by the client (Expired false, deduplicated
// by Meta like any write) or by the master's expiry timer (Expired true).
// Either way the session's ephemeral nodes are deleted.
type CloseSession struct {
	Meta    WriteMeta
	Expired bool
}

// Open creates a node (Create is CreateMay or CreateMust). With
// Sequential, Path is a prefix: the node created is Path followed by the
// parent's next sequence number (fsapi.SequentialName), which the FSM
// takes when it applies the command, and Result.Path names it.
type Open struct {
	Meta       WriteMeta
	Path       string
	Create     uint8 // fsapi.CreateMode
	Ephemeral  bool
	Directory  bool
	Contents   []byte
	Sequential bool `codec:",omitempty"`
}

// SetContents replaces a file's contents, optionally as a compare-and-swap.
type SetContents struct {
	Meta         WriteMeta
	Path         string
	Instance     uint64 // 0: any instance
	Data         []byte
	IfGeneration uint64 // 0: unconditional
	// Sequencer, if set (a locks.Sequencer's encoding), must be current
	// when the command applies, or it fails with ErrKindStaleSequencer.
	Sequencer []byte `codec:",omitempty"`
}

// Delete deletes a node; a directory only when it has no children.
type Delete struct {
	Meta      WriteMeta
	Path      string
	Instance  uint64 // 0: any instance
	Sequencer []byte `codec:",omitempty"` // as for SetContents
	// IfGeneration, if not 0, must be the node's content generation.
	IfGeneration uint64 `codec:",omitempty"`
}

// Noop is a barrier entry.
type Noop struct {
	Time int64
}

// Acquire asks for the lock on the node Path through the handle Handle of
// Meta.Session. The node must exist and be Instance (0: any instance).
// Mode is a locks.Mode. LockDelayMillis is the handle's lock-delay (0 to
// locks.MaxLockDelay; 0 is none: the client resolves "not chosen" to the
// default before sending). Wait queues the request if it cannot be granted at once
// (Result.Waiter); without it the command fails with ErrKindHeld or
// ErrKindLockDelay.
type Acquire struct {
	Meta            WriteMeta
	Path            string
	Instance        uint64
	Handle          uint64
	Mode            uint8
	LockDelayMillis int64
	Wait            bool
}

// Release releases the lock on Path held by handle Handle of Meta.Session.
type Release struct {
	Meta     WriteMeta
	Path     string
	Instance uint64 // 0: any instance
	Handle   uint64
}

// CancelWait withdraws Meta.Session's queued request Waiter (a
// Result.Waiter of an Acquire) on Path; if it was granted meanwhile, the
// lock is released.
type CancelWait struct {
	Meta   WriteMeta
	Path   string
	Waiter uint64
}

// LockTick lets the lock table grant the waiters whose lock-delay has ended
// by Time (the leader's clock, Unix ns). It has no session.
type LockTick struct {
	Time int64
}

var handle = &codec.MsgpackHandle{WriteExt: true}

func init() { handle.MaxInitLen = 4096 }

// Encoders and decoders cost more to make than a small command costs to
// encode: they are pooled and reset for each use.
var (
	encPool = sync.Pool{New: func() any { return codec.NewEncoder(nil, handle) }}
	decPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, handle) }}
)

// Encode returns the log entry for a command: type byte, then msgpack.
func Encode(t CmdType, cmd any) ([]byte, error) {
	// An io.Writer encoder appends after what the buffer holds.
	buf := bytes.NewBuffer(make([]byte, 1, 128))
	buf.Bytes()[0] = byte(t)
	enc := encPool.Get().(*codec.Encoder)
	enc.Reset(buf)
	err := enc.Encode(cmd)
	enc.Reset(nil)
	encPool.Put(enc)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode %T: %w", cmd, err)
	}
	return buf.Bytes(), nil
}

// Decode parses a log entry into its type and command. It returns an error,
// never panics, on malformed input.
func Decode(data []byte) (CmdType, any, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("fsm: empty command")
	}
	t := CmdType(data[0])
	var cmd any
	switch t &^ IgnoreUnknown {
	case CmdCreateSession:
		cmd = &CreateSession{}
	case CmdCloseSession:
		cmd = &CloseSession{}
	case CmdOpen:
		cmd = &Open{}
	case CmdSetContents:
		cmd = &SetContents{}
	case CmdDelete:
		cmd = &Delete{}
	case CmdNoop:
		cmd = &Noop{}
	case CmdAcquire:
		cmd = &Acquire{}
	case CmdRelease:
		cmd = &Release{}
	case CmdCancelWait:
		cmd = &CancelWait{}
	case CmdLockTick:
		cmd = &LockTick{}
	case CmdMulti:
		cmd = &Multi{}
	default:
		return t, nil, fmt.Errorf("fsm: unknown command type %d", t)
	}
	if err := decodeBody(data[1:], cmd); err != nil {
		return t, nil, err
	}
	return t, cmd, nil
}

func decodeBody(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fsm: decode %T: %v", v, r)
		}
	}()
	dec := decPool.Get().(*codec.Decoder)
	dec.ResetBytes(b)
	err = dec.Decode(v)
	dec.ResetBytes(nil) // do not keep the entry alive
	decPool.Put(dec)    // not reached after a panic: that decoder is dropped
	if err != nil {
		return fmt.Errorf("fsm: decode %T: %w", v, err)
	}
	return nil
}
