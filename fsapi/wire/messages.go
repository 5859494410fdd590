package wire

import (
	"strconv"

	"github.com/haspcell/hasp/fsapi"
)

// MsgType is the first byte of a frame: which RPC the frame belongs to.
// Requests and responses of one RPC share the type. Never renumber.
type MsgType uint8

const (
	MsgCreateSession MsgType = 1
	MsgKeepAlive     MsgType = 2
	MsgCloseSession  MsgType = 3
	MsgOpen          MsgType = 4
	MsgGetContents   MsgType = 5
	MsgGetStat       MsgType = 6
	MsgReadDir       MsgType = 7
	MsgSetContents   MsgType = 8
	MsgDelete        MsgType = 9
	MsgStatus        MsgType = 10
	// Locks (DESIGN.md §7).
	MsgAcquire        MsgType = 11
	MsgLockWait       MsgType = 12
	MsgRelease        MsgType = 13
	MsgCancelWait     MsgType = 14
	MsgCheckSequencer MsgType = 15
	MsgGetLock        MsgType = 16
	// Watches (DESIGN.md §8; watch.go).
	MsgWatch MsgType = 17
	// Multi applies several writes atomically (multi.go).
	MsgMulti MsgType = 18
	// MsgError answers a frame the replica could not decode at all.
	MsgError MsgType = 255
)

var msgNames = map[MsgType]string{
	MsgCreateSession: "CreateSession", MsgKeepAlive: "KeepAlive", MsgCloseSession: "CloseSession",
	MsgOpen: "Open", MsgGetContents: "GetContents", MsgGetStat: "GetStat", MsgReadDir: "ReadDir",
	MsgSetContents: "SetContents", MsgDelete: "Delete", MsgStatus: "Status", MsgError: "Error",
	MsgAcquire: "Acquire", MsgLockWait: "LockWait", MsgRelease: "Release", MsgCancelWait: "CancelWait",
	MsgCheckSequencer: "CheckSequencer", MsgGetLock: "GetLock",
	MsgWatch: "Watch", MsgMulti: "Multi",
}

func (t MsgType) String() string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// Header starts every request made within a session.
type Header struct {
	Session uint64 // session id from CreateSession
	Epoch   uint64 // master epoch the client last saw; 0 if none yet
}

// WriteHeader numbers a session's writes for exactly-once retries. Seq is
// unique per session and never reused; every write the client sent with a
// sequence number below AckBelow has had its answer received, so the
// replica may forget those answers.
type WriteHeader struct {
	Seq      uint64
	AckBelow uint64
}

// RespHeader starts every response.
type RespHeader struct {
	Err      *Error `codec:",omitempty"`
	Epoch    uint64 // the master's epoch
	Revision uint64 // the revision (Raft index) the answer reflects
	// Cacheable: the master registered the session as caching what this
	// read answered (including a name's absence) and will invalidate it
	// before it changes. Only then may the client cache the answer.
	Cacheable bool `codec:",omitempty"`
}

// ErrorResponse answers MsgError.
type ErrorResponse struct {
	RespHeader
}

// CreateSessionRequest opens a session. It is a Raft write.
type CreateSessionRequest struct {
	Version    int    // ProtocolVersion
	ClientName string // free text for operators (host, process)
	Cell       string // the cell the client expects, or "" / "local"
	// Caching: the client caches reads (and so takes part in invalidation).
	Caching bool `codec:",omitempty"`
}

// CreateSessionResponse tells the client what it needs for the session.
type CreateSessionResponse struct {
	RespHeader
	Session      uint64
	Cell         string
	ContentLimit int   // bytes; larger SetContents fail with ErrTooLarge
	LeaseMillis  int64 // session lease length
}

// KeepAliveRequest renews the session's lease. The master holds it until the
// lease is close to its end.
type KeepAliveRequest struct {
	Header
	// InvalAck is the highest invalidation Seq the client has applied to
	// its cache, of those sent by the master of epoch InvalAckEpoch (each
	// master numbers its own). FlushedEpoch is the epoch at which it last
	// emptied its cache.
	InvalAck      uint64 `codec:",omitempty"`
	InvalAckEpoch uint64 `codec:",omitempty"`
	FlushedEpoch  uint64 `codec:",omitempty"`
}

// Invalidation tells a caching client to forget what it caches about Path
// (Listing: only Path's directory listing) and never to cache a reply
// about it read at or below Revision. Seq numbers a session's
// invalidations; the client acknowledges them with KeepAliveRequest.InvalAck.
type Invalidation struct {
	Seq      uint64
	Path     string
	Revision uint64
	Listing  bool `codec:",omitempty"`
}

