package wire

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// countingConn counts the writes that reach the connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestCoalesceFramesOverYamux runs yamux on both ends of a pipe, the
// client's side coalesced, and checks that messages of every size arrive
// intact and that a small data frame took one write, not two.
func TestCoalesceFramesOverYamux(t *testing.T) {
	a, b := net.Pipe()
	counted := &countingConn{Conn: a}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = false
	client, err := yamux.Client(CoalesceFrames(counted), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := yamux.Server(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	got := make(chan []byte, 1)
	go func() {
		st, err := server.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer st.Close()
		var all bytes.Buffer
		io.Copy(&all, st)
		got <- all.Bytes()
	}()
	st, err := client.Open()
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for _, n := range []int{1, 100, 4096, coalesceMax, coalesceMax + 1, 200 << 10} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		want.Write(msg)
		before := counted.writes.Load()
		if _, err := st.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n == 100 {
			// A stream's Write returns once yamux's send loop has written
			// the whole frame (header and body, yamux v0.1.2
			// waitForSendErr), and nothing else writes on the client's
			// side here (no pings; window updates come from the server),
			// so the count is final now.
			if w := counted.writes.Load() - before; w != 1 {
				t.Errorf("a 100-byte message took %d writes, want 1", w)
			}
		}
	}
	st.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, want.Bytes()) {
			t.Fatalf("received %d bytes, not the %d sent", len(b), want.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream never ended")
	}
}
