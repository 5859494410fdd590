package wire

import (
	"bytes"
	"testing"
)

// BenchmarkKeepAliveCodec is one invalidation's KeepAlive exchange as the
// wire carries it: the master frames a reply with one invalidation, the
// client reads it, frames the acknowledging request, and the master reads
// that.
func BenchmarkKeepAliveCodec(b *testing.B) {
	reply := KeepAliveResponse{LeaseMillis: 12000, HeldMillis: 3456,
		Invalidations: []Invalidation{{Path: "/ls/local/bench-inval/20261206-120000-abcd", Revision: 123456, Seq: 42}}}
	req := KeepAliveRequest{Header: Header{Session: 123456789, Epoch: 7}, InvalAck: 42, InvalAckEpoch: 7}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteFrame(&buf, MsgKeepAlive, &reply); err != nil {
			b.Fatal(err)
		}
		_, body, err := ReadFrame(&buf, MaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		var gotReply KeepAliveResponse
		if err := Decode(body, &gotReply); err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		if err := WriteFrame(&buf, MsgKeepAlive, &req); err != nil {
			b.Fatal(err)
		}
		_, body, err = ReadFrame(&buf, MaxFrame)
		if err != nil {
			b.Fatal(err)
		}
		var gotReq KeepAliveRequest
		if err := Decode(body, &gotReq); err != nil {
			b.Fatal(err)
		}
	}
}
