package fsapitest_test

import (
	"strings"
	"testing"

	"github.com/haspcell/hasp/fsapi/fsapitest"
)

func TestCheckSessions(t *testing.T) {
	const (
		R = fsapitest.Read
		W = fsapitest.Write
	)
	ok, unknown := fsapitest.OK, fsapitest.Unknown
	initial := []fsapitest.Version{{Path: "/a", Revision: 5, Data: "a0"}, {Path: "/b", Revision: 6, Data: "b0"}}
	op := func(client int, k fsapitest.Kind, path, data string, rev uint64, res fsapitest.Result) fsapitest.SessionOp {
		return fsapitest.SessionOp{Client: client, Kind: k, Path: path, Data: data, Revision: rev, Result: res}
	}
	tests := []struct {
		name string
		ops  []fsapitest.SessionOp
		want string // a substring of the first violation; "" for none
	}{
		{"empty", nil, ""},
		{"read own write", []fsapitest.SessionOp{op(1, W, "/a", "x", 10, ok), op(1, R, "/a", "x", 10, ok)}, ""},
		{"read a later write", []fsapitest.SessionOp{op(1, W, "/a", "x", 10, ok), op(2, W, "/a", "y", 12, ok),
			op(1, R, "/a", "y", 12, ok)}, ""},
		// Another client's write may be missing: not linearizable, allowed.
		{"stale for others", []fsapitest.SessionOp{op(2, W, "/a", "y", 12, ok), op(1, R, "/a", "a0", 5, ok)}, ""},
		{"own write missing", []fsapitest.SessionOp{op(1, W, "/a", "x", 10, ok), op(1, R, "/a", "a0", 5, ok)},
			`write of "x" at revision 10 is missing`},
		{"back in time, same file", []fsapitest.SessionOp{op(2, W, "/a", "y", 12, ok), op(1, R, "/a", "y", 12, ok),
			op(1, R, "/a", "a0", 5, ok)}, `write of "y" at revision 12 is missing`},
		// Client 1 saw revision 20 on /b, so a write to /a at 12 precedes
		// what it saw: reading /a without it goes back in time.
		{"back in time, across files", []fsapitest.SessionOp{op(2, W, "/a", "y", 12, ok), op(2, W, "/b", "z", 20, ok),
			op(1, R, "/b", "z", 20, ok), op(1, R, "/a", "a0", 5, ok)}, `write of "y" at revision 12 is missing`},
		{"an own write to another file raises the floor", []fsapitest.SessionOp{op(2, W, "/a", "y", 12, ok),
			op(1, W, "/b", "mine", 15, ok), op(1, R, "/a", "a0", 5, ok)}, `write of "y" at revision 12 is missing`},
		// A write after what the client saw may be missing.
		{"later write missing is fine", []fsapitest.SessionOp{op(1, R, "/b", "b0", 6, ok), op(2, W, "/a", "y", 12, ok),
			op(1, R, "/a", "a0", 5, ok)}, ""},
		// An unknown write shown by a read is a version like any other.
		{"unknown write seen, then lost", []fsapitest.SessionOp{op(2, W, "/a", "u", 0, unknown), op(1, R, "/a", "u", 14, ok),
			op(1, R, "/a", "a0", 5, ok)}, `write of "u" at revision 14 is missing`},
		{"unknown write never seen", []fsapitest.SessionOp{op(1, W, "/a", "u", 0, unknown), op(1, R, "/a", "a0", 5, ok)}, ""},
		{"value at the wrong revision", []fsapitest.SessionOp{op(1, W, "/a", "x", 10, ok), op(2, R, "/a", "x", 11, ok)},
			`value "x" at revision 11, but it was written to /a at revision 10`},
		{"two values at one revision", []fsapitest.SessionOp{op(1, W, "/a", "x", 10, ok), op(2, W, "/a", "y", 0, unknown),
			op(2, R, "/a", "y", 10, ok)}, `revision 10 holds`},
		{"value nobody wrote", []fsapitest.SessionOp{op(1, R, "/a", "ghost", 9, ok)}, "which no write wrote"},
		{"initial value at another revision", []fsapitest.SessionOp{op(1, R, "/a", "a0", 9, ok)}, "written to /a at revision 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := fsapitest.CheckSessions(initial, tt.ops)
			switch {
			case tt.want == "" && len(bad) > 0:
				t.Fatalf("violations in a good history: %q", bad)
			case tt.want != "" && len(bad) == 0:
				t.Fatalf("no violation found; want one about %q", tt.want)
			case tt.want != "" && !strings.Contains(bad[0], tt.want):
				t.Fatalf("violation %q; want one about %q", bad[0], tt.want)
			}
		})
	}
}

func TestSessionRecorder(t *testing.T) {
	r := fsapitest.NewSessionRecorder()
	r.Add(fsapitest.SessionOp{Client: 1, Kind: fsapitest.Write, Path: "/a", Data: "x", Revision: 3, Result: fsapitest.OK})
	r.Add(fsapitest.SessionOp{Client: 1, Kind: fsapitest.Read, Path: "/a", Data: "x", Revision: 3, Result: fsapitest.OK, At: 7})
	ops := r.Ops()
	if len(ops) != 2 || ops[0].At == 0 || ops[1].At != 7 || r.Count(fsapitest.Read, fsapitest.OK) != 1 {
		t.Fatalf("ops %+v", ops)
	}
}
