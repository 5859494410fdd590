package mastertest

// PartitionOneWay stops Raft messages from replica from to replica to,
// while to can still reach from (and gets its answers). In-memory
// transport only; Heal undoes it.
//
// raft.InmemTransport routes an RPC by the sender's table and answers it on
// the same path, so cutting from→to stops every request from sends to to,
// and nothing else: "from cannot send to to".
func (c *Cell) PartitionOneWay(from, to int) {
	c.t.Helper()
	if !c.opts.Inmem {
		c.t.Fatal("mastertest: PartitionOneWay needs Options.Inmem")
	}
	c.replicas[from].trans.Disconnect(c.replicas[to].raftAddr)
}

// Isolate cuts replica i off from every other replica, both ways. Clients
// can still reach it: only Raft traffic is cut. In-memory transport only;
// Heal undoes it.
func (c *Cell) Isolate(i int) {
	c.t.Helper()
	c.Partition([]int{i})
}
