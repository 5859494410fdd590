package cellclient

import (
	"context"
	"time"

	"github.com/haspcell/hasp/fsapi/wire"
)

// ReplicaStatus is one replica's description of itself.
type ReplicaStatus = wire.StatusResponse

// QueryStatus asks the replica at addr about itself. It needs no session, so
// operators can inspect a cell that has no master.
func QueryStatus(ctx context.Context, addr string, timeout time.Duration) (*ReplicaStatus, error) {
	cn, err := dial(ctx, addr, timeout, nil)
	if err != nil {
		return nil, err
	}
	defer cn.close()
	var resp wire.StatusResponse
	if err := cn.roundTrip(ctx, timeout, wire.MsgStatus, &wire.StatusRequest{}, &resp); err != nil {
		return nil, err
	}
	return &resp, resp.Err.Err()
}
