package cellclient_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

// A client's cached copy does not survive a master fail-over unseen: the
// new master knows nothing of what clients cache, so it applies no change
// before each caching session has flushed its cache (or its lease ended).
func TestCacheAcrossMasterCrash(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, b := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fa, err := a.Open(ctx, "/ls/local/f", &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: []byte("v0")})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.Open(ctx, "/ls/local/f", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		fa.GetContentsAndStat(ctx) // cached
		m := cell.WaitMaster(t)
		cell.Crash(m)
		want := fmt.Sprintf("v%d", i)
		done := make(chan error, 1)
		go func() {
			_, err := fb.SetContents(ctx, []byte(want), fsapi.AnyGeneration)
			done <- err
		}()
		// Read from a's cache until the write completes; after that every
		// read must see it.
		for written := false; ; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				written = true
			default:
			}
			data, _, err := fa.GetContentsAndStat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if written {
				if string(data) != want {
					t.Fatalf("round %d: read %q after the write of %q completed", i, data, want)
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
		cell.Restart(m)
	}
}
