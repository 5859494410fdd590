package mastertest

import (
	"bytes"

	"github.com/hashicorp/raft"

	"github.com/haspcell/hasp/master/fsm"
)

// snapshotBytes serialises an FSM's state as its snapshot would.
func snapshotBytes(f *fsm.FSM) ([]byte, error) {
	snap, err := f.Snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	var buf bytes.Buffer
	sink := &memSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type memSink struct{ *bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)
