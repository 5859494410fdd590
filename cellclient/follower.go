package cellclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/haspcell/hasp/fsapi"
	"github.com/haspcell/hasp/fsapi/wire"
)

// Follower reads (Config.FollowerReads; docs/consistency.md, "Follower
// reads").
//
// The client keeps a token: the highest revision it has seen in the answer
// to any read or write it made, at any replica. A follower read goes to the
// client's read replica (one picked at random, not the last master if
// there is a choice) with the token; the replica answers only from a state
// that has applied it. So every answer reflects at least every revision
// the client saw before: its own writes (read-your-writes) and whatever it
// read before (monotonic reads). When the read replica cannot answer
// (behind, unreachable, not knowing the session), the read goes to the
// master with the token, and the next read picks another replica.

// followerAttempt bounds one try at the read replica; after it the read
// goes to the master. A healthy replica answers in a round trip plus at
// most its 100 ms wait for the token.
const followerAttempt = time.Second

// tokenTypes are the calls whose answer's Revision is a committed entry
// the answering replica had applied: reads, writes and CreateSession.
// (A Watch answer's Revision can echo the client's own FromRevision, so it
// is not one.)
var tokenTypes = map[wire.MsgType]bool{
	wire.MsgCreateSession: true, wire.MsgCloseSession: true, wire.MsgOpen: true, wire.MsgGetContents: true,
	wire.MsgGetStat: true, wire.MsgReadDir: true, wire.MsgSetContents: true, wire.MsgDelete: true,
	wire.MsgAcquire: true, wire.MsgRelease: true, wire.MsgCancelWait: true, wire.MsgLockWait: true,
	wire.MsgCheckSequencer: true, wire.MsgGetLock: true,
}

// Token is the highest revision the client has seen in any answer: every
// follower read reflects at least this revision.
func (c *Client) Token() uint64 { return c.token.Load() }

// observe raises the token to rev if typ's answers carry one.
func (c *Client) observe(typ wire.MsgType, rev uint64) {
	if !tokenTypes[typ] {
		return
	}
	for {
		cur := c.token.Load()
		if rev <= cur || c.token.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// FollowerStats counts this client's follower reads.
type FollowerStats struct {
	Replica uint64 // answered by the read replica
	Master  uint64 // sent on to the master (the replica was behind, unreachable, ...)
}

// FollowerStats reports how this client's follower reads were answered
// (zero without Config.FollowerReads).
func (c *Client) FollowerStats() FollowerStats {
	return FollowerStats{Replica: c.frServed.Load(), Master: c.frMaster.Load()}
}

type readOptioner interface{ SetReadOptions(wire.ReadOptions) }

// readFollower makes a follower read: one try at the read replica, then
// the master. It returns the read replica's answer if that is an answer
// about the request (success, or a domain error such as NotExist).
func (c *Client) readFollower(ctx context.Context, typ wire.MsgType, req readOptioner, resp responder) error {
	if ok, err := c.tryReadReplica(ctx, typ, req, resp); ok {
		return err
	}
	c.frMaster.Add(1)
	// The master path: the same request, not as a follower read, with the
	// token (refreshed on each try by retry).
	return c.do(ctx, typ, req, resp, false)
}

// tryReadReplica sends one follower read to the read replica. answered is
// false when the read should go to the master instead.
func (c *Client) tryReadReplica(ctx context.Context, typ wire.MsgType, req readOptioner, resp responder) (answered bool, err error) {
	cn, err := c.readConn(ctx)
	if err != nil {
		return false, nil
	}
	req.SetReadOptions(wire.ReadOptions{Follower: true, MinRevision: c.token.Load()})
	if hs, ok := req.(interface{ SetHeader(wire.Header) }); ok {
		hs.SetHeader(c.header())
	}
	*resp.Header() = wire.RespHeader{}
	err = cn.roundTrip(ctx, min(followerAttempt, c.cfg.AttemptTimeout), typ, req, resp)
	if err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		c.drop(cn)
		return false, nil
	}
	hdr := resp.Header()
	err = hdr.Err.Err()
	if !answersRead(err) {
		// Behind, unavailable, a new epoch (the read replica is the
		// master), or the session's end, which the master path confirms:
		// try another replica next time, and the master now.
		c.drop(cn)
		return false, nil
	}
	c.observe(typ, hdr.Revision)
	c.frServed.Add(1)
	return true, err
}

// answersRead says whether a read replica's answer is about the request
// itself: success, or an error about the node (NotExist, HandleInvalid,
// IsDir, ...) that holds at a revision at or after the token.
func answersRead(err error) bool {
	var we *fsapi.WrongEpochError
	return err == nil || isDomainErr(err) && !errors.Is(err, fsapi.ErrSessionExpired) && !errors.As(err, &we)
}

// sequenced says whether a read carries a lock sequencer, which only the
// master can check.
func sequenced(req any) bool {
	switch r := req.(type) {
	case *wire.GetContentsRequest:
		return len(r.Sequencer) > 0
	case *wire.GetStatRequest:
		return len(r.Sequencer) > 0
	case *wire.ReadDirRequest:
		return len(r.Sequencer) > 0
	}
	return false
}

// readConn returns the connection to the read replica, dialling one picked
// at random if there is none.
func (c *Client) readConn(ctx context.Context) (*conn, error) {
	return c.connectTo(ctx, &c.rcur, c.pickReadReplicaLocked)
}

// pickReadReplicaLocked picks a replica at random, other than the last
// master when there is a choice: follower reads are there to take load off
// the master.
func (c *Client) pickReadReplicaLocked() string {
	if c.readPin != "" {
		return c.readPin
	}
	var cands []string
	for _, a := range c.cfg.Addrs {
		if a != c.lastMaster {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		cands = c.cfg.Addrs
	}
	return cands[rand.IntN(len(cands))]
}
