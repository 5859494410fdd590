package fsapitest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/haspcell/hasp/fsapi"
)

// op builds an operation on path /f unless in names another.
func op(client int, call, ret int64, in Input, out Output) porcupine.Operation {
	if in.Path == "" {
		in.Path = "/f"
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func read(client int, call, ret int64, data string, gen uint64) porcupine.Operation {
	return op(client, call, ret, Input{Kind: Read}, Output{Result: OK, Data: data, Generation: gen})
}

func write(client int, call, ret int64, data string, res Result, gen uint64) porcupine.Operation {
	return op(client, call, ret, Input{Kind: Write, Data: data}, Output{Result: res, Generation: gen})
}

func cas(client int, call, ret int64, data string, ifGen uint64, res Result, gen uint64) porcupine.Operation {
	return op(client, call, ret, Input{Kind: CAS, Data: data, IfGeneration: ifGen}, Output{Result: res, Generation: gen})
}

func TestModel(t *testing.T) {
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"initial read", []porcupine.Operation{read(0, 0, 10, "", 1)}, porcupine.Ok},
		{"read of a value never written", []porcupine.Operation{read(0, 0, 10, "x", 1)}, porcupine.Illegal},
		{"read after write", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), read(1, 20, 30, "a", 2)}, porcupine.Ok},
		{"stale read after an acknowledged write", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), read(1, 20, 30, "", 1)}, porcupine.Illegal},
		{"concurrent read sees the old value", []porcupine.Operation{
			write(0, 0, 100, "a", OK, 2), read(1, 10, 20, "", 1)}, porcupine.Ok},
		{"concurrent read sees the new value", []porcupine.Operation{
			write(0, 0, 100, "a", OK, 2), read(1, 10, 20, "a", 2)}, porcupine.Ok},
		{"value flips back", []porcupine.Operation{
			write(0, 0, 100, "a", OK, 2), read(1, 10, 20, "a", 2), read(1, 30, 40, "", 1)}, porcupine.Illegal},
		{"write applied twice", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), read(1, 20, 30, "a", 3)}, porcupine.Illegal},
		{"write reports a wrong generation", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 3)}, porcupine.Illegal},
		{"acknowledged write lost", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), write(1, 20, 30, "b", OK, 3), read(2, 40, 50, "a", 2)}, porcupine.Illegal},
		{"unknown write seen", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), read(1, 50, 60, "a", 2)}, porcupine.Ok},
		{"unknown write not seen", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), read(1, 50, 60, "", 1)}, porcupine.Ok},
		{"unknown write seen late", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), read(1, 50, 60, "", 1), read(1, 70, 80, "a", 2)}, porcupine.Ok},
		{"unknown write undone", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), read(1, 50, 60, "a", 2), read(1, 70, 80, "", 1)}, porcupine.Illegal},
		{"unknown write not applied, later write counts from it", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), write(1, 10, 20, "b", OK, 2), read(1, 30, 40, "b", 2)}, porcupine.Ok},
		{"unknown write applied before a later write", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), write(1, 10, 20, "b", OK, 3), read(1, 30, 40, "b", 3)}, porcupine.Ok},
		{"cas ok", []porcupine.Operation{
			cas(0, 0, 10, "a", 1, OK, 2), read(1, 20, 30, "a", 2)}, porcupine.Ok},
		{"cas ok on a wrong generation", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), cas(1, 20, 30, "b", 1, OK, 3)}, porcupine.Illegal},
		{"cas mismatch", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), cas(1, 20, 30, "b", 1, Mismatch, 0), read(2, 40, 50, "a", 2)}, porcupine.Ok},
		{"cas mismatch that matched", []porcupine.Operation{
			cas(0, 0, 10, "a", 1, Mismatch, 0)}, porcupine.Illegal},
		{"cas mismatch applied anyway", []porcupine.Operation{
			write(0, 0, 10, "a", OK, 2), cas(1, 20, 30, "b", 1, Mismatch, 0), read(2, 40, 50, "b", 3)}, porcupine.Illegal},
		{"unknown cas applied", []porcupine.Operation{
			cas(0, 0, Never, "a", 1, Unknown, 0), read(1, 20, 30, "a", 2)}, porcupine.Ok},
		{"unknown cas on a wrong generation seen", []porcupine.Operation{
			cas(0, 0, Never, "a", 7, Unknown, 0), read(1, 20, 30, "a", 2)}, porcupine.Illegal},
		{"two unknown writes, both applied", []porcupine.Operation{
			write(0, 0, Never, "a", Unknown, 0), write(1, 5, Never, "b", Unknown, 0), read(2, 20, 30, "a", 3)}, porcupine.Ok},
		{"files are independent", []porcupine.Operation{
			op(0, 0, 10, Input{Kind: Write, Path: "/a", Data: "x"}, Output{Result: OK, Generation: 2}),
			op(1, 20, 30, Input{Kind: Read, Path: "/b"}, Output{Result: OK, Generation: 1}),
			op(1, 40, 50, Input{Kind: Read, Path: "/a"}, Output{Result: OK, Data: "x", Generation: 2})}, porcupine.Ok},
		{"a write to one file shows in another", []porcupine.Operation{
			op(0, 0, 10, Input{Kind: Write, Path: "/a", Data: "x"}, Output{Result: OK, Generation: 2}),
			op(1, 20, 30, Input{Kind: Read, Path: "/b"}, Output{Result: OK, Data: "x", Generation: 2})}, porcupine.Illegal},
	}
	model := Model(File{Generation: 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(model, tt.history, 0); got != tt.want {
				t.Fatalf("check = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRecorder(t *testing.T) {
	rec := NewRecorder()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := rec.Begin(w, Input{Kind: Write, Path: "/f", Data: fmt.Sprint(w)})
			switch w {
			case 0:
				c.End(Output{Generation: 2}, nil)
			case 1:
				c.End(Output{}, &fsapi.AmbiguousError{Err: errors.New("deadline")})
			case 2:
				rec.Begin(w, Input{Kind: Read, Path: "/f"}).End(Output{}, errors.New("read failed"))
				c.End(Output{}, errors.New("unavailable"))
			case 3:
				// left in flight
			}
		}()
	}
	wg.Wait()
	cas := rec.Begin(9, Input{Kind: CAS, Path: "/f", IfGeneration: 7})
	cas.End(Output{}, fmt.Errorf("write /f: %w", fsapi.ErrGenerationMismatch))
	ops := rec.Operations()
	if len(ops) != 4 {
		t.Fatalf("%d operations, want 4 (failed read and definitely failed write dropped): %+v", len(ops), ops)
	}
	unknown := 0
	for _, o := range ops {
		out := o.Output.(Output)
		if o.Return < o.Call {
			t.Errorf("return %d before call %d", o.Return, o.Call)
		}
		if out.Result == Unknown {
			unknown++
			if o.Return != Never {
				t.Errorf("unknown outcome returns at %d, want Never", o.Return)
			}
		}
		if o.ClientId == 9 && out.Result != Mismatch {
			t.Errorf("failed cas recorded as %v", out.Result)
		}
	}
	if unknown != 2 {
		t.Errorf("%d unknown operations, want 2 (the ambiguous write and the one in flight)", unknown)
	}
	if rec.Count(Write, OK) != 1 || rec.Count(CAS, Mismatch) != 1 {
		t.Errorf("counts: write ok %d, cas mismatch %d", rec.Count(Write, OK), rec.Count(CAS, Mismatch))
	}
}

// TestSettledBy: an unknown write settled by a later time may take effect
// only before it, so a read after that time that misses it, followed by
// one that sees it, is illegal; unsettled, the same history is legal (the
// write may land between the reads). Settling leaves known outcomes alone.
func TestSettledBy(t *testing.T) {
	history := func(settle bool) []porcupine.Operation {
		rec := NewRecorder()
		w := rec.Begin(0, Input{Kind: Write, Path: "/f", Data: "w"})
		w.End(Output{}, &fsapi.AmbiguousError{Err: errors.New("deadline")})
		x := rec.Begin(0, Input{Kind: Write, Path: "/f", Data: "x"})
		x.End(Output{Generation: 2}, nil) // "w" not applied yet: x made generation 2
		if settle {
			w.SettledBy(x.Returned())
			x.SettledBy(Never) // known outcome: no change
		}
		rec.Begin(1, Input{Kind: Read, Path: "/f"}).End(Output{Data: "x", Generation: 2}, nil)
		rec.Begin(1, Input{Kind: Read, Path: "/f"}).End(Output{Data: "w", Generation: 3}, nil)
		return rec.Operations()
	}
	model := Model(File{Generation: 1})
	if got := porcupine.CheckOperationsTimeout(model, history(false), 0); got != porcupine.Ok {
		t.Fatalf("unsettled: check = %s, want Ok (the write may land between the reads)", got)
	}
	ops := history(true)
	if got := porcupine.CheckOperationsTimeout(model, ops, 0); got != porcupine.Illegal {
		t.Fatalf("settled: check = %s, want Illegal (the write could only land before x returned)", got)
	}
	for _, o := range ops {
		if o.Input.(Input).Data == "x" && o.Output.(Output).Result != OK {
			t.Fatalf("SettledBy changed a known outcome: %+v", o)
		}
	}
}

// fakeT records failures instead of failing.
type fakeT struct {
	testing.TB
	name   string
	errors []string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Name() string              { return f.name }
func (f *fakeT) Logf(string, ...any)       {}
func (f *fakeT) Errorf(s string, a ...any) { f.errors = append(f.errors, fmt.Sprintf(s, a...)) }

func TestCheckWritesVisualization(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HASP_VIS_DIR", dir)
	model := Model(File{Generation: 1})

	ft := &fakeT{TB: t, name: "ok"}
	if res := Check(ft, model, []porcupine.Operation{write(0, 0, 10, "a", OK, 2), read(1, 20, 30, "a", 2)}); res != porcupine.Ok || len(ft.errors) > 0 {
		t.Fatalf("legal history: %s %v", res, ft.errors)
	}
	ft = &fakeT{TB: t, name: "stale/read"}
	res := Check(ft, model, []porcupine.Operation{write(0, 0, 10, "a", OK, 2), read(1, 20, 30, "", 1)},
		porcupine.Annotation{Tag: "nemesis", Description: "crash r1", Start: 5, End: 25})
	if res != porcupine.Illegal || len(ft.errors) != 1 {
		t.Fatalf("stale read: %s %v", res, ft.errors)
	}
	msg := ft.errors[0]
	if !strings.Contains(msg, `read() -> ""@1`) || !strings.Contains(msg, "partition /f") {
		t.Errorf("excerpt does not show the stale read:\n%s", msg)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "stale_read-*.html"))
	if len(files) != 1 {
		t.Fatalf("visualizations in %s: %v", dir, files)
	}
	if b, err := os.ReadFile(files[0]); err != nil || !strings.Contains(string(b), "crash r1") {
		t.Errorf("visualization lacks the annotation (err %v)", err)
	}
}

func TestModelFrom(t *testing.T) {
	initial := map[string]File{"/a": {Data: "x", Generation: 5}, "/b": {Generation: 1}}
	model := ModelFrom(func(p string) File { return initial[p] })
	rd := func(path, data string, gen uint64) porcupine.Operation {
		return op(0, 0, 10, Input{Kind: Read, Path: path}, Output{Result: OK, Data: data, Generation: gen})
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"each file from its own state", []porcupine.Operation{rd("/a", "x", 5), rd("/b", "", 1)}, porcupine.Ok},
		{"a file from another's state", []porcupine.Operation{rd("/b", "x", 5)}, porcupine.Illegal},
		{"cas on the initial generation", []porcupine.Operation{
			op(0, 0, 10, Input{Kind: CAS, Path: "/a", Data: "y", IfGeneration: 5}, Output{Result: OK, Generation: 6}),
			op(0, 20, 30, Input{Kind: Read, Path: "/a"}, Output{Result: OK, Data: "y", Generation: 6})}, porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(model, tt.history, 0); got != tt.want {
				t.Fatalf("check = %s, want %s", got, tt.want)
			}
		})
	}
}
