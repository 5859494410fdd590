package cellclient

import "time"

// SetAddrsForTest replaces the replica list and drops the connection, as if
// the network changed under the client. Pointing it at an address where
// nothing listens cuts the client off from the cell.
func (c *Client) SetAddrsForTest(addrs []string) {
	c.mu.Lock()
	c.cfg.Addrs = addrs
	c.hint = ""
	cur := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cur != nil {
		cur.close()
	}
}

// CutOffForTest cuts the client off from every replica.
func (c *Client) CutOffForTest() { c.SetAddrsForTest([]string{"127.0.0.1:1"}) }

// LeaseEndForTest is the end of the session's conservative local lease:
// until then the master has not expired the session (so it still holds its
// locks), whatever the client's state says.
func (c *Client) LeaseEndForTest() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaseEnd
}

// ConnLocalAddrForTest is the local address of the client's current
// connection ("" when it has none).
func (c *Client) ConnLocalAddrForTest() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.nc.LocalAddr().String()
}

// PinReadReplicaForTest makes addr the client's read replica for every
// follower read (it is still dropped, and re-dialled, after each failure).
func (c *Client) PinReadReplicaForTest(addr string) {
	c.mu.Lock()
	c.readPin = addr
	rcur := c.rcur
	c.rcur = nil
	c.mu.Unlock()
	if rcur != nil {
		rcur.close()
	}
}
