package cellclient

// CutOffForTest points the client at an address where nothing listens, as
// if a network partition cut it off from every replica.
func (c *Client) CutOffForTest() {
	c.mu.Lock()
	c.cfg.Addrs = []string{"127.0.0.1:1"}
	c.hint = ""
	cur := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cur != nil {
		cur.close()
	}
}