// KeepAliveResponse grants a lease of LeaseMillis from the moment the reply
// was sent; HeldMillis is how long the master held the request, so the
// client can bound the reply's send time from below by its own send time
// plus HeldMillis.
type KeepAliveResponse struct {
	RespHeader
	LeaseMillis int64
	HeldMillis  int64
	// Invalidations not yet acknowledged, in Seq order. The master answers
	// a held KeepAlive early when there are any.
	Invalidations []Invalidation `codec:",omitempty"`
}

// CloseSessionRequest ends the session at once (a Raft write).
type CloseSessionRequest struct {
	Header
	WriteHeader
}

// CloseSessionResponse answers CloseSession.
type CloseSessionResponse struct {
	RespHeader
}

// OpenRequest opens (and maybe creates) a node. When Create is CreateNo it is
// a read; otherwise a write (ReadOptions are then ignored).
type OpenRequest struct {
	Header
	WriteHeader
	ReadOptions
	Path      string
	Create    fsapi.CreateMode
	Ephemeral bool
	Directory bool
	Contents  []byte
	// Sequential creates Path + the parent's next sequence number
	// (fsapi.SequentialName) instead of Path; Create must not be
	// CreateNo. The response's Path is the name created.
	Sequential bool `codec:",omitempty"`
}

// OpenResponse gives the opened node's metadata.
type OpenResponse struct {
	RespHeader
	Stat    fsapi.Stat
	Created bool
	// Path is the node's path when a sequential create chose it.
	Path string `codec:",omitempty"`
}

// ReadOptions ask for a follower read (docs/consistency.md, "Follower
// reads"). Both fields are omitted when zero, so a default (linearizable)
// read encodes as it did before follower reads existed.
type ReadOptions struct {
	// Follower lets any replica answer from its own state, not only the
	// master. The answer is then never cacheable.
	Follower bool `codec:",omitempty"`
	// MinRevision is the client's token: the highest revision it has seen
	// in any answer. A replica answers only from a state that has applied
	// at least this revision: it waits briefly for it, else answers
	// CodeBehind. The master honours it too.
	MinRevision uint64 `codec:",omitempty"`
}

// NodeRef names one instance of a node. Instance 0 matches any instance.
// Sequencer, when set (the bytes of a lock sequencer the handle was given
// with SetSequencer), must still be current or the call fails with
// CodeStaleSequencer; a write checks it atomically with its application.
type NodeRef struct {
	Path      string
	Instance  uint64
	Sequencer []byte `codec:",omitempty"`
}

// GetContentsRequest reads a file's contents and metadata.
type GetContentsRequest struct {
	Header
	ReadOptions
	NodeRef
}

// GetContentsResponse carries a file's contents and metadata.
type GetContentsResponse struct {
	RespHeader
	Data []byte
	Stat fsapi.Stat
}

// GetStatRequest reads a node's metadata.
type GetStatRequest struct {
	Header
	ReadOptions
	NodeRef
}

// GetStatResponse carries a node's metadata.
type GetStatResponse struct {
	RespHeader
	Stat fsapi.Stat
}

// ReadDirRequest lists a directory.
type ReadDirRequest struct {
	Header
	ReadOptions
	NodeRef
}

// ReadDirResponse lists the children, sorted by name.
type ReadDirResponse struct {
	RespHeader
	Stat    fsapi.Stat // the directory's own metadata
	Entries []fsapi.DirEntry
}

// SetContentsRequest replaces a file's contents. IfGeneration other than
// fsapi.AnyGeneration makes it a compare-and-swap.
type SetContentsRequest struct {
	Header
	WriteHeader
	NodeRef
	Data         []byte
	IfGeneration uint64
}

// SetContentsResponse gives the file's new metadata.
type SetContentsResponse struct {
	RespHeader
	Stat fsapi.Stat
}

// DeleteRequest deletes a node (a directory only when empty).
type DeleteRequest struct {
	Header
	WriteHeader
	NodeRef
}

// DeleteResponse answers Delete.
type DeleteResponse struct {
	RespHeader
}

// AcquireRequest asks for the lock on a node for one handle of the session
// (Handle is any id the client picks, unique among its handles). It is a
// write. Mode is 1 (exclusive) or 2 (shared). LockDelayMillis is the
// handle's lock-delay (0 to 60000; 0 is none). Without Wait a lock that
// cannot be granted at once fails with CodeHeld or CodeLockDelay; with it
// the request queues and the master may hold the call up to HoldMillis
// for the grant (then continue with LockWait).
type AcquireRequest struct {
	Header
	WriteHeader
	NodeRef
	Handle          uint64
	Mode            uint8
	LockDelayMillis int64
	Wait            bool
	HoldMillis      int64
}

// AcquireResponse says whether the lock is held (Granted, at Generation)
// or still queued as Waiter. It answers Acquire and LockWait.
type AcquireResponse struct {
	RespHeader
	Granted    bool
	Generation uint64
	Mode       uint8
	Waiter     uint64
	Stat       fsapi.Stat
}

