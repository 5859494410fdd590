package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// fuzzLimit is the frame limit FuzzReadFrame reads with: small, so that the
// fuzzer reaches the limit check easily.
const fuzzLimit = 1024

// decodeTargets are the types a replica or a client decodes a body into.
func decodeTargets() []message {
	out := requests()
	out = append(out, responses()...)
	return out
}

// FuzzReadFrame feeds arbitrary bytes to ReadFrame and decodes whatever
// frame comes out into every message type. Nothing may panic; the frame
// limit must hold; a decode error must wrap fsapi.ErrBadRequest.
func FuzzReadFrame(f *testing.F) {
	for _, s := range seedFrames(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, body, err := wire.ReadFrame(bytes.NewReader(data), fuzzLimit)
		if len(data) >= 5 {
			n := uint64(data[1])<<24 | uint64(data[2])<<16 | uint64(data[3])<<8 | uint64(data[4])
			if n > fuzzLimit && !errors.Is(err, fsapi.ErrTooLarge) {
				t.Fatalf("frame of %d bytes over limit %d: err = %v, want ErrTooLarge", n, fuzzLimit, err)
			}
			if n <= fuzzLimit && uint64(len(data)-5) >= n && err != nil {
				t.Fatalf("complete frame of %d bytes refused: %v", n, err)
			}
		}
		if err != nil {
			if body != nil {
				t.Fatalf("body returned with error %v", err)
			}
			return
		}
		if len(body) > fuzzLimit {
			t.Fatalf("body of %d bytes over limit %d", len(body), fuzzLimit)
		}
		if typ != wire.MsgType(data[0]) || !bytes.Equal(body, data[5:5+len(body)]) {
			t.Fatalf("frame type or body differ from the input")
		}
		for _, m := range decodeTargets() {
			v := m.zero()
			if err := wire.Decode(body, v); err != nil {
				if !errors.Is(err, fsapi.ErrBadRequest) {
					t.Fatalf("decode into %s: %v does not wrap ErrBadRequest", m.name, err)
				}
				continue
			}
			// A decoded request can be sent again as a frame.
			var buf bytes.Buffer
			if err := wire.WriteFrame(&buf, typ, v); err != nil {
				t.Fatalf("re-frame %s: %v", m.name, err)
			}
			typ2, body2, err := wire.ReadFrame(&buf, wire.MaxFrame)
			if err != nil || typ2 != typ {
				t.Fatalf("re-read %s: %v %v", m.name, typ2, err)
			}
			v2 := m.zero()
			if err := wire.Decode(body2, v2); err != nil {
				t.Fatalf("re-decode %s: %v", m.name, err)
			}
			if !equalMsg(v, v2) {
				t.Fatalf("%s changed across re-encoding:\n first %#v\nsecond %#v", m.name, v, v2)
			}
		}
	})
}

// FuzzDecodeRequests decodes arbitrary bodies into every request type (and
// response type: clients decode those). Nothing may panic; whatever decodes
// must re-encode, decode to an equal value, and re-encode to the same bytes.
func FuzzDecodeRequests(f *testing.F) {
	for _, s := range seedBodies(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, m := range decodeTargets() {
			v := m.zero()
			if err := wire.Decode(body, v); err != nil {
				if !errors.Is(err, fsapi.ErrBadRequest) {
					t.Fatalf("decode into %s: %v does not wrap ErrBadRequest", m.name, err)
				}
				continue
			}
			enc, err := wire.Encode(v)
			if err != nil {
				t.Fatalf("re-encode %s %#v: %v", m.name, v, err)
			}
			v2 := m.zero()
			if err := wire.Decode(enc, v2); err != nil {
				t.Fatalf("decode of re-encoded %s: %v", m.name, err)
			}
			if !equalMsg(v, v2) {
				t.Fatalf("%s changed across re-encoding:\n first %#v\nsecond %#v", m.name, v, v2)
			}
			enc2, err := wire.Encode(v2)
			if err != nil || !bytes.Equal(enc, enc2) {
				t.Fatalf("%s: encoding not stable: %x vs %x (%v)", m.name, enc, enc2, err)
			}
		}
	})
}

// equalMsg is reflect.DeepEqual except that a nil and an empty slice are
// equal: msgpack carries no difference a hasp peer may rely on.
func equalMsg(a, b any) bool {
	return reflect.DeepEqual(normalize(reflect.ValueOf(a)).Interface(), normalize(reflect.ValueOf(b)).Interface())
}

