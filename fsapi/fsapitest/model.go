package fsapitest

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation on one file.
type Kind uint8

const (
	// Read is GetContentsAndStat.
	Read Kind = iota + 1
	// Write is SetContents with fsapi.AnyGeneration.
	Write
	// CAS is SetContents with an ifGeneration.
	CAS
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Input is an operation's call.
type Input struct {
	Kind Kind
	Path string // the partition key
	// Data is what Write and CAS store.
	Data string
	// IfGeneration is the generation a CAS expects.
	IfGeneration uint64
}

// PartitionKey is the path: histories are partitioned by file.
func (in Input) PartitionKey() string { return in.Path }

// Result says how an operation ended.
type Result uint8

const (
	// OK: a read returned, or a write or CAS was applied.
	OK Result = iota + 1
	// Mismatch: a CAS was refused (fsapi.ErrGenerationMismatch); nothing
	// changed.
	Mismatch
	// Unknown: a write or CAS may or may not have been applied. Record it
	// with Return = math.MaxInt64 (Recorder does).
	Unknown
)

func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Mismatch:
		return "mismatch"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Output is an operation's return.
type Output struct {
	Result Result
	// Data is what a read returned.
	Data string
	// Generation is the content generation a read returned, or the new one
	// an applied Write or CAS returned (0: not reported, not checked).
	Generation uint64
}

// File is the state of one file: its contents and content generation.
type File struct {
	Data       string
	Generation uint64
}

func (f File) String() string { return fmt.Sprintf("%q@%d", f.Data, f.Generation) }

// Model is the porcupine model of a set of files that all start as initial
// (e.g. File{Generation: 1} for files created empty before the history).
// It is partitioned by path and nondeterministic for Unknown results.
func Model(initial File) porcupine.Model {
	return ModelFrom(func(string) File { return initial })
}

// ModelFrom is Model for files that start in different states: initial
// gives each path's state at the start of the history (e.g. what the last
// reads of an earlier, checked history returned).
func ModelFrom(initial func(path string) File) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition:      partitionByPath,
		PartitionEvent: partitionEventsByPath,
		Init:           func() []any { return []any{fileState{}} },
		Step: func(state, input, output any) []any {
			s, in := state.(fileState), input.(Input)
			if !s.set {
				s = fileState{File: initial(in.Path), set: true}
			}
			return step(s.File, in, output.(Output))
		},
		Equal: func(a, b any) bool { return a.(fileState) == b.(fileState) },
		Hash:  hashFile,
		DescribeOperation: func(input, output any) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string {
			if s := state.(fileState); s.set {
				return s.File.String()
			}
			return "initial"
		},
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
	return nm.ToModel()
}

// fileState is the model's state of one file; the zero value stands for
// the file's initial state, which depends on its path (known only once an
// operation names it: a partition's Init does not know its key).
type fileState struct {
	File
	set bool
}

// step returns every state the file may be in after the operation, or none
// if the operation could not have returned output in state f.
func step(f File, in Input, out Output) []any {
	next := func(fs ...File) []any {
		out := make([]any, len(fs))
		for i, f := range fs {
			out[i] = fileState{File: f, set: true}
		}
		return out
	}
	applied := File{Data: in.Data, Generation: f.Generation + 1}
	switch in.Kind {
	case Read:
		if out.Result == OK && out.Data == f.Data && out.Generation == f.Generation {
			return next(f)
		}
	case Write:
		switch out.Result {
		case OK:
			if out.Generation == 0 || out.Generation == applied.Generation {
				return next(applied)
			}
		case Unknown:
			return next(f, applied)
		}
	case CAS:
		match := in.IfGeneration == f.Generation
		switch {
		case out.Result == OK && match && (out.Generation == 0 || out.Generation == applied.Generation):
			return next(applied)
		case out.Result == Mismatch && !match:
			return next(f)
		case out.Result == Unknown && match:
			return next(f, applied)
		case out.Result == Unknown:
			return next(f)
		}
	}
	return nil
}

func hashFile(state any) uint64 {
	f := state.(fileState)
	if !f.set {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(f.Data))
	h.Write([]byte(strconv.FormatUint(f.Generation, 10)))
	return h.Sum64()
}

func describe(in Input, out Output) string {
	switch in.Kind {
	case Read:
		if out.Result != OK {
			return fmt.Sprintf("read() -> %v", out.Result)
		}
		return fmt.Sprintf("read() -> %q@%d", out.Data, out.Generation)
	case Write:
		return fmt.Sprintf("write(%q) -> %s", in.Data, describeWrite(out))
	case CAS:
		return fmt.Sprintf("cas(%q, if %d) -> %s", in.Data, in.IfGeneration, describeWrite(out))
	}
	return fmt.Sprintf("%v -> %v", in, out)
}

func describeWrite(out Output) string {
	if out.Result == OK && out.Generation != 0 {
		return fmt.Sprintf("ok@%d", out.Generation)
	}
	return out.Result.String()
}

func partitionByPath(history []porcupine.Operation) [][]porcupine.Operation {
	idx := map[string]int{}
	var out [][]porcupine.Operation
	for _, op := range history {
		p := op.Input.(Input).Path
		i, ok := idx[p]
		if !ok {
			i = len(out)
			idx[p] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], op)
	}
	return out
}

func partitionEventsByPath(history []porcupine.Event) [][]porcupine.Event {
	path := map[int]string{} // event id → path, from its call
	idx := map[string]int{}
	var out [][]porcupine.Event
	for _, ev := range history {
		if ev.Kind == porcupine.CallEvent {
			path[ev.Id] = ev.Value.(Input).Path
		}
		p := path[ev.Id]
		i, ok := idx[p]
		if !ok {
			i = len(out)
			idx[p] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ev)
	}
	return out
}
