package cellclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/master/mastertest"
)

func TestElection(t *testing.T) {
	cell := mastertest.New(t, mastertest.Options{N: 3})
	a, obs := dialCell(t, cell), dialCell(t, cell)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// b gives up on its session soon after it loses touch with the cell.
	b, err := cellclient.Dial(ctx, cellclient.Config{Addrs: cell.Addrs(), GracePeriod: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const name = "/ls/local/leader"

	oe := cellclient.NewElection(obs, name)
	oe.Interval = 20 * time.Millisecond
	if _, err := oe.Leader(ctx); !errors.Is(err, cellclient.ErrNoLeader) {
		t.Fatalf("Leader before any campaign: %v", err)
	}
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	changes := oe.Observe(octx)
	if li := <-changes; li != (cellclient.LeaderInfo{}) {
		t.Fatalf("first observation %+v, want none", li)
	}
	// An observer that (almost) never polls sees each new leader through
	// the election file's events.
	ee := cellclient.NewElection(obs, name)
	ee.Interval = time.Hour
	eventChanges := ee.Observe(octx)
	<-eventChanges
	nextLeader := func(want string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case li := <-eventChanges:
				if li.Identity == want {
					return
				}
				if li.Identity != "" {
					t.Fatalf("event-driven observer saw %q, want %q", li.Identity, want)
				}
			case <-deadline:
				t.Fatalf("event-driven observer did not see %q", want)
			}
		}
	}

	la, err := cellclient.NewElection(a, name).Campaign(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	li, err := oe.Leader(ctx)
	if err != nil || li.Identity != "alpha" || li.Sequencer != la.Sequencer() {
		t.Fatalf("Leader = %+v, %v; want alpha %v", li, err, la.Sequencer())
	}
	if got := <-changes; got.Identity != "alpha" {
		t.Fatalf("observed %+v", got)
	}
	nextLeader("alpha")

	won := make(chan *cellclient.Leadership, 1)
	go func() {
		lb, err := cellclient.NewElection(b, name).Campaign(ctx, "beta")
		if err != nil {
			t.Error(err)
		}
		won <- lb
	}()
	select {
	case <-won:
		t.Fatal("a second campaign won while the first leads")
	case <-time.After(300 * time.Millisecond):
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	<-la.Done()
	if !errors.Is(la.Err(), cellclient.ErrResigned) {
		t.Fatalf("Err after Resign: %v", la.Err())
	}
	lb := <-won
	if lb == nil {
		t.FailNow()
	}
	if lb.Sequencer().Generation <= la.Sequencer().Generation {
		t.Fatalf("generations %d then %d", la.Sequencer().Generation, lb.Sequencer().Generation)
	}
	nextLeader("beta")
	for got := range changes {
		if got.Identity == "beta" {
			break
		}
		if got.Identity != "" {
			t.Fatalf("observed %+v between alpha and beta", got)
		}
	}
	// A deposed leader's fenced write is refused.
	if err := obs.CheckSequencer(ctx, la.Sequencer()); !errors.Is(err, fsapi.ErrStaleSequencer) {
		t.Fatalf("old leader's sequencer: %v", err)
	}

	// Losing the session ends the leadership.
	b.CutOffForTest()
	select {
	case <-lb.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("leadership outlived its session")
	}
	if lb.Err() == nil {
		t.Fatal("Done closed without a reason")
	}
	// The master ends b's session and frees the lock, with no successor:
	// nothing new is written to the file, yet the lock-released event
	// shows the observer that (almost) never polls that nobody leads.
	deadline := time.After(20 * time.Second)
	for {
		select {
		case li := <-eventChanges:
			if li == (cellclient.LeaderInfo{}) {
				return
			}
		case <-deadline:
			t.Fatal("event-driven observer did not see the leader's session end")
		}
	}
}
