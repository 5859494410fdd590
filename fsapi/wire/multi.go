package wire

import "github.com/haspcell/hasp/fsapi"

// Multi-op kinds (MultiOp.Kind). Never renumber.
const (
	// MultiCreate creates Path (it must not exist), a file with Data or a
	// directory, maybe ephemeral or sequential, as Open with CreateMust.
	MultiCreate uint8 = 1
	// MultiSet replaces a file's contents with Data; Generation other
	// than 0 makes it a compare-and-swap.
	MultiSet uint8 = 2
	// MultiDelete deletes a childless node; Generation other than 0 must
	// equal its content generation.
	MultiDelete uint8 = 3
	// MultiCheck changes nothing: the node must exist and, if Generation
	// is not 0, be at that content generation.
	MultiCheck uint8 = 4
)

// MultiOp is one operation of a Multi.
type MultiOp struct {
	Kind       uint8
	Path       string
	Data       []byte `codec:",omitempty"`
	Generation uint64 `codec:",omitempty"`
	Directory  bool   `codec:",omitempty"` // MultiCreate only
	Ephemeral  bool   `codec:",omitempty"` // MultiCreate only
	Sequential bool   `codec:",omitempty"` // MultiCreate only
}

// MultiRequest applies Ops (1 to fsapi.MaxMultiOps of them, their Data
// together within the content limit) in order, all or none, in one Raft
// entry. It is a write.
type MultiRequest struct {
	Header
	WriteHeader
	Ops []MultiOp
}

// MultiResult is what one applied operation did: the node's path (the name
// a sequential create chose, else the op's Path) and its metadata after
// the op (a deleted node's last).
type MultiResult struct {
	Path string
	Stat fsapi.Stat
}

// MultiResponse has one result per op, in order, when all were applied.
// If one failed, nothing was applied and Err names it (Error.Op).
type MultiResponse struct {
	RespHeader
	Results []MultiResult `codec:",omitempty"`
}
