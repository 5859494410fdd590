// Package wire is hasp's client protocol: the frame format, one msgpack
// request/response pair per RPC, the protocol version, and the mapping
// between error codes on the wire and fsapi's errors.
//
// It has no business rules and imports only fsapi and the msgpack codec.
// docs/protocol.md describes the same format for readers of other
// languages.
//
// # Framing
//
// A client connection starts with the byte ConnClient, then carries a yamux
// session. Each call is one yamux stream holding one request frame and one
// response frame:
//
//	+------+----------------+------------------+
//	| type | length (4, BE) | msgpack body ... |
//	+------+----------------+------------------+
//
// ReadFrame refuses a frame longer than its limit before reading the body, so
// a peer cannot make a replica allocate more than the limit.
//
// # Usage
//
//	err := wire.WriteFrame(stream, wire.MsgGetStat, &wire.GetStatRequest{...})
//	typ, body, err := wire.ReadFrame(stream, wire.MaxFrame)
//	var resp wire.GetStatResponse
//	err = wire.Decode(body, &resp)
package wire
