package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/haspcell/hasp/fsapi"
)

// ProtocolVersion is sent at session creation; a replica refuses a client
// whose version is not its own.
const ProtocolVersion = 1

// ConnClient is the first byte of a client connection. The replica's
// listener also accepts ConnRaft for replica-to-replica traffic.
const (
	ConnClient byte = 'C'
	ConnRaft   byte = 'R'
)

// MaxFrame is the largest frame a replica or client accepts by default:
// room for the largest content limit a cell may set plus headers.
const MaxFrame = 4 << 20

const headerLen = 5

// initialBody is the most ReadFrame allocates before body bytes arrive.
const initialBody = 64 << 10

var handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.MaxInitLen = 4096 // a hostile length prefix cannot force a huge allocation
	return h
}()

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Encoders and decoders are costly to make (most of a small message's
// encoding time): they are pooled and reset for each use.
var (
	encPool = sync.Pool{New: func() any { return codec.NewEncoder(nil, handle) }}
	decPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, handle) }}
)

// Encode returns v's msgpack encoding.
func Encode(v any) ([]byte, error) {
	var out []byte
	enc := encPool.Get().(*codec.Encoder)
	enc.ResetBytes(&out)
	err := enc.Encode(v)
	enc.Reset(nil)
	encPool.Put(enc)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return out, nil
}

// Decode decodes msgpack body into v. A truncated or malformed body is an
// error wrapping fsapi.ErrBadRequest, never a panic.
func Decode(body []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: wire: decode %T: %v", fsapi.ErrBadRequest, v, r)
		}
	}()
	dec := decPool.Get().(*codec.Decoder)
	dec.ResetBytes(body)
	err = dec.Decode(v)
	dec.ResetBytes(nil) // do not keep the body alive
	decPool.Put(dec)    // not reached after a panic: that decoder is dropped
	if err != nil {
		return fmt.Errorf("%w: wire: decode %T: %v", fsapi.ErrBadRequest, v, err)
	}
	return nil
}

// WriteFrame writes one frame: type, length, msgpack of v, in one Write.
func WriteFrame(w io.Writer, typ MsgType, v any) error {
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	buf.Write([]byte{byte(typ), 0, 0, 0, 0})
	// NewEncoderBytes would write from the start of its slice; an
	// io.Writer encoder appends after the header.
	enc := encPool.Get().(*codec.Encoder)
	enc.Reset(buf)
	err := enc.Encode(v)
	enc.Reset(nil)
	encPool.Put(enc)
	if err != nil {
		return fmt.Errorf("wire: encode %T: %w", v, err)
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[1:headerLen], uint32(len(b)-headerLen))
	_, err = w.Write(b)
	return err
}

// ReadFrame reads one frame and returns its type and body. A body longer
// than limit is refused with an error wrapping fsapi.ErrTooLarge before any
// of it is read.
func ReadFrame(r io.Reader, limit int) (MsgType, []byte, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if int64(n) > int64(limit) {
		return 0, nil, fmt.Errorf("%w: wire: frame of %d bytes exceeds limit %d", fsapi.ErrTooLarge, n, limit)
	}
	if n <= initialBody {
		// Most frames: one allocation of exactly the body. (Reading
		// through a bytes.Buffer grew it by 512 bytes at least, twice:
		// 1.5 KB of garbage for a 100-byte KeepAlive.)
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return 0, nil, truncated(err)
		}
		return MsgType(hdr[0]), body, nil
	}
	// Grow a large body as bytes arrive rather than trusting the announced
	// length: a peer that announces 4 MiB and sends 10 bytes costs 64 KiB.
	buf := bytes.NewBuffer(make([]byte, 0, initialBody))
	if _, err := io.CopyN(buf, r, int64(n)); err != nil {
		return 0, nil, truncated(err)
	}
	return MsgType(hdr[0]), buf.Bytes(), nil
}

func truncated(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("wire: truncated frame: %w", err)
}

// NewReader wraps a stream in a small buffered reader for ReadFrame.
func NewReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 4096) }
