package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Ask every replica in --cell about itself",
		Long: "status asks each address in --cell for its state, without a session, so it works\n" +
			"on a cell that has no master. It prints one row per replica (* marks the master);\n" +
			"with --json one object per replica. It fails only if no replica answers.",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.status(ctx)
		}),
	}
}

// replicaResult is one replica's answer, or why there was none.
type replicaResult struct {
	addr string
	st   *cellclient.ReplicaStatus
	err  error
}

// replicaJSON is an answering replica in status --json.
type replicaJSON struct {
	ID            string `json:"id"`
	Address       string `json:"address"`
	State         string `json:"state"`
	Term          uint64 `json:"term"`
	LastIndex     uint64 `json:"last_index"`
	CommitIndex   uint64 `json:"commit_index"`
	AppliedIndex  uint64 `json:"applied_index"`
	LeaderID      string `json:"leader_id"`
	LeaderAddress string `json:"leader_address"`
	Cell          string `json:"cell"`
	Sessions      int    `json:"sessions"`
	Nodes         int    `json:"nodes"`
	// LeaseMS is, on the master, how long its master lease still holds
	// (0: it serves reads by ReadIndex until a renewal commits).
	LeaseMS int64 `json:"lease_remaining_ms"`
	// On the master: (session, node) pairs it tracks as cached, and
	// invalidations sent but not yet acknowledged.
	CachedEntries        int    `json:"cached_entries"`
	InvalidationsPending int    `json:"invalidations_pending"`
	LockWakeups          uint64 `json:"lock_wakeups"`
	// Follower reads this replica answered while not master, and sent to
	// the master (Behind).
	FollowerReads  uint64 `json:"follower_reads"`
	FollowerBehind uint64 `json:"follower_behind"`
}

// unreachableJSON is a replica that did not answer.
type unreachableJSON struct {
	Address string `json:"address"`
	State   string `json:"state"`
	Error   string `json:"error"`
}

func (a *app) status(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	results := queryAll(ctx, a.addrs, a.timeout)
	var err error
	if a.json {
		err = a.emitStatus(results)
	} else {
		err = writeStatus(a.stdout, results)
	}
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.err == nil {
			return nil
		}
	}
	return errors.New("no replica answered")
}

// queryAll asks every address at once and returns the answers in order.
func queryAll(ctx context.Context, addrs []string, timeout time.Duration) []replicaResult {
	results := make([]replicaResult, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			st, err := cellclient.QueryStatus(ctx, addr, timeout)
			results[i] = replicaResult{addr: addr, st: st, err: err}
		})
	}
	wg.Wait()
	return results
}

func (a *app) emitStatus(results []replicaResult) error {
	for _, r := range results {
		var v any = unreachableJSON{Address: r.addr, State: "unreachable", Error: errText(r.err)}
		if r.err == nil {
			s := r.st
			v = replicaJSON{ID: s.ID, Address: r.addr, State: s.State, Term: s.Term, LastIndex: s.LastIndex,
				CommitIndex: s.CommitIndex, AppliedIndex: s.AppliedIndex, LeaderID: s.LeaderID,
				LeaderAddress: s.LeaderAddr, Cell: s.Cell, Sessions: s.Sessions, Nodes: s.Nodes,
				LeaseMS: s.LeaseRemainingMillis, CachedEntries: s.CacheEntries, InvalidationsPending: s.InvalidationsPending,
				LockWakeups: s.LockWakeups, FollowerReads: s.FollowerReads, FollowerBehind: s.FollowerBehind}
		}
		if err := a.emit(v); err != nil {
			return err
		}
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return oneLine(err)
}

// writeStatus prints the replicas as a table, then a one-line summary.
func writeStatus(w io.Writer, results []replicaResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tID\tADDRESS\tSTATE\tTERM\tLAST INDEX\tCOMMIT\tAPPLIED\tSESSIONS\tNODES\tLEASE\tCACHED\tINVAL\tERROR")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(tw, "\t-\t%s\tunreachable\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", r.addr, errText(r.err))
			continue
		}
		s, mark, lease, cached, inval := r.st, "", "-", "-", "-"
		if s.State == "master" {
			mark, lease = "*", fmt.Sprintf("%dms", s.LeaseRemainingMillis)
			cached, inval = fmt.Sprint(s.CacheEntries), fmt.Sprint(s.InvalidationsPending)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", mark, s.ID, r.addr, s.State, s.Term,
			s.LastIndex, s.CommitIndex, s.AppliedIndex, s.Sessions, s.Nodes, lease, cached, inval)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, summarize(results))
	return err
}

// summarize says how many replicas answered and which is master.
func summarize(results []replicaResult) string {
	answered, masters := 0, []string{}
	for _, r := range results {
		if r.err != nil {
			continue
		}
		answered++
		if r.st.State == "master" {
			masters = append(masters, fmt.Sprintf("%s (%s, term %d)", r.st.ID, r.addr, r.st.Term))
		}
	}
	s := fmt.Sprintf("%d of %d replicas answered; ", answered, len(results))
	switch len(masters) {
	case 0:
		return s + "no master"
	case 1:
		return s + "master " + masters[0]
	}
	return s + fmt.Sprintf("%d replicas claim to be master: %v", len(masters), masters)
}
