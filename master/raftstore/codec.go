package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Key layout. Every key starts with a one-byte namespace prefix so logs and
// stable-store entries can never collide and log iteration never strays
// into stable keys.
const (
	prefixLog    byte = 0x01 // prefixLog + big-endian uint64 index
	prefixStable byte = 0x02 // prefixStable + raw key bytes

	logKeyLen = 9

	// codecVersion is the first byte of every encoded raft.Log.
	codecVersion byte = 1
)

// logKey returns the badger key of the log at index. Big-endian encoding
// makes badger's byte order equal to index order.
func logKey(index uint64) []byte {
	k := make([]byte, logKeyLen)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

// parseLogKey is the inverse of logKey.
func parseLogKey(k []byte) (uint64, error) {
	if len(k) != logKeyLen || k[0] != prefixLog {
		return 0, fmt.Errorf("%w: bad log key %x", ErrCorrupt, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// stableKey returns the badger key of a StableStore key.
func stableKey(key []byte) []byte {
	k := make([]byte, 0, 1+len(key))
	k = append(k, prefixStable)
	return append(k, key...)
}

// encodeLog serialises l as:
//
//	version byte
//	uvarint Index, uvarint Term, byte Type
//	blob Data, blob Extensions, blob AppendedAt.MarshalBinary()
//
// where blob is uvarint(len+1) followed by the bytes, and uvarint 0 stands
// for a nil slice (or the zero time), so nil and empty round-trip exactly.
func encodeLog(l *raft.Log) ([]byte, error) {
	var ts []byte
	if !l.AppendedAt.IsZero() {
		var err error
		if ts, err = l.AppendedAt.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("raftstore: encode AppendedAt of log %d: %w", l.Index, err)
		}
	}
	// version + Index + Term + Type + three blob headers + payloads.
	n := 1 + 5*binary.MaxVarintLen64 + 1 + len(l.Data) + len(l.Extensions) + len(ts)
	buf := make([]byte, 0, n)
	buf = append(buf, codecVersion)
	buf = binary.AppendUvarint(buf, l.Index)
	buf = binary.AppendUvarint(buf, l.Term)
	buf = append(buf, byte(l.Type))
	buf = appendBlob(buf, l.Data)
	buf = appendBlob(buf, l.Extensions)
	return appendBlob(buf, ts), nil
}

func appendBlob(buf, b []byte) []byte {
	if b == nil {
		return append(buf, 0)
	}
	buf = binary.AppendUvarint(buf, uint64(len(b))+1)
	return append(buf, b...)
}

// decodeLog parses buf (produced by encodeLog) into out. Data and
// Extensions alias buf, so buf must be owned by the caller and not reused.
// Malformed input yields an error wrapping ErrCorrupt, never a panic.
func decodeLog(buf []byte, out *raft.Log) error {
	d := decoder{buf: buf}
	if v := d.byte(); v != codecVersion && d.err == nil {
		return fmt.Errorf("%w: unknown log encoding version %d", ErrCorrupt, v)
	}
	l := raft.Log{Index: d.uvarint(), Term: d.uvarint(), Type: raft.LogType(d.byte())}
	l.Data = d.blob()
	l.Extensions = d.blob()
	ts := d.blob()
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.buf))
	}
	if d.err == nil && ts != nil {
		d.err = l.AppendedAt.UnmarshalBinary(ts)
	}
	if d.err != nil {
		return fmt.Errorf("%w: log entry: %v", ErrCorrupt, d.err)
	}
	*out = l
	return nil
}

// decoder consumes buf front to back; the first failure sticks in err and
// turns every later read into a no-op returning zero values.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.err = errors.New("truncated")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) blob() []byte {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	if n > uint64(len(d.buf)) {
		d.err = fmt.Errorf("blob of %d bytes exceeds remaining %d", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}
