package cellclient_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
	"github.com/haspcell/hasp/master/mastertest"
)

// TestKeepAliveNotExpiredBeforeExpiryCommits reproduces bug 37 on purpose
// (docs/testing.md). A session's lease ends at the master, whose expiry of
// it must first invalidate another session's cached copy of its ephemeral
// node. That other session keeps its lease but never acknowledges, so the
// expiry waits, uncommitted. The first client comes back meanwhile: it
// must not be told "expired", because the expiry can still fail. Then the
// master crashes, the expiry is lost, and the next master keeps the
// session: the client, which kept trying, is safe again with its node.
//
// Before the fix the master answered "session expired" here, and the
// client gave up a session the cell went on keeping.
func TestKeepAliveNotExpiredBeforeExpiryCommits(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3, Inmem: true})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m := cell.WaitMaster(t)
	// The master's answer to a's KeepAlive while the expiry waits, as the
	// client logs it before trying again.
	notYet := make(chan struct{}, 1)
	logger := slog.New(&matchHandler{msg: "call answered: try again", attr: "err",
		contains: "expiry is being committed", ch: notYet})
	a, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 60 * time.Second, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := a.Open(ctx, "/ls/local/a-eph", &cellclient.OpenOptions{Create: fsapi.CreateMust, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	_, eph, err := fsapi.ParseName(h.Name()) // the path inside the cell, as the wire carries it
	if err != nil {
		t.Fatal(err)
	}

	// The holdout: a caching session that caches the node, then renews
	// its lease without ever acknowledging an invalidation.
	b := mastertest.DialRaw(t, cell.Replica(m).Addr)
	var cs wire.CreateSessionResponse
	if err := b.Call(wire.MsgCreateSession, &wire.CreateSessionRequest{Version: wire.ProtocolVersion,
		ClientName: "holdout", Caching: true}, &cs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	hdr := wire.Header{Session: cs.Session, Epoch: cs.Epoch}
	var gc wire.GetContentsResponse
	if err := b.Call(wire.MsgGetContents, &wire.GetContentsRequest{Header: hdr, NodeRef: wire.NodeRef{Path: eph}}, &gc, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if !gc.Cacheable {
		t.Fatal("the holdout's read was not cacheable")
	}
	invalidated := make(chan string, 1)
	holdoutDone := make(chan struct{})
	go func() {
		defer close(holdoutDone)
		for ctx.Err() == nil {
			var ka wire.KeepAliveResponse
			if err := b.Call(wire.MsgKeepAlive, &wire.KeepAliveRequest{Header: hdr}, &ka, 30*time.Second); err != nil {
				return // the master crashed, or the test ended
			}
			for _, inv := range ka.Invalidations {
				select {
				case invalidated <- inv.Path:
				default:
				}
			}
			if len(ka.Invalidations) > 0 {
				// Unacknowledged invalidations come back at once: do not spin.
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()

	// a's KeepAlives stop; once its lease ends, the master's expiry of it
	// invalidates the holdout's copy of its node, and waits.
	a.CutOffForTest()
	select {
	case p := <-invalidated:
		if p != eph {
			t.Fatalf("holdout told to forget %s, want %s", p, eph)
		}
	case <-ctx.Done():
		t.Fatal("a's expiry never began")
	}
	a.SetAddrsForTest(cell.Addrs())
	// a's KeepAlive reaches the master while the expiry waits: it must be
	// told to try again, not that its session ended.
	select {
	case <-notYet:
	case <-a.Done():
		t.Fatalf("the client was told its session ended (%v) while the expiry was not committed", a.Err())
	case <-ctx.Done():
		t.Fatal("the master never answered a's KeepAlive")
	}

	cell.Crash(m)
	b.Close()
	<-holdoutDone
	cell.WaitMaster(t)
	// The expiry was never committed: the new master keeps the session,
	// and a hears so.
	if _, err := a.Open(ctx, h.Name(), nil); err != nil {
		t.Fatalf("the session's ephemeral node at the new master: %v", err)
	}
	select {
	case <-a.Done():
		t.Fatalf("session ended: %v", a.Err())
	default:
	}
}

// matchHandler signals ch (without blocking) for every log record whose
// message is msg and whose attribute attr contains contains.
type matchHandler struct {
	msg, attr, contains string
	ch                  chan<- struct{}
}

func (h *matchHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *matchHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *matchHandler) WithGroup(string) slog.Handler            { return h }

func (h *matchHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == h.attr && strings.Contains(a.Value.String(), h.contains) {
			select {
			case h.ch <- struct{}{}:
			default:
			}
			return false
		}
		return true
	})
	return nil
}
