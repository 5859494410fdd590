package cellclient_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

func dialCell(t *testing.T, cell *mastertest.Cell) *cellclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFileLifecycle(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	c := dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	dir, err := c.Open(ctx, "/ls/local/svc", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, "/ls/test/svc/conf", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	data, st, err := f.GetContentsAndStat(ctx)
	if err != nil || string(data) != "v1" || st.ContentGeneration != 1 {
		t.Fatalf("read = %q %+v %v", data, st, err)
	}
	st2, err := f.SetContents(ctx, []byte("v2"), st.ContentGeneration)
	if err != nil || st2.ContentGeneration != 2 {
		t.Fatalf("CAS = %+v %v", st2, err)
	}
	if _, err := f.SetContents(ctx, []byte("v3"), st.ContentGeneration); !errors.Is(err, fsapi.ErrGenerationMismatch) {
		t.Fatalf("stale CAS err = %v", err)
	}
	if _, err := c.Open(ctx, "/ls/test/svc/conf", &cellclient.OpenOptions{Create: fsapi.CreateMust}); !errors.Is(err, fsapi.ErrExist) {
		t.Fatalf("CreateMust twice: %v", err)
	}
	ents, err := dir.ReadDir(ctx)
	if err != nil || len(ents) != 1 || ents[0].Name != "conf" {
		t.Fatalf("ReadDir = %+v %v", ents, err)
	}
	if err := dir.Delete(ctx); !errors.Is(err, fsapi.ErrNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
	if err := f.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	// A handle belongs to one instance: recreating the name does not revive it.
	if _, err := c.Open(ctx, "/ls/test/svc/conf", &cellclient.OpenOptions{Create: fsapi.CreateMust, Contents: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.GetContentsAndStat(ctx); !errors.Is(err, fsapi.ErrHandleInvalid) {
		t.Fatalf("old handle after recreate: %v", err)
	}
	if _, err := c.Open(ctx, "/ls/test/svc/nope", nil); !errors.Is(err, fsapi.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	if _, err := c.Open(ctx, "/ls/test/bad name", nil); !errors.Is(err, fsapi.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := c.Open(ctx, "/ls/other/x", nil); !errors.Is(err, fsapi.ErrWrongCell) {
		t.Fatalf("wrong cell: %v", err)
	}
	big := bytes.Repeat([]byte("x"), c.ContentLimit()+1)
	if _, err := c.Open(ctx, "/ls/test/big", &cellclient.OpenOptions{Create: fsapi.CreateMay, Contents: big}); !errors.Is(err, fsapi.ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	f.Close()
	if _, err := f.GetStat(ctx); !errors.Is(err, fsapi.ErrHandleClosed) {
		t.Fatalf("closed handle: %v", err)
	}
	cell.EnsureSameFSM(t)
}

// TestLocalAddr: a client connects from the address it is given, and a
// malformed one is refused before any dial.
func TestLocalAddr(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), LocalAddr: "127.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Open(ctx, "/ls/local/from7", &cellclient.OpenOptions{Create: fsapi.CreateMay}); err != nil {
		t.Fatal(err)
	}
	if got := c.ConnLocalAddrForTest(); !strings.HasPrefix(got, "127.0.0.7:") {
		t.Fatalf("connected from %q, want 127.0.0.7", got)
	}
	_, err = cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), LocalAddr: "127.0.0.300"})
	if err == nil || !strings.Contains(err.Error(), `local address "127.0.0.300" is not an IP address`) {
		t.Fatalf("bad LocalAddr: %v", err)
	}
}
