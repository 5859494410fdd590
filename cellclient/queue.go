package cellclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/haspcell/hasp/fsapi"
)

// ErrQueueEmpty: TryTake found no item.
var ErrQueueEmpty = errors.New("cellclient: queue empty")

// Queue is a distributed FIFO queue on a directory (ZooKeeper's queue
// recipe): each item is a permanent sequential file in the directory
// (item-0000000000, item-0000000001, ...), numbered by the cell in the
// order it applied the enqueues, so the names are the queue order. A taker takes the oldest item it can claim;
// the claim is deleting that item's file, which only one taker can do
// (the delete is bound to the file's instance), so each item is taken at
// most once. Items survive any crash of the master (they are in the
// replicated state) and the end of the enqueuer's session.
//
// At most once, not exactly once: an item whose taker fails after Take
// returned is gone. A Take that fails with an error wrapping
// *fsapi.AmbiguousError (its deadline ran out while the claim's outcome
// was unknown) may have taken an item that it did not return.
//
// Takers wait on a watch of the directory, not by polling. Every waiting
// taker wakes at each enqueue and they race for the head, as with
// ZooKeeper's recipe: fine for a few takers, not for hundreds.
type Queue struct {
	c    *Client
	name string
}

// queueItemPrefix starts every item's name.
const queueItemPrefix = "item-"

// NewQueue returns the queue on the directory called name (created by the
// first Enqueue or Take if needed).
func NewQueue(c *Client, name string) *Queue {
	return &Queue{c: c, name: name}
}

// QueueItem is one taken item.
type QueueItem struct {
	Name string // full name of the item's (now deleted) file
	Data []byte
	Stat fsapi.Stat
}

// Enqueue adds an item holding data at the tail of the queue and returns
// its name. Once Enqueue returns without error the item is in the cell:
// it is taken once or stays. An error wrapping *fsapi.AmbiguousError
// means the item may or may not have been added.
func (q *Queue) Enqueue(ctx context.Context, data []byte) (string, error) {
	dir, err := q.c.openDir(ctx, q.name)
	if err != nil {
		return "", fmt.Errorf("queue %s: enqueue: %w", q.name, err)
	}
	dir.Close()
	h, err := q.c.Open(ctx, q.name+"/"+queueItemPrefix, &OpenOptions{Sequential: true, Contents: data})
	if err != nil {
		return "", fmt.Errorf("queue %s: enqueue: %w", q.name, err)
	}
	h.Close()
	return h.Name(), nil
}

// Take removes the oldest item it can claim and returns it, waiting for
// one if the queue is empty, until ctx or the session ends. The items one
// taker takes come in queue order.
func (q *Queue) Take(ctx context.Context) (QueueItem, error) {
	return q.take(ctx, true)
}

// TryTake is Take without waiting: it fails with ErrQueueEmpty if there
// is no item to claim.
func (q *Queue) TryTake(ctx context.Context) (QueueItem, error) {
	return q.take(ctx, false)
}

func (q *Queue) take(ctx context.Context, wait bool) (QueueItem, error) {
	dir, err := q.c.openDir(ctx, q.name)
	if err != nil {
		return QueueItem{}, fmt.Errorf("queue %s: take: %w", q.name, err)
	}
	defer dir.Close()
	var item QueueItem
	check := func(ents []fsapi.DirEntry) (bool, error) {
		for _, base := range bySequence(ents, queueItemPrefix) {
			ok, err := q.claim(ctx, base, &item)
			if ok || err != nil {
				return ok, err
			}
		}
		if !wait {
			return false, ErrQueueEmpty
		}
		return false, nil
	}
	if wait {
		err = q.c.waitDir(ctx, dir, check)
	} else {
		var ents []fsapi.DirEntry
		if ents, err = dir.ReadDir(ctx); err == nil {
			_, err = check(ents)
		}
	}
	if err != nil {
		return QueueItem{}, fmt.Errorf("queue %s: take: %w", q.name, err)
	}
	return item, nil
}

// claim tries to take the item called base: read it, then delete it. It
// says false if another taker got there first.
func (q *Queue) claim(ctx context.Context, base string, item *QueueItem) (bool, error) {
	h, err := q.c.Open(ctx, q.name+"/"+base, nil)
	if errors.Is(err, fsapi.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer h.Close()
	data, st, err := h.GetContentsAndStat(ctx)
	if err == nil {
		err = h.Delete(ctx) // the claim: only one taker deletes this instance
	}
	if gone(err) {
		return false, nil // taken by another
	}
	if err != nil {
		return false, err
	}
	*item = QueueItem{Name: h.Name(), Data: data, Stat: st}
	return true, nil
}
