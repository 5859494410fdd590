package fsapi

import "fmt"

// Stat is a node's metadata. All counters are 64-bit and only increase.
type Stat struct {
	// Instance is greater than that of any earlier node of the same name
	// (it is the revision that created the node).
	Instance uint64
	// ContentGeneration starts at 1 and is bumped on every write.
	ContentGeneration uint64
	// LockGeneration is bumped each time the node's lock goes free → held.
	LockGeneration uint64
	// ACLGeneration is bumped on every ACL change.
	ACLGeneration uint64
	// Checksum is a 64-bit checksum (CRC-64/ECMA) of the contents.
	Checksum uint64
	// CreatedRevision and ModifiedRevision are the Raft indexes that created
	// the node and last changed its contents.
	CreatedRevision  uint64
	ModifiedRevision uint64
	// EphemeralOwner is the owning session for an ephemeral node, else 0.
	EphemeralOwner uint64
	// Children is the number of children (directories only).
	Children uint64
	// Size is the length of the contents in bytes.
	Size uint64
	// IsDir says the node is a directory.
	IsDir bool
}

// DirEntry is one child returned by ReadDir.
type DirEntry struct {
	Name string
	Stat Stat
}

// CreateMode says whether Open may or must create the node.
type CreateMode uint8

const (
	// CreateNo opens an existing node only.
	CreateNo CreateMode = iota
	// CreateMay creates the node if it is absent.
	CreateMay
	// CreateMust fails with ErrExist if the node is present.
	CreateMust
)

func (m CreateMode) String() string {
	switch m {
	case CreateNo:
		return "no"
	case CreateMay:
		return "may"
	case CreateMust:
		return "must"
	}
	return fmt.Sprintf("CreateMode(%d)", uint8(m))
}

// AnyGeneration makes SetContents unconditional.
const AnyGeneration uint64 = 0

// DefaultContentLimit is the default cell-wide limit on a file's contents.
const DefaultContentLimit = 256 << 10
