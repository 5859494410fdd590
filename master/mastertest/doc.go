// Package mastertest runs a cell of N hasp replicas inside one test process,
// for tests of the server, the client and the two together.
//
// Each replica is a real master.Server on its own badger store in a
// t.TempDir(), listening for clients on a free loopback address (a random 127.a.b.c, see FreeAddr). Raft runs either
// on the real TCP transport (what users run: Raft and clients share the
// port) or on raft.InmemTransport (fast, and partitions are exact).
//
// Faults: Crash(i) stops a replica without a goodbye (its store is closed
// but nothing is handed over); Restart(i) brings it back on the same
// directory and address; Partition(groups...) and Heal() cut Raft traffic
// (in-memory transport only; process-level tests use kill -9 and SIGSTOP
// on real haspd processes instead).
//
// DialRaw speaks the client protocol without cellclient, for tests that
// send hand-made frames or play a client that misbehaves (one that never
// acknowledges an invalidation, or vanishes mid-call).
//
// # Usage
//
//	cell := mastertest.New(t, mastertest.Options{N: 5})
//	m := cell.WaitMaster(t)
//	c, _ := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs()})
package mastertest
