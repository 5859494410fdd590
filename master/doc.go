// Package master is the hasp replica: one member of a cell's Raft group
// that, while it is the master, serves every client call.
//
// It owns the replica's Config, New and Run, the shared TCP listener (the
// first byte of a connection picks Raft or a client yamux session), RPC
// dispatch from fsapi/wire to master/fsm commands, the leader-only work (a
// barrier on taking over, session lease bookkeeping, expiring sessions
// through Raft) and the Raft wiring. It never imports cellclient or cache.
//
// # Serving a call
//
//  1. Read one request frame from a yamux stream (bounded size and time).
//  2. Check this replica is the master (else answer "not master; master is
//     X") and the caller's session is live.
//  3. Writes: stamp the command with the session's sequence number and the
//     leader's clock, raft.Apply it, and answer the FSM's result (a retried
//     write gets the first result: exactly-once).
//     Reads: take the commit index, confirm leadership with a heartbeat
//     round that started after that (coalesced across concurrent reads),
//     wait for the FSM to apply the index, and answer from memory.
//  4. Write one response frame.
//
// # Concurrency
//
// Each client stream is served by its own goroutine. Raft owns the FSM's
// apply goroutine. The leader loop (leaderLoop → lead) is the only writer
// of the master state and of session expiry. Close waits for every
// goroutine it started.
//
// # Usage
//
//	cfg := master.DefaultConfig()
//	cfg.ID, cfg.Dir, cfg.Listen, cfg.CellName = "r1", "/var/lib/hasp", "10.0.0.1:7001", "prod"
//	cfg.InitialCell = map[string]string{"r1": "10.0.0.1:7001", ...}
//	srv, err := master.New(cfg)
//	...
//	err = srv.Run(ctx) // until ctx ends
package master
