package mastertest

import (
	"testing"
	"time"
)

// waitNewMaster waits for a master other than old and returns it.
func waitNewMaster(t *testing.T, c *Cell, old int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i := range c.N() {
			if i != old && c.Replica(i).Server().IsMaster() {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no master other than r%d within 10s", old+1)
	return -1
}

func TestIsolateAndOneWayPartitions(t *testing.T) {
	c := New(t, Options{N: 3, Inmem: true})
	m := c.WaitMaster(t)

	// Isolated, the master loses its majority: the others elect another.
	c.Isolate(m)
	waitNewMaster(t, c, m)
	c.Heal()

	// A master that cannot send loses its followers to an election too.
	m = c.WaitMaster(t)
	for j := range c.N() {
		if j != m {
			c.PartitionOneWay(m, j)
		}
	}
	waitNewMaster(t, c, m)
	c.Heal()

	// A master the others cannot send to still leads: its own requests
	// (and their answers) get through, so nobody starts an election.
	m = c.WaitMaster(t)
	for j := range c.N() {
		if j != m {
			c.PartitionOneWay(j, m)
		}
	}
	time.Sleep(time.Second)
	if i := c.MasterIndex(); i != m {
		t.Errorf("master moved from r%d to r%d although only the others' sends to it were cut", m+1, i+1)
	}
	c.Heal()
	c.EnsureSameFSM(t)
}
