package locks

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// at converts a duration since the epoch to the table's instants.
func at(d time.Duration) int64 { return int64(d) }

func hd(s, h uint64) Holder { return Holder{Session: s, Handle: h} }

// parseHolder parses "s1/h2".
func parseHolder(s string) (Holder, error) {
	ss, hs, ok := strings.Cut(s, "/")
	if !ok || !strings.HasPrefix(ss, "s") || !strings.HasPrefix(hs, "h") {
		return Holder{}, fmt.Errorf("bad holder %q (want s1/h2)", s)
	}
	sn, err1 := strconv.ParseUint(ss[1:], 10, 64)
	hn, err2 := strconv.ParseUint(hs[1:], 10, 64)
	if err1 != nil || err2 != nil {
		return Holder{}, fmt.Errorf("bad holder %q", s)
	}
	return hd(sn, hn), nil
}

// checkTable verifies the table's invariants and that its derived indexes
// match what its locks say.
func checkTable(t testing.TB, tbl *Table) {
	t.Helper()
	if err := tbl.check(); err != nil {
		t.Fatalf("invariant broken: %v", err)
	}
	sessions := map[uint64]map[string]int{}
	delayed := map[string]struct{}{}
	for p, l := range tbl.locks {
		for _, h := range l.Holders {
			addIndex(sessions, h.Holder.Session, p)
		}
		for _, w := range l.Waiters {
			addIndex(sessions, w.Holder.Session, p)
		}
		if !l.Held() && len(l.Waiters) > 0 {
			delayed[p] = struct{}{}
		}
	}
	if !reflect.DeepEqual(sessions, tbl.sessions) {
		t.Fatalf("session index %v, want %v", tbl.sessions, sessions)
	}
	if !maps.Equal(delayed, tbl.delayed) {
		t.Fatalf("delayed set %v, want %v", tbl.delayed, delayed)
	}
}

func addIndex(m map[uint64]map[string]int, s uint64, p string) {
	if m[s] == nil {
		m[s] = map[string]int{}
	}
	m[s][p]++
}

// roundTrip snapshots tbl through JSON (standing in for msgpack) and
// restores it, checking that nothing changed.
func roundTrip(t testing.TB, tbl *Table) *Table {
	t.Helper()
	st := tbl.State()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Fatalf("State changed in JSON round trip:\n%+v\n%+v", st, back)
	}
	out, err := Restore(back)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := out.State(); !reflect.DeepEqual(got, st) {
		t.Fatalf("restored State differs:\n%+v\n%+v", st, got)
	}
	checkTable(t, out)
	return out
}

// fmtLock is a script-friendly Lock.String (instants as offsets from 0).
func fmtLock(l Lock) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %v gen=%d", l.Path, l.Mode, l.Generation)
	if l.DelayUntil != 0 {
		fmt.Fprintf(&b, " delay-until=%v", time.Duration(l.DelayUntil))
	}
	b.WriteString(" holders=[")
	for i, h := range l.Holders {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%v(delay=%v)", h.Holder, h.LockDelay)
	}
	b.WriteString("] waiters=[")
	for i, w := range l.Waiters {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "w%d:%v:%v", w.ID, w.Holder, w.Mode)
	}
	b.WriteString("]")
	return b.String()
}

func fmtGrants(prefix string, gs []Grant) []string {
	var out []string
	for _, g := range gs {
		out = append(out, prefix+" "+g.String())
	}
	return out
}
