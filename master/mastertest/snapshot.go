package mastertest

import (
	"bytes"

	"github.com/hashicorp/raft"
)

// persistBytes encodes a captured snapshot.
func persistBytes(snap raft.FSMSnapshot) ([]byte, error) {
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
