// Package cellclient is the library applications link to use a hasp cell.
//
// A Client is one session with one cell. It finds the master by asking any
// replica (a replica that is not master names it), keeps the session alive
// with one blocking KeepAlive outstanding at all times, and retries every
// call, at the same or a new master, until the call's context ends. Writes
// carry a per-session sequence number so that a retry is applied at most
// once and answered with the first answer: a master fail-over costs the
// application a delay, not an error and not a duplicate.
//
// A Handle is an open node, like *os.File or *sql.Conn: it belongs to one
// instance of the node, and fails with fsapi.ErrHandleInvalid once that
// node is deleted, even if the name is created again.
//
// OpenOptions.Sequential creates a node named after its parent's next
// sequence number (queues, ordered membership); Client.Multi applies
// several creates, sets, deletes and checks all or none in one Raft entry.
//
// Reads are linearizable by default: the master answers them (or the
// consistent cache does). With Config.FollowerReads any replica may answer
// them from its own state once it has applied the client's token, the
// highest revision the client has seen: read-your-writes and monotonic
// reads for that client, not linearizability (follower.go).
//
// Client and Handle are safe for concurrent use. Every blocking call takes
// a context first. Client never imports master/....
//
// # Usage
//
//	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: []string{"127.0.0.1:7001", "127.0.0.1:7002"}})
//	if err != nil { ... }
//	defer c.Close()
//	h, err := c.Open(ctx, "/ls/local/svc/config", &cellclient.OpenOptions{Create: fsapi.CreateMay})
//	data, stat, err := h.GetContentsAndStat(ctx)
//	_, err = h.SetContents(ctx, []byte("v2"), stat.ContentGeneration) // compare-and-swap
package cellclient
