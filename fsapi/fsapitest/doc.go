// Package fsapitest checks histories of file operations for
// linearizability, with github.com/anishathalye/porcupine.
//
// It owns a porcupine model of a set of hasp files (Model), a thread-safe
// Recorder that turns client calls into a porcupine history, and Check,
// which runs the checker and, on a violation, writes porcupine's HTML
// visualization where a person can open it. It owns no cell and no client:
// tests drive cellclient themselves and report each call to a Recorder.
//
// # Model
//
// The state of one file is its contents and content generation (File).
// Operations are partitioned by path (like porcupine's key-value model), so
// each file is checked on its own:
//
//   - Read returns contents and generation; it must match the state.
//   - Write (SetContents with fsapi.AnyGeneration) always applies and
//     returns the new generation, one more than the old.
//   - CAS (SetContents with an ifGeneration) applies only if the
//     generation matches (result OK, new generation) and otherwise fails
//     with Mismatch, changing nothing.
//
// A write whose outcome is unknown (the client returned
// *fsapi.AmbiguousError, or the test ended first) has the result Unknown
// and the return time math.MaxInt64: porcupine's convention for an
// operation that never returned. The model is nondeterministic for it: the
// write either took effect (at any instant after its call) or never did.
// Call.SettledBy bounds that instant when the test knows more. A write
// that failed with any other error did not take effect (cellclient returns
// *fsapi.AmbiguousError whenever a write may have been applied), and a
// read that failed had no effect: both are left out.
//
// Model starts every file in one state; ModelFrom gives each path its own,
// so a long run can be checked in segments, each starting from what the
// previous segment's last reads returned.
//
// # Usage
//
//	rec := fsapitest.NewRecorder()
//	call := rec.Begin(worker, fsapitest.Input{Kind: fsapitest.CAS, Path: p, Data: v, IfGeneration: g})
//	st, err := h.SetContents(ctx, []byte(v), g)
//	call.End(fsapitest.Output{Generation: st.ContentGeneration}, err)
//	...
//	fsapitest.Check(t, fsapitest.Model(fsapitest.File{Generation: 1}), rec.Operations())
//
// Recorder is safe for concurrent use; Model and Check hold no state.
package fsapitest
