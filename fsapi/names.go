package fsapi

import (
	"fmt"
	"strings"
)

const (
	// MaxNameLen is the longest full name, /ls/CELL/..., in bytes.
	MaxNameLen = 1024
	// MaxComponentLen is the longest single path component in bytes.
	MaxComponentLen = 255
	// LocalCell is the cell alias meaning "the cell I am connected to".
	LocalCell = "local"
	// Root is the path of a cell's root directory.
	Root = "/"
)

// ParseName checks a full name /ls/CELL/a/b and returns its cell and its path
// inside the cell ("/a/b", or "/" for /ls/CELL itself). Any error wraps
// ErrBadName and says what is wrong.
func ParseName(name string) (cell, path string, err error) {
	if len(name) > MaxNameLen {
		return "", "", badName(name, fmt.Sprintf("longer than %d bytes", MaxNameLen))
	}
	rest, ok := strings.CutPrefix(name, "/ls/")
	if !ok {
		return "", "", badName(name, `must start with "/ls/CELL"`)
	}
	cell, path, slash := strings.Cut(rest, "/")
	if err := checkComponent(cell); err != nil {
		return "", "", badName(name, "cell name "+err.Error())
	}
	if slash && path == "" {
		return "", "", badName(name, "trailing slash")
	}
	if path == "" {
		return cell, Root, nil
	}
	path = "/" + path
	if err := CheckPath(path); err != nil {
		return "", "", badName(name, strings.TrimPrefix(err.Error(), ErrBadName.Error()+": "))
	}
	return cell, path, nil
}

// CheckPath checks a path inside a cell: "/" or "/a/b" with valid components
// and no trailing slash.
func CheckPath(path string) error {
	if path == Root {
		return nil
	}
	if !strings.HasPrefix(path, "/") {
		return badName(path, `path must start with "/"`)
	}
	if len(path) > MaxNameLen {
		return badName(path, fmt.Sprintf("longer than %d bytes", MaxNameLen))
	}
	for c := range strings.SplitSeq(path[1:], "/") {
		if err := checkComponent(c); err != nil {
			return badName(path, err.Error())
		}
	}
	return nil
}

// CheckCellName checks a cell name as given to a replica. "local" is
// reserved because clients use it as an alias.
func CheckCellName(cell string) error {
	if cell == LocalCell {
		return badName(cell, `cell name "local" is reserved`)
	}
	if err := checkComponent(cell); err != nil {
		return badName(cell, "cell name "+err.Error())
	}
	return nil
}

func checkComponent(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("has an empty component (double or trailing slash)")
	case c == "." || c == "..":
		return fmt.Errorf("component %q is not allowed", c)
	case len(c) > MaxComponentLen:
		return fmt.Errorf("component longer than %d bytes", MaxComponentLen)
	}
	for i := 0; i < len(c); i++ {
		if !componentByte(c[i]) {
			return fmt.Errorf("component %q has byte %q; allowed are A-Z a-z 0-9 . _ -", c, c[i])
		}
	}
	return nil
}

func componentByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '.' || b == '_' || b == '-'
}

func badName(name, why string) error {
	if len(name) > 80 {
		name = name[:77] + "..."
	}
	return fmt.Errorf("%w: %q: %s", ErrBadName, name, why)
}

// FullName returns /ls/CELL/path for a path inside a cell.
func FullName(cell, path string) string {
	if path == Root {
		return "/ls/" + cell
	}
	return "/ls/" + cell + path
}

// Parent returns the parent of a path inside a cell, and "/" for "/".
func Parent(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return Root
	}
	return path[:i]
}

// Base returns the last component of a path, and "" for "/".
func Base(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// Join appends a component to a path inside a cell.
func Join(dir, name string) string {
	if dir == Root {
		return "/" + name
	}
	return dir + "/" + name
}
