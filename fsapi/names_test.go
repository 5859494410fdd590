package fsapi

import (
	"errors"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name, cell, path string
		ok               bool
	}{
		{"/ls/dev", "dev", "/", true},
		{"/ls/dev/", "", "", false},
		{"/ls/dev/a", "dev", "/a", true},
		{"/ls/local/a/b.c/d_e-f", "local", "/a/b.c/d_e-f", true},
		{"/ls/dev/a//b", "", "", false},
		{"/ls/dev/a/", "", "", false},
		{"/ls/dev/./a", "", "", false},
		{"/ls/dev/a/..", "", "", false},
		{"/ls/dev/a b", "", "", false},
		{"/ls/dev/ä", "", "", false},
		{"/ls//a", "", "", false},
		{"/ls/", "", "", false},
		{"/ls", "", "", false},
		{"ls/dev/a", "", "", false},
		{"", "", "", false},
		{"/ls/dev/" + strings.Repeat("x", 255), "dev", "/" + strings.Repeat("x", 255), true},
		{"/ls/dev/" + strings.Repeat("x", 256), "", "", false},
		{"/ls/dev" + strings.Repeat("/abcdefg", 127), "dev", strings.Repeat("/abcdefg", 127), true},
		{"/ls/dev" + strings.Repeat("/abcdefg", 128), "", "", false},
		{"/ls/dev/a\x00b", "", "", false},
	}
	for _, tt := range tests {
		cell, path, err := ParseName(tt.name)
		if tt.ok != (err == nil) {
			t.Errorf("ParseName(%q) err = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Errorf("ParseName(%q) err %v does not wrap ErrBadName", tt.name, err)
			}
			continue
		}
		if cell != tt.cell || path != tt.path {
			t.Errorf("ParseName(%q) = %q, %q; want %q, %q", tt.name, cell, path, tt.cell, tt.path)
		}
	}
}

func TestPathHelpers(t *testing.T) {
	tests := []struct{ path, parent, base string }{
		{"/", "/", ""},
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
		{"/a/b/c", "/a/b", "c"},
	}
	for _, tt := range tests {
		if got := Parent(tt.path); got != tt.parent {
			t.Errorf("Parent(%q) = %q, want %q", tt.path, got, tt.parent)
		}
		if got := Base(tt.path); got != tt.base {
			t.Errorf("Base(%q) = %q, want %q", tt.path, got, tt.base)
		}
		if tt.path != "/" {
			if got := Join(tt.parent, tt.base); got != tt.path {
				t.Errorf("Join(%q, %q) = %q, want %q", tt.parent, tt.base, got, tt.path)
			}
		}
	}
	if FullName("dev", "/") != "/ls/dev" || FullName("dev", "/a") != "/ls/dev/a" {
		t.Error("FullName")
	}
}

func TestCheckCellName(t *testing.T) {
	for _, c := range []string{"local", "", "a/b", ".."} {
		if CheckCellName(c) == nil {
			t.Errorf("CheckCellName(%q) accepted", c)
		}
	}
	if err := CheckCellName("dev"); err != nil {
		t.Error(err)
	}
}

// FuzzParseName checks that ParseName never panics and that whatever it
// accepts round-trips through FullName and passes CheckPath.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"/ls/dev", "/ls/dev/a/b", "/ls/local/x", "/ls/dev/a//b", "/ls/dev/..", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		cell, path, err := ParseName(name)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
			return
		}
		if got := FullName(cell, path); got != name {
			t.Fatalf("FullName(ParseName(%q)) = %q", name, got)
		}
		if err := CheckPath(path); err != nil {
			t.Fatalf("accepted path %q fails CheckPath: %v", path, err)
		}
	})
}
