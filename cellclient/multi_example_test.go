package cellclient_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haspcell/hasp/cellclient"
	"github.com/haspcell/hasp/fsapi"
)

// A queue: producers add jobs with sequential creates, and the names sort
// in the order the cell created them, so a consumer takes the smallest.
// An ephemeral sequential node is the usual way to join a group (it goes
// when its session ends) with a place in line.
func ExampleOpenOptions_sequential() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(ctx, addr)
	defer c.Close()

	if _, err := c.Open(ctx, "/ls/local/queue", &cellclient.OpenOptions{Create: fsapi.CreateMust, Directory: true}); err != nil {
		panic(err)
	}
	for _, job := range []string{"resize a.png", "resize b.png"} {
		h, err := c.Open(ctx, "/ls/local/queue/job-", &cellclient.OpenOptions{Sequential: true, Contents: []byte(job)})
		if err != nil {
			panic(err)
		}
		fmt.Println("added", h.Name())
	}
	member, err := c.Open(ctx, "/ls/local/queue/worker-", &cellclient.OpenOptions{Sequential: true, Ephemeral: true})
	if err != nil {
		panic(err)
	}
	fmt.Println("joined as", member.Name())

	dir, err := c.Open(ctx, "/ls/local/queue", nil)
	if err != nil {
		panic(err)
	}
	ents, err := dir.ReadDir(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("next job:", ents[0].Name)
	// Output:
	// added /ls/example/queue/job-0000000000
	// added /ls/example/queue/job-0000000001
	// joined as /ls/example/queue/worker-0000000002
	// next job: job-0000000000
}

// A Multi moves a job from "pending" to "running" atomically, and only if
// the job has not changed since it was read: another worker that claimed
// it first makes the whole Multi fail, and the error names the op.
func ExampleClient_Multi() {
	addr, stop := startCell()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := dial(ctx, addr)
	defer c.Close()

	if _, err := c.Multi(ctx,
		cellclient.Op{Kind: cellclient.OpCreate, Name: "/ls/local/pending", Directory: true},
		cellclient.Op{Kind: cellclient.OpCreate, Name: "/ls/local/running", Directory: true},
		cellclient.CreateOp("/ls/local/pending/job-7", []byte("resize a.png"))); err != nil {
		panic(err)
	}
	h, err := c.Open(ctx, "/ls/local/pending/job-7", nil)
	if err != nil {
		panic(err)
	}
	job, st, err := h.GetContentsAndStat(ctx)
	if err != nil {
		panic(err)
	}
	claim := []cellclient.Op{
		cellclient.DeleteOp("/ls/local/pending/job-7", st.ContentGeneration),
		cellclient.CreateOp("/ls/local/running/job-7", job),
	}
	res, err := c.Multi(ctx, claim...)
	if err != nil {
		panic(err)
	}
	fmt.Println("claimed", res[1].Name)

	// A second claim of the same job finds it gone.
	_, err = c.Multi(ctx, claim...)
	var me *fsapi.MultiOpError
	if errors.As(err, &me) && errors.Is(err, fsapi.ErrNotExist) {
		fmt.Println("op", me.Op, "failed: nothing applied")
	}
	// Output:
	// claimed /ls/example/running/job-7
	// op 0 failed: nothing applied
}
