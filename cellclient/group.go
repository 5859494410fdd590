package cellclient

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/haspcell/hasp/fsapi"
)

// Group is group membership on a directory: each member is an ephemeral
// file named after it, holding what it wants to tell the others (an
// address, say). A member is in the group while its session lives: when
// the session ends (Close, or expiry after a crash or a partition) the
// master deletes the file, and watchers see the member leave.
//
// A member whose session expired is not re-added by itself (ZooKeeper's
// users meet this with ephemeral nodes too): Membership.Done says when to
// join again with a new Client.
type Group struct {
	c    *Client
	name string
}

// NewGroup returns the group on the directory called name (created by the
// first Join if needed).
func NewGroup(c *Client, name string) *Group {
	return &Group{c: c, name: name}
}

// Member is one member of a group.
type Member struct {
	ID   string
	Data []byte
	// Stat is the member file's metadata: Stat.EphemeralOwner is the
	// member's session, Stat.CreatedRevision when it joined.
	Stat fsapi.Stat
}

// Membership is this client's place in a group.
type Membership struct {
	g *Group
	h *Handle
}

// Join adds this client to the group as id (one name component), with
// data for the others to read. It fails with an error wrapping
// fsapi.ErrExist if id is taken by another live member.
func (g *Group) Join(ctx context.Context, id string, data []byte) (*Membership, error) {
	name, err := childName(g.name, "", id)
	if err != nil {
		return nil, fmt.Errorf("group %s: join: %w", g.name, err)
	}
	dir, err := g.c.openDir(ctx, g.name)
	if err != nil {
		return nil, fmt.Errorf("group %s: join: %w", g.name, err)
	}
	dir.Close()
	h, err := g.c.Open(ctx, name, &OpenOptions{Create: fsapi.CreateMust, Ephemeral: true, Contents: data})
	if err != nil {
		return nil, fmt.Errorf("group %s: join: %w", g.name, err)
	}
	return &Membership{g: g, h: h}, nil
}

// Update replaces the member's data; watchers see the change.
func (m *Membership) Update(ctx context.Context, data []byte) error {
	_, err := m.h.SetContents(ctx, data, fsapi.AnyGeneration)
	return err
}

// Leave removes the member from the group.
func (m *Membership) Leave(ctx context.Context) error {
	defer m.h.Close()
	if err := m.h.Delete(ctx); err != nil && !gone(err) {
		return fmt.Errorf("group %s: leave: %w", m.g.name, err)
	}
	return nil
}

// Done is closed when the membership may have ended without Leave: the
// session ended, so the master deletes (or has deleted) the member.
func (m *Membership) Done() <-chan struct{} { return m.g.c.Done() }

// Members returns the group's members, in the order they joined.
func (g *Group) Members(ctx context.Context) ([]Member, error) {
	dir, err := g.c.Open(ctx, g.name, nil)
	if err != nil {
		return nil, fmt.Errorf("group %s: members: %w", g.name, err)
	}
	defer dir.Close()
	ents, err := dir.ReadDir(ctx)
	if err != nil {
		return nil, fmt.Errorf("group %s: members: %w", g.name, err)
	}
	ms, err := g.read(ctx, ents)
	if err != nil {
		return nil, fmt.Errorf("group %s: members: %w", g.name, err)
	}
	return ms, nil
}

// read reads the members listed in ents; one deleted meanwhile is left
// out.
func (g *Group) read(ctx context.Context, ents []fsapi.DirEntry) ([]Member, error) {
	var out []Member
	for _, e := range byCreation(ents) {
		h, err := g.c.Open(ctx, g.name+"/"+e.Name, nil)
		if err != nil {
			if errors.Is(err, fsapi.ErrNotExist) {
				continue
			}
			return nil, err
		}
		data, st, err := h.GetContentsAndStat(ctx)
		h.Close()
		switch {
		case gone(err):
			continue
		case errors.Is(err, fsapi.ErrIsDir):
			continue // not a member
		case err != nil:
			return nil, err
		}
		out = append(out, Member{ID: e.Name, Data: data, Stat: st})
	}
	return out, nil
}

// GroupView is one state of a group: the members, in the order they
// joined. The last view of a watch that ends in error carries only Err.
type GroupView struct {
	Members []Member
	Err     error
}

// Watch delivers the group's members now and again after every change
// (a member joined, left, or updated its data), until ctx ends, the
// session ends or the directory is deleted, when the channel is closed;
// unless ctx ended, the last view carries only Err. Changes that come
// together are delivered as one view; a view equal to the last one is not
// delivered.
// It waits on a watch of the directory, not by polling. The group's
// directory must exist (Join creates it).
func (g *Group) Watch(ctx context.Context) (<-chan GroupView, error) {
	dir, err := g.c.Open(ctx, g.name, nil)
	if err != nil {
		return nil, fmt.Errorf("group %s: watch: %w", g.name, err)
	}
	out := make(chan GroupView)
	go func() {
		defer close(out)
		defer dir.Close()
		var last []Member
		first := true
		err := g.c.waitDir(ctx, dir, func(ents []fsapi.DirEntry) (bool, error) {
			ms, err := g.read(ctx, ents)
			if err != nil {
				return false, err
			}
			if !first && slices.EqualFunc(ms, last, sameMember) {
				return false, nil
			}
			first, last = false, ms
			select {
			case out <- GroupView{Members: ms}:
				return false, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
		})
		if ctx.Err() == nil {
			select {
			case out <- GroupView{Err: fmt.Errorf("group %s: watch: %w", g.name, err)}:
			case <-ctx.Done():
			}
		}
	}()
	return out, nil
}

func sameMember(a, b Member) bool {
	return a.ID == b.ID && a.Stat.Instance == b.Stat.Instance && a.Stat.ContentGeneration == b.Stat.ContentGeneration
}
