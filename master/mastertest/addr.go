package mastertest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// FreeAddr returns a loopback address whose port was free a moment ago.
//
// The host is a random 127.a.b.c rather than 127.0.0.1: the port comes from
// the kernel's ephemeral range, and every outgoing loopback connection (from
// this test or any package running beside it) takes its source port from
// that range on 127.0.0.1. A replica restarted on a 127.0.0.1 port could
// find it taken by some client's socket (CI saw "bind: address already in
// use" that way); on another loopback host no outgoing socket can take it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	var last error
	for range 20 {
		host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			last = err
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatalf("mastertest: no free loopback address: %v", last)
	return ""
}
