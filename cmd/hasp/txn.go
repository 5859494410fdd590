package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

func (a *app) txnCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "txn",
		Short: "Apply several writes atomically, read as JSON lines from stdin",
		Long: "txn reads one operation per line from stdin, each a JSON object, and applies them\n" +
			"in order, all or none, in one Raft entry (Client.Multi). At most 64 operations, whose\n" +
			"data together fit the cell's content limit. Empty lines and lines starting with #\n" +
			"are skipped.\n\n" +
			"  {\"op\":\"create\", \"path\":P, \"data\":S, \"dir\":B, \"ephemeral\":B, \"sequential\":B}\n" +
			"  {\"op\":\"set\",    \"path\":P, \"data\":S, \"generation\":N}   N: compare-and-swap (0: any)\n" +
			"  {\"op\":\"delete\", \"path\":P, \"generation\":N}             N: only at generation N (0: any)\n" +
			"  {\"op\":\"check\",  \"path\":P, \"generation\":N}             P exists (at generation N if not 0)\n\n" +
			"It prints one line per operation. If one fails nothing is applied, and the error\n" +
			"names its input line. An ephemeral node goes when this command's session ends.",
		Example: "  printf '%s\\n' '{\"op\":\"check\",\"path\":\"/ls/dev/cfg/version\",\"generation\":4}' \\\n" +
			"    '{\"op\":\"set\",\"path\":\"/ls/dev/cfg/a\",\"data\":\"1\"}' '{\"op\":\"set\",\"path\":\"/ls/dev/cfg/b\",\"data\":\"2\"}' | hasp txn",
		Args: cobra.NoArgs,
		RunE: a.action(func(ctx context.Context, _ []string) error {
			return a.txn(ctx)
		}),
	}
}

// txnOp is one input line.
type txnOp struct {
	Op         string `json:"op"`
	Path       string `json:"path"`
	Data       string `json:"data"`
	Generation uint64 `json:"generation"`
	Dir        bool   `json:"dir"`
	Ephemeral  bool   `json:"ephemeral"`
	Sequential bool   `json:"sequential"`
}

var txnKinds = map[string]cellclient.OpKind{
	"create": cellclient.OpCreate, "set": cellclient.OpSet, "delete": cellclient.OpDelete, "check": cellclient.OpCheck,
}

func (a *app) txn(ctx context.Context) error {
	ops, lines, err := a.readTxn()
	if err != nil {
		return err
	}
	return a.withClient(ctx, func(ctx context.Context, c *cellclient.Client) error {
		res, err := c.Multi(ctx, ops...)
		var me *fsapi.MultiOpError
		if errors.As(err, &me) && me.Op < len(ops) {
			op := ops[me.Op]
			return fmt.Errorf("txn not applied: line %d (%s %s): %w", lines[me.Op], op.Kind, op.Name, me.Err)
		}
		if err != nil {
			return fmt.Errorf("txn not applied: %w", err)
		}
		for i, r := range res {
			if err := a.printTxnResult(ops[i].Kind, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// readTxn parses stdin: the ops and the input line of each.
func (a *app) readTxn() ([]cellclient.Op, []int, error) {
	var ops []cellclient.Op
	var lines []int
	sc := bufio.NewScanner(io.LimitReader(a.stdin, maxInput+1))
	sc.Buffer(make([]byte, 64<<10), maxInput+1)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		op, err := parseTxnLine(line)
		if err != nil {
			return nil, nil, usagef("stdin line %d: %v", n, err)
		}
		ops, lines = append(ops, op), append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading stdin: %w", err)
	}
	if len(ops) == 0 {
		return nil, nil, usagef("no operations on stdin (one JSON object per line; see hasp txn --help)")
	}
	return ops, lines, nil
}

func parseTxnLine(line []byte) (cellclient.Op, error) {
	var in txnOp
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return cellclient.Op{}, err
	}
	if dec.More() {
		return cellclient.Op{}, errors.New("more than one JSON value on the line")
	}
	kind, ok := txnKinds[in.Op]
	if !ok {
		return cellclient.Op{}, fmt.Errorf("op %q: want create, set, delete or check", in.Op)
	}
	if err := checkName(in.Path); err != nil {
		return cellclient.Op{}, err
	}
	if kind != cellclient.OpCreate && (in.Dir || in.Ephemeral || in.Sequential) {
		return cellclient.Op{}, fmt.Errorf("dir, ephemeral and sequential are for create, not %s", in.Op)
	}
	if in.Data != "" && (kind == cellclient.OpDelete || kind == cellclient.OpCheck || in.Dir) {
		return cellclient.Op{}, fmt.Errorf("data is for a file's create or set, not %s", in.Op)
	}
	op := cellclient.Op{Kind: kind, Name: in.Path, Generation: in.Generation, Directory: in.Dir,
		Ephemeral: in.Ephemeral, Sequential: in.Sequential}
	if in.Data != "" {
		op.Contents = []byte(in.Data)
	}
	return op, nil
}

// txnJSON is one applied op with --json.
type txnJSON struct {
	Op string `json:"op"`
	nodeJSON
}

func (a *app) printTxnResult(kind cellclient.OpKind, r cellclient.OpResult) error {
	if a.json {
		return a.emit(txnJSON{Op: kind.String(), nodeJSON: newNodeJSON(r.Name, r.Stat)})
	}
	var line string
	switch kind {
	case cellclient.OpCreate:
		line = "created " + r.Name
	case cellclient.OpSet:
		line = fmt.Sprintf("wrote %s: %d bytes, content generation %d", r.Name, r.Stat.Size, r.Stat.ContentGeneration)
	case cellclient.OpDelete:
		line = "deleted " + r.Name
	default:
		line = fmt.Sprintf("checked %s: content generation %d", r.Name, r.Stat.ContentGeneration)
	}
	_, err := fmt.Fprintln(a.stdout, strings.TrimSpace(line))
	return err
}
