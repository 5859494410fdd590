package locks

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Data-driven lock histories (etcd raft's interaction tests, datadriven
// style). Each testdata/*.txt file is a list of blocks separated by blank
// lines:
//
//	# optional comments
//	acquire /a s1/h1 excl wait t=0
//	----
//	granted gen=1
//
// The runner executes each command against one table per file and compares
// the output with the lines after "----". go test -run TestScripts -update
// rewrites the expectations. Commands (instants t= are offsets from 0,
// delay= defaults to DefaultLockDelay):
//
//	acquire PATH HOLDER MODE wait|try [delay=D] t=T
//	release PATH HOLDER t=T          cancel PATH wN t=T
//	session-lost sN t=T              handle-lost HOLDER t=T
//	handle-closed HOLDER t=T         tick t=T
//	next-deadline                    show PATH | state
//	seq PATH HOLDER inst=N           check-seq SEQ inst=N
//	fence SEQ                        delete PATH
//	restore                          (snapshot + restore the table)

var update = flag.Bool("update", false, "rewrite testdata/*.txt expectations")

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScript(t, file)
		})
	}
}

type block struct {
	comments []string
	cmd      string
	want     []string
	line     int
}

func parseScript(t *testing.T, text string) []block {
	var out []block
	var cur *block
	inWant := false
	for i, ln := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(ln) == "":
			cur, inWant = nil, false
			continue
		case cur == nil:
			out = append(out, block{line: i + 1})
			cur = &out[len(out)-1]
		}
		switch {
		case inWant:
			cur.want = append(cur.want, ln)
		case ln == "----":
			if cur.cmd == "" {
				t.Fatalf("line %d: ---- without a command", i+1)
			}
			inWant = true
		case strings.HasPrefix(ln, "#") && cur.cmd == "":
			cur.comments = append(cur.comments, ln)
		case cur.cmd == "":
			cur.cmd = ln
		default:
			t.Fatalf("line %d: one command per block (missing ----?)", i+1)
		}
	}
	return out
}