// LockWaitRequest waits for queued request Waiter (of Handle on the node)
// to be granted, up to HoldMillis. It is a read: no Raft write. The answer
// is Granted, still waiting, or CodeNoWaiter (withdrawn: cancelled, or
// dropped with its node) / CodeHandleInvalid.
type LockWaitRequest struct {
	Header
	NodeRef
	Handle     uint64
	Waiter     uint64
	HoldMillis int64
}

// ReleaseRequest releases the handle's hold on the node's lock (a write).
// It never starts a lock-delay.
type ReleaseRequest struct {
	Header
	WriteHeader
	NodeRef
	Handle uint64
}

// ReleaseResponse answers Release.
type ReleaseResponse struct {
	RespHeader
}

// CancelWaitRequest withdraws queued request Waiter on Path (a write); if
// it was granted meanwhile, the lock is released.
type CancelWaitRequest struct {
	Header
	WriteHeader
	Path   string
	Waiter uint64
}

// CancelWaitResponse answers CancelWait.
type CancelWaitResponse struct {
	RespHeader
}

// CheckSequencerRequest asks whether a sequencer is still current.
type CheckSequencerRequest struct {
	Header
	Sequencer []byte
}

// CheckSequencerResponse is empty on success; CodeStaleSequencer says the
// sequencer is stale and why.
type CheckSequencerResponse struct {
	RespHeader
}

// GetLockRequest reads a node's lock state.
type GetLockRequest struct {
	Header
	NodeRef
}

// GetLockResponse describes a node's lock. Waiters lists at most
// MaxLockWaitersListed queued requests, from the head; WaiterCount is the
// total.
type GetLockResponse struct {
	RespHeader
	Stat             fsapi.Stat
	Mode             uint8 // 0: free
	Generation       uint64
	DelayUntilMillis int64 // end of a lock-delay (Unix ms), 0 if none
	Holders          []LockOwner
	Waiters          []LockOwner
	WaiterCount      int
}

// MaxLockWaitersListed bounds GetLockResponse.Waiters.
const MaxLockWaitersListed = 100

// LockOwner is one holder or queued request of a lock.
type LockOwner struct {
	Session uint64
	Handle  uint64
	Mode    uint8
	Waiter  uint64 `codec:",omitempty"`
}

// StatusRequest asks one replica about itself. It needs no session and may be
// sent to any replica.
type StatusRequest struct{}

// StatusResponse describes one replica as it sees itself.
type StatusResponse struct {
	RespHeader
	ID      string
	Address string
	Cell    string
	// State is "master" (leader that has taken over), "replica"
	// (follower), "candidate" (electing, or leader still taking over) or
	// "shutdown".
	State        string
	Term         uint64
	LastIndex    uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LeaderID     string
	LeaderAddr   string
	Sessions     int
	Nodes        int
	// LeaseRemainingMillis is, on the master, how long its master lease
	// still holds (0: reads take the ReadIndex path).
	LeaseRemainingMillis int64
	// LockWakeups counts the waiting lock calls this replica woke because
	// their request was granted (or dropped): one per grant, never a herd.
	LockWakeups uint64
	// CacheEntries counts (session, node) pairs the master tracks as
	// cached; InvalidationsPending the invalidations not yet acknowledged.
	CacheEntries         int      `codec:",omitempty"`
	InvalidationsPending int      `codec:",omitempty"`
	Servers              []Server // the Raft configuration this replica knows
	// EventsHeld counts the change events in this replica's history,
	// EventFloor is the oldest revision it holds complete (a watch from
	// an older one is compacted), and Watches counts the Watch calls
	// waiting at it.
	EventsHeld int    `codec:",omitempty"`
	EventFloor uint64 `codec:",omitempty"`
	Watches    int    `codec:",omitempty"`
	// FollowerReads counts the follower reads this replica answered from
	// its own state while not master, and FollowerBehind those it sent to
	// the master (Behind: it had not applied the client's token in time,
	// or did not know the session), since it started.
	FollowerReads  uint64 `codec:",omitempty"`
	FollowerBehind uint64 `codec:",omitempty"`
}

// Server is one member of the Raft configuration.
type Server struct {
	ID      string
	Address string
	Voter   bool
}

// Header lets the server fill in any response's common header.
func (h *RespHeader) Header() *RespHeader { return h }

// SetHeader lets the client refresh a request's session header (its epoch)
// before each retry.
func (h *Header) SetHeader(x Header) { *h = x }

// SetReadOptions lets the client set a read's follower options (and its
// token) before each try.
func (o *ReadOptions) SetReadOptions(x ReadOptions) { *o = x }
