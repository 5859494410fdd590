package fsapitest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// CheckTimeout bounds one Check unless $HASP_CHECK_TIMEOUT (a duration)
// says otherwise, e.g. for a long soak. Past it the result is
// porcupine.Unknown, which Check reports as a failure: a history too hard
// to check is a test to fix.
const CheckTimeout = 60 * time.Second

func checkTimeout(t testing.TB) time.Duration {
	s := os.Getenv("HASP_CHECK_TIMEOUT")
	if s == "" {
		return CheckTimeout
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Errorf("fsapitest: HASP_CHECK_TIMEOUT=%q is not a positive duration; using %v", s, CheckTimeout)
		return CheckTimeout
	}
	return d
}

// Check checks history against model and fails t unless it is
// linearizable. On porcupine.Illegal or porcupine.Unknown it writes the
// HTML visualization (with the annotations) into $HASP_VIS_DIR, or a new
// directory under os.TempDir() that is kept after the test, prints its
// path and an excerpt of the failing partition. With HASP_VIS_ALWAYS set it
// writes the visualization of a linearizable history too.
func Check(t testing.TB, model porcupine.Model, history []porcupine.Operation, annotations ...porcupine.Annotation) porcupine.CheckResult {
	t.Helper()
	start := time.Now()
	timeout := checkTimeout(t)
	res, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	t.Logf("fsapitest: %d operations: %s in %v", len(history), res, time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok && os.Getenv("HASP_VIS_ALWAYS") == "" {
		return res
	}
	path, err := visualize(t, model, info, annotations)
	if err != nil {
		t.Errorf("fsapitest: writing the visualization: %v", err)
	}
	switch res {
	case porcupine.Ok:
		t.Logf("fsapitest: visualization: %s", path)
	case porcupine.Illegal:
		t.Errorf("fsapitest: history is NOT linearizable; visualization: %s\n%s", path, excerpt(model, history, info))
	default:
		t.Errorf("fsapitest: linearizability check timed out after %v; visualization: %s", timeout, path)
	}
	return res
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func visualize(t testing.TB, model porcupine.Model, info porcupine.LinearizationInfo, annotations []porcupine.Annotation) (string, error) {
	dir := os.Getenv("HASP_VIS_DIR")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "hasp-porcupine-"); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	info.AddAnnotations(annotations)
	name := unsafeName.ReplaceAllString(t.Name(), "_") + time.Now().Format("-150405.000") + ".html"
	path := filepath.Join(dir, name)
	return path, porcupine.VisualizePath(model, info, path)
}

// excerpt describes each partition that could not be linearized: the end
// of its longest partial linearization, with the state after each step,
// and the earliest operations that could not follow it.
func excerpt(model porcupine.Model, history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var b strings.Builder
	parts := model.Partition(history)
	partials := info.PartialLinearizationsOperations()
	for p, ops := range parts {
		if p >= len(partials) {
			break
		}
		longest := longestOf(partials[p])
		if len(longest) == len(ops) {
			continue
		}
		key := partitionKey(ops[0].Input, p)
		fmt.Fprintf(&b, "partition %s: %d of %d operations linearized; the longest linearization ends:\n", key, len(longest), len(ops))
		states := replay(model, longest)
		for i := max(0, len(longest)-6); i < len(longest); i++ {
			fmt.Fprintf(&b, "    %s  => %s\n", describeOp(model, longest[i]), states[i])
		}
		done := map[porcupine.Operation]bool{}
		for _, op := range longest {
			done[op] = true
		}
		var rest []porcupine.Operation
		for _, op := range ops {
			if !done[op] {
				rest = append(rest, op)
			}
		}
		sort.Slice(rest, func(i, j int) bool { return rest[i].Call < rest[j].Call })
		fmt.Fprintf(&b, "  and none of the next operations can follow it:\n")
		for _, op := range rest[:min(len(rest), 8)] {
			fmt.Fprintf(&b, "    %s\n", describeOp(model, op))
		}
	}
	return b.String()
}

// partitionKey names a partition by its first input's PartitionKey, if
// the model's inputs have one (Input does: the path), else by its index.
func partitionKey(in any, p int) string {
	if k, ok := in.(interface{ PartitionKey() string }); ok {
		return k.PartitionKey()
	}
	return fmt.Sprint(p)
}

func longestOf(ls [][]porcupine.Operation) []porcupine.Operation {
	var best []porcupine.Operation
	for _, l := range ls {
		if len(l) > len(best) {
			best = l
		}
	}
	return best
}

func replay(model porcupine.Model, ops []porcupine.Operation) []string {
	out := make([]string, len(ops))
	state := model.Init()
	for i, op := range ops {
		_, state = model.Step(state, op.Input, op.Output)
		out[i] = model.DescribeState(state)
	}
	return out
}

func describeOp(model porcupine.Model, op porcupine.Operation) string {
	ret := "never"
	if op.Return != Never {
		ret = fmt.Sprintf("%.6fs", float64(op.Return)/1e9)
	}
	s := fmt.Sprintf("client %d [%.6fs, %s] %s", op.ClientId, float64(op.Call)/1e9, ret, model.DescribeOperation(op.Input, op.Output))
	if op.Metadata != nil {
		s += fmt.Sprintf(" (%v)", op.Metadata)
	}
	return s
}
