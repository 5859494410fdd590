package fsm

import (
	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"github.com/haspcell/hasp/fsapi"
)

// View is an immutable, consistent view of the namespace at one applied
// index. It is safe for use from any number of goroutines and stays valid
// (unchanged) however much is applied after it was taken.
type View struct {
	tree *iradix.Tree[*Node]
	rev  uint64
}

// Revision is the applied index the view reflects.
func (v *View) Revision() uint64 { return v.rev }

// Get returns the node at a cell-internal path ("/" or "/a/b"). A malformed
// path is simply absent. The Node must not be modified.
func (v *View) Get(path string) (*Node, bool) {
	if fsapi.CheckPath(path) != nil {
		return nil, false
	}
	return v.tree.Get(nodeKey(path))
}

// List returns the direct children of dir sorted by name, or nil if it has
// none (or is not a directory, or does not exist).
func (v *View) List(dir string) []fsapi.DirEntry {
	if fsapi.CheckPath(dir) != nil {
		return nil
	}
	var out []fsapi.DirEntry
	prefix := childPrefix(dir)
	v.tree.Root().WalkPrefix(prefix, func(k []byte, n *Node) bool {
		out = append(out, fsapi.DirEntry{Name: string(k[len(prefix):]), Stat: n.Stat})
		return false
	})
	return out
}

// NodeCount is the number of nodes, including the root.
func (v *View) NodeCount() int { return v.tree.Len() }

// walk calls fn for every node in key order (parents before children).
func (v *View) walk(fn func(path string, n *Node)) {
	v.tree.Root().Walk(func(k []byte, n *Node) bool {
		fn(keyPath(k), n)
		return false
	})
}

// Keys: the root is "/"; any other path p is Parent(p) + "\x00" + Base(p).
// The direct children of d are then exactly the keys with prefix d+"\x00"
// (a component never contains NUL), and a parent sorts before its children.

func nodeKey(path string) []byte {
	if path == fsapi.Root {
		return []byte(fsapi.Root)
	}
	parent, base := fsapi.Parent(path), fsapi.Base(path)
	k := make([]byte, 0, len(parent)+1+len(base))
	k = append(k, parent...)
	k = append(k, 0)
	return append(k, base...)
}

func childPrefix(dir string) []byte {
	return append([]byte(dir), 0)
}

// keyPath inverts nodeKey.
func keyPath(k []byte) string {
	for i, b := range k {
		if b == 0 {
			return fsapi.Join(string(k[:i]), string(k[i+1:]))
		}
	}
	return string(k)
}

// emptyTree is a namespace holding only the root directory.
func emptyTree() *iradix.Tree[*Node] {
	root := &Node{Stat: fsapi.Stat{ContentGeneration: 1, IsDir: true}}
	t, _, _ := iradix.New[*Node]().Insert(nodeKey(fsapi.Root), root)
	return t
}