func normalize(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		cp := reflect.New(v.Elem().Type())
		cp.Elem().Set(normalize(v.Elem()))
		return cp
	case reflect.Struct:
		cp := reflect.New(v.Type()).Elem()
		for i := range v.NumField() {
			if cp.Field(i).CanSet() {
				cp.Field(i).Set(normalize(v.Field(i)))
			}
		}
		return cp
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		cp := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			cp.Index(i).Set(normalize(v.Index(i)))
		}
		return cp
	}
	return v
}

type seed struct {
	name string
	data []byte
}

// seedFrames: a valid frame of every type, truncated frames, oversize
// headers and some garbage.
func seedFrames(tb testing.TB) []seed {
	var out []seed
	for _, m := range allMessages() {
		v := m.v
		if sc, ok := v.(*wire.SetContentsRequest); ok {
			cp := *sc
			cp.Data = []byte("small") // keep frames under fuzzLimit
			v = &cp
		}
		var buf bytes.Buffer
		if err := wire.WriteFrame(&buf, m.typ, v); err != nil {
			tb.Fatal(err)
		}
		raw := buf.Bytes()
		out = append(out, seed{"valid-" + m.name, raw})
		if m.name == "req/Open" || m.name == "req/CreateSession" || m.name == "resp/ReadDir" {
			out = append(out, seed{"trunc-body-" + m.name, raw[:len(raw)/2]})
			out = append(out, seed{"trunc-header-" + m.name, raw[:3]})
			// Whole frame, but the length prefix cuts the msgpack short.
			short := append([]byte(nil), raw[:5+(len(raw)-5)/2]...)
			short[1], short[2], short[3], short[4] = 0, 0, byte((len(short)-5)>>8), byte(len(short)-5)
			out = append(out, seed{"short-msgpack-" + m.name, short})
		}
	}
	out = append(out,
		seed{"empty", nil},
		seed{"2GiB", []byte{byte(wire.MsgOpen), 0x80, 0, 0, 0, 0x80}},
		seed{"over-limit", []byte{byte(wire.MsgOpen), 0, 0, 0x04, 0x01}},
		seed{"unknown-type", []byte{77, 0, 0, 0, 1, 0x80}},
		seed{"http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		seed{"yamux-hdr", []byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}},
	)
	return out
}

// seedBodies: every message's msgpack body, truncated ones, and some
// hostile shapes.
func seedBodies(tb testing.TB) []seed {
	var out []seed
	for _, m := range allMessages() {
		v := m.v
		if sc, ok := v.(*wire.SetContentsRequest); ok {
			cp := *sc
			cp.Data = []byte("small")
			v = &cp
		}
		b, err := wire.Encode(v)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, seed{"valid-" + m.name, b})
		if len(out)%3 == 0 {
			out = append(out, seed{"trunc-" + m.name, b[:len(b)*2/3]})
		}
	}
	out = append(out,
		seed{"nil", []byte{0xc0}},
		seed{"empty-map", []byte{0x80}},
		seed{"array-struct", []byte{0x93, 0x01, 0xa1, 'x', 0xa1, 'y'}},
		seed{"huge-str", []byte{0x81, 0xa4, 'P', 'a', 't', 'h', 0xdb, 0xff, 0xff, 0xff, 0xff}},
		seed{"huge-array", []byte{0x81, 0xa7, 'E', 'n', 't', 'r', 'i', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}},
		seed{"data-as-array", []byte{0x81, 0xa4, 'D', 'a', 't', 'a', 0x92, 0x01, 0x02}},
		seed{"data-empty-array", []byte{0x81, 0xa4, 'D', 'a', 't', 'a', 0x90}},
		seed{"negative-seq", []byte{0x81, 0xa3, 'S', 'e', 'q', 0xff}},
		seed{"create-300", []byte{0x81, 0xa6, 'C', 'r', 'e', 'a', 't', 'e', 0xcd, 0x01, 0x2c}},
		seed{"ext", []byte{0x81, 0xa4, 'P', 'a', 't', 'h', 0xd4, 0x01, 0x02}},
	)
	return out
}

// TestWriteSeedCorpus (re)writes testdata/fuzz/<Fuzz>/seed-* from the seeds
// above when HASP_WRITE_FUZZ_SEEDS is set. The files are committed so that a
// plain `go test` replays them too.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("HASP_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HASP_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz seeds")
	}
	for fuzz, seeds := range map[string][]seed{"FuzzReadFrame": seedFrames(t), "FuzzDecodeRequests": seedBodies(t)} {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+safeName(s.name)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}
