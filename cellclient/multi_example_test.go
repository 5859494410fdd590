package cellclient_test

import (
	"context"
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