func runScript(t *testing.T, file string) {
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseScript(t, string(text))
	s := &script{t: t, tbl: NewTable()}
	var rewritten strings.Builder
	for i := range blocks {
		b := &blocks[i]
		if b.cmd == "" { // a comment-only block
			rewritten.WriteString(strings.Join(b.comments, "\n") + "\n\n")
			continue
		}
		got := s.run(b.cmd)
		checkTable(t, s.tbl)
		if len(got) == 0 {
			got = []string{"ok"}
		}
		if !*update && strings.Join(got, "\n") != strings.Join(b.want, "\n") {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, b.line, b.cmd,
				strings.Join(got, "\n"), strings.Join(b.want, "\n"))
		}
		for _, c := range b.comments {
			rewritten.WriteString(c + "\n")
		}
		rewritten.WriteString(b.cmd + "\n----\n" + strings.Join(got, "\n") + "\n\n")
	}
	if *update {
		out := strings.TrimSuffix(rewritten.String(), "\n")
		if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type script struct {
	t     *testing.T
	tbl   *Table
	fence Fence
}

// args splits a command into positional words and key=value options.
type args struct {
	pos  []string
	opts map[string]string
}

func parseArgs(cmd string) args {
	a := args{opts: map[string]string{}}
	for _, w := range strings.Fields(cmd) {
		if k, v, ok := strings.Cut(w, "="); ok {
			a.opts[k] = v
		} else {
			a.pos = append(a.pos, w)
		}
	}
	return a
}

func (a args) arg(i int) string {
	if i < len(a.pos) {
		return a.pos[i]
	}
	return ""
}

func (a args) dur(key string, def time.Duration) (time.Duration, error) {
	v, ok := a.opts[key]
	if !ok {
		return def, nil
	}
	return time.ParseDuration(v)
}

func (a args) uint(key string) (uint64, error) { return strconv.ParseUint(a.opts[key], 10, 64) }

func (s *script) run(cmd string) []string {
	out, err := s.exec(parseArgs(cmd))
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	return out
}

func (s *script) exec(a args) ([]string, error) {
	now, err := a.dur("t", 0)
	if err != nil {
		s.t.Fatalf("%v: bad t=: %v", a.pos, err)
	}
	switch a.arg(0) {
	case "acquire":
		return s.acquire(a, at(now))
	case "release", "handle-lost", "handle-closed":
		return s.byHolder(a, at(now))
	case "cancel":
		id, err := strconv.ParseUint(strings.TrimPrefix(a.arg(2), "w"), 10, 64)
		s.must(err)
		return grantsErr(s.tbl.Cancel(a.arg(1), id, at(now)))
	case "session-lost":
		id, err := strconv.ParseUint(strings.TrimPrefix(a.arg(1), "s"), 10, 64)
		s.must(err)
		return grantsOrNone(s.tbl.SessionLost(id, at(now))), nil
	case "tick":
		return grantsOrNone(s.tbl.Tick(at(now))), nil
	case "next-deadline":
		if d, ok := s.tbl.NextDeadline(); ok {
			return []string{"deadline " + time.Duration(d).String()}, nil
		}
		return []string{"none"}, nil
	case "show":
		l, _ := s.tbl.Lock(a.arg(1))
		return []string{fmtLock(l)}, nil
	case "state":
		return s.state(), nil
	case "delete":
		l, ok := s.tbl.Delete(a.arg(1))
		if !ok {
			return []string{"no lock"}, nil
		}
		return []string{"deleted " + fmtLock(l)}, nil
	case "restore":
		s.tbl = roundTrip(s.t, s.tbl)
		return nil, nil
	}
	return s.sequencerCmd(a)
}

func (s *script) sequencerCmd(a args) ([]string, error) {
	switch a.arg(0) {
	case "seq":
		h, err := parseHolder(a.arg(2))
		s.must(err)
		inst, err := a.uint("inst")
		s.must(err)
		seq, err := s.tbl.Sequencer(a.arg(1), h, inst)
		if err != nil {
			return nil, err
		}
		return []string{seq.String()}, nil
	case "check-seq", "fence":
		seq, err := ParseSequencerString(a.arg(1))
		if err != nil {
			return nil, err
		}
		if a.arg(0) == "fence" {
			err = s.fence.Check(seq)
		} else {
			inst, perr := a.uint("inst")
			s.must(perr)
			err = s.tbl.CheckSequencer(seq, inst)
		}
		if err != nil {
			return nil, err
		}
		return []string{"current"}, nil
	}
	s.t.Fatalf("unknown command %q", a.arg(0))
	return nil, nil
}

func (s *script) acquire(a args, now int64) ([]string, error) {
	h, err := parseHolder(a.arg(2))
	s.must(err)
	mode, err := ParseMode(a.arg(3))
	s.must(err)
	delay, err := a.dur("delay", DefaultLockDelay)
	s.must(err)
	req := Request{Path: a.arg(1), Holder: h, Mode: mode, LockDelay: delay, Wait: a.arg(4) == "wait"}
	if w := a.arg(4); w != "wait" && w != "try" {
		s.t.Fatalf("acquire: want wait or try, got %q", w)
	}
	res, err := s.tbl.Acquire(req, now)
	out := fmtGrants("woke", res.Others)
	switch {
	case err != nil:
	case res.Already:
		out = append(out, fmt.Sprintf("granted gen=%d (already held)", res.Generation))
	case res.Granted:
		out = append(out, fmt.Sprintf("granted gen=%d", res.Generation))
	default:
		out = append(out, fmt.Sprintf("queued w%d", res.Waiter))
	}
	return out, err
}

func (s *script) byHolder(a args, now int64) ([]string, error) {
	i := 1
	if a.arg(0) == "release" {
		i = 2
	}
	h, err := parseHolder(a.arg(i))
	s.must(err)
	switch a.arg(0) {
	case "release":
		return grantsErr(s.tbl.Release(a.arg(1), h, now))
	case "handle-lost":
		return grantsOrNone(s.tbl.HandleLost(h, now)), nil
	}
	return grantsOrNone(s.tbl.HandleClosed(h, now)), nil
}

func (s *script) state() []string {
	st := s.tbl.State()
	out := []string{fmt.Sprintf("last-waiter=w%d", st.LastWaiter)}
	for _, l := range st.Locks {
		out = append(out, fmtLock(l))
	}
	return out
}

func (s *script) must(err error) {
	if err != nil {
		s.t.Helper()
		s.t.Fatal(err)
	}
}

func grantsOrNone(gs []Grant) []string {
	if len(gs) == 0 {
		return []string{"no grants"}
	}
	return fmtGrants("grant", gs)
}

func grantsErr(gs []Grant, err error) ([]string, error) {
	if err != nil {
		return fmtGrants("grant", gs), err
	}
	return grantsOrNone(gs), nil
}
