package fsapitest

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/haspcell/hasp/fsapi"
)

// Never is the return time of an operation whose outcome is unknown:
// porcupine may place it anywhere after its call.
const Never = math.MaxInt64

// Recorder collects a history. Times are nanoseconds since NewRecorder on
// the monotonic clock. It is safe for concurrent use.
type Recorder struct {
	start time.Time

	mu     sync.Mutex // protects following fields
	ops    []porcupine.Operation
	open   map[*Call]struct{}
	notes  []porcupine.Annotation
	counts map[Kind]map[Result]int
}

// NewRecorder returns an empty recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), open: map[*Call]struct{}{}, counts: map[Kind]map[Result]int{}}
}

// Now is the recorder's clock: nanoseconds since NewRecorder.
func (r *Recorder) Now() int64 { return time.Since(r.start).Nanoseconds() }

// Call is one operation in flight.
type Call struct {
	r      *Recorder
	client int
	in     Input
	at     int64
	idx    int // its index in r.ops once it ended; -1 before, or if dropped
}

// Begin records an operation's call by client (a small index: porcupine
// draws one row per client).
func (r *Recorder) Begin(client int, in Input) *Call {
	c := &Call{r: r, client: client, in: in, idx: -1}
	r.mu.Lock()
	c.at = r.Now()
	r.open[c] = struct{}{}
	r.mu.Unlock()
	return c
}

// End records the operation's return given what the client call returned:
//
//   - err == nil: out, with Result OK if it is unset;
//   - a CAS that failed with fsapi.ErrGenerationMismatch: Mismatch;
//   - a write that failed with *fsapi.AmbiguousError: Unknown, with the
//     error as metadata;
//   - any other failure: dropped. A read that failed had no effect, and
//     neither had a write that failed otherwise: cellclient returns
//     *fsapi.AmbiguousError whenever a write may have been applied. (A
//     breach of that promise then shows as a history porcupine rejects.)
//
// Writes that were never sent (the session was in jeopardy until the
// call's deadline) used to count as Unknown, open to the end of the
// history: after long outages there were dozens, and porcupine's search
// did not end within minutes.
func (c *Call) End(out Output, err error) {
	var amb *fsapi.AmbiguousError
	switch {
	case err == nil:
		if out.Result == 0 {
			out.Result = OK
		}
		c.finish(out, c.r.Now(), nil)
	case c.in.Kind == CAS && errors.Is(err, fsapi.ErrGenerationMismatch):
		c.finish(Output{Result: Mismatch}, c.r.Now(), nil)
	case c.in.Kind != Read && errors.As(err, &amb):
		c.Unknown(err)
	default:
		c.Drop()
	}
}

// Unknown records that the operation's outcome is unknown: it returns at
// Never, so it may or may not have taken effect.
func (c *Call) Unknown(cause error) {
	var meta any
	if cause != nil {
		meta = cause.Error()
	}
	c.finish(Output{Result: Unknown}, Never, meta)
}

// Returned is when the operation returned (Never if its outcome is
// unknown; -1 if it has not ended or was dropped).
func (c *Call) Returned() int64 {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.idx < 0 {
		return -1
	}
	return c.r.ops[c.idx].Return
}

// SettledBy records that an operation of unknown outcome took effect, if
// at all, before ret: something later proved it could not take effect
// after that (for example, a later write of the same session whose answer
// acknowledged it; see cellclient's fault workload). Porcupine then places
// it between its call and ret, or nowhere, instead of anywhere after its
// call. It does nothing to an operation whose outcome is known.
func (c *Call) SettledBy(ret int64) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if c.idx < 0 {
		return
	}
	op := &c.r.ops[c.idx]
	if op.Output.(Output).Result != Unknown || op.Return != Never || ret < op.Call {
		return
	}
	op.Return = ret
	op.Metadata = fmt.Sprintf("%v (settled by %.3fs)", op.Metadata, float64(ret)/1e9)
}

// Drop forgets the operation: for a read that failed, which had no effect.
func (c *Call) Drop() {
	c.r.mu.Lock()
	delete(c.r.open, c)
	c.r.mu.Unlock()
}

func (c *Call) finish(out Output, ret int64, meta any) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if _, ok := c.r.open[c]; !ok {
		panic("fsapitest: operation ended twice")
	}
	delete(c.r.open, c)
	c.idx = len(c.r.ops)
	c.r.ops = append(c.r.ops, porcupine.Operation{
		ClientId: c.client, Input: c.in, Call: c.at, Output: out, Return: ret, Metadata: meta,
	})
	m := c.r.counts[c.in.Kind]
	if m == nil {
		m = map[Result]int{}
		c.r.counts[c.in.Kind] = m
	}
	m[out.Result]++
}

// Annotate adds a note (e.g. a fault the test injected) to the
// visualization, spanning [start, end] on the recorder's clock.
func (r *Recorder) Annotate(tag, description string, start, end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, porcupine.Annotation{Tag: tag, Description: description, Start: start, End: end})
}

// Annotations returns the notes added so far.
func (r *Recorder) Annotations() []porcupine.Annotation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]porcupine.Annotation(nil), r.notes...)
}

// Operations returns the history so far. Writes still in flight count as
// Unknown (the test was cut off); reads still in flight are left out.
func (r *Recorder) Operations() []porcupine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]porcupine.Operation(nil), r.ops...)
	for c := range r.open {
		if c.in.Kind != Read {
			out = append(out, porcupine.Operation{ClientId: c.client, Input: c.in, Call: c.at,
				Output: Output{Result: Unknown}, Return: Never, Metadata: "in flight at the end"})
		}
	}
	return out
}

// Count is how many operations of kind ended with result.
func (r *Recorder) Count(kind Kind, result Result) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[kind][result]
}
