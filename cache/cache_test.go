package cache_test

import (
	"strings"
	"testing"

	"github.com/haspcell/hasp/cache"
	"github.com/haspcell/hasp/fsapi"
)

func newCache(t testing.TB, cfg *cache.Config) *cache.Cache {
	t.Helper()
	c, err := cache.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kinds lets a table test put and look up every kind of entry the same way.
var kinds = []struct {
	name string
	put  func(c *cache.Cache, path string, rev uint64) bool
	get  func(c *cache.Cache, path string) (rev uint64, ok bool)
}{
	{"contents",
		func(c *cache.Cache, p string, rev uint64) bool {
			return c.PutContents(p, rev, []byte("data"), fsapi.Stat{Size: 4, ModifiedRevision: rev})
		},
		func(c *cache.Cache, p string) (uint64, bool) { _, _, rev, ok := c.GetContents(p); return rev, ok }},
	{"stat",
		func(c *cache.Cache, p string, rev uint64) bool {
			return c.PutStat(p, rev, fsapi.Stat{ModifiedRevision: rev})
		},
		func(c *cache.Cache, p string) (uint64, bool) { _, rev, ok := c.GetStat(p); return rev, ok }},
	{"absent",
		func(c *cache.Cache, p string, rev uint64) bool { return c.PutAbsent(p, rev) },
		func(c *cache.Cache, p string) (uint64, bool) { return c.GetAbsent(p) }},
	{"dir",
		func(c *cache.Cache, p string, rev uint64) bool {
			return c.PutDir(p, rev, []fsapi.DirEntry{{Name: "x", Stat: fsapi.Stat{Instance: rev}}})
		},
		func(c *cache.Cache, p string) (uint64, bool) { _, rev, ok := c.GetDir(p); return rev, ok }},
	{"handle",
		func(c *cache.Cache, p string, rev uint64) bool {
			return c.PutHandle(p, rev, cache.Handle{Instance: 3, Stat: fsapi.Stat{Instance: 3}})
		},
		func(c *cache.Cache, p string) (uint64, bool) { _, rev, ok := c.GetHandle(p); return rev, ok }},
}

func kindByName(t *testing.T, name string) int {
	t.Helper()
	for i, k := range kinds {
		if k.name == name {
			return i
		}
	}
	t.Fatalf("no kind %q", name)
	return -1
}

func TestGetPut(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c := newCache(t, nil)
			if _, ok := k.get(c, "/a"); ok {
				t.Fatal("hit in an empty cache")
			}
			if !k.put(c, "/a", 7) {
				t.Fatal("Put refused")
			}
			if rev, ok := k.get(c, "/a"); !ok || rev != 7 {
				t.Fatalf("Get = rev %d, %v; want 7, true", rev, ok)
			}
			if _, ok := k.get(c, "/b"); ok {
				t.Fatal("hit for another path")
			}
			for _, other := range kinds {
				if _, ok := other.get(c, "/a"); ok && other.name != k.name && !(k.name == "contents" && other.name == "stat") {
					t.Errorf("a %s entry answers Get%s", k.name, other.name)
				}
			}
		})
	}
}

func TestGetValues(t *testing.T) {
	c := newCache(t, nil)
	st := fsapi.Stat{Instance: 4, ContentGeneration: 2, Size: 5}
	c.PutContents("/f", 10, []byte("hello"), st)
	if data, got, rev, ok := c.GetContents("/f"); !ok || string(data) != "hello" || got != st || rev != 10 {
		t.Errorf("GetContents = %q, %+v, %d, %v", data, got, rev, ok)
	}
	if got, rev, ok := c.GetStat("/f"); !ok || got != st || rev != 10 {
		t.Errorf("GetStat from contents = %+v, %d, %v", got, rev, ok)
	}
	newer := fsapi.Stat{Instance: 4, ContentGeneration: 2, Size: 5, LockGeneration: 1}
	c.PutStat("/f", 12, newer)
	if got, rev, ok := c.GetStat("/f"); !ok || got != newer || rev != 12 {
		t.Errorf("GetStat prefers the newer entry: got %+v, %d, %v", got, rev, ok)
	}
	ls := []fsapi.DirEntry{{Name: "a", Stat: st}, {Name: "b"}}
	c.PutDir("/d", 11, ls)
	if got, rev, ok := c.GetDir("/d"); !ok || len(got) != 2 || got[0] != ls[0] || got[1] != ls[1] || rev != 11 {
		t.Errorf("GetDir = %+v, %d, %v", got, rev, ok)
	}
	h := cache.Handle{Instance: 4, Stat: st}
	c.PutHandle("/f", 10, h)
	if got, rev, ok := c.GetHandle("/f"); !ok || got != h || rev != 10 {
		t.Errorf("GetHandle = %+v, %d, %v", got, rev, ok)
	}
}

func TestPutCopies(t *testing.T) {
	c := newCache(t, nil)
	data := []byte("abc")
	ls := []fsapi.DirEntry{{Name: "x"}}
	c.PutContents("/f", 1, data, fsapi.Stat{})
	c.PutDir("/d", 1, ls)
	data[0], ls[0].Name = 'X', "changed"
	if got, _, _, _ := c.GetContents("/f"); string(got) != "abc" {
		t.Errorf("contents changed with the caller's slice: %q", got)
	}
	if got, _, _ := c.GetDir("/d"); got[0].Name != "x" {
		t.Errorf("listing changed with the caller's slice: %q", got[0].Name)
	}
}

func TestInvalidate(t *testing.T) {
	tests := []struct {
		name    string
		path    string // where the entry is
		kind    string
		survive bool // after Invalidate("/a/b", 20)
	}{
		{"contents", "/a/b", "contents", false},
		{"stat", "/a/b", "stat", false},
		{"absent", "/a/b", "absent", false},
		{"handle", "/a/b", "handle", false},
		{"own listing", "/a/b", "dir", false},
		{"parent listing", "/a", "dir", false},
		{"parent stat", "/a", "stat", true},
		{"parent handle", "/a", "handle", true},
		{"parent absent", "/a", "absent", true},
		{"grandparent listing", "/", "dir", true},
		{"sibling contents", "/a/c", "contents", true},
		{"child contents", "/a/b/c", "contents", true},
		{"child listing", "/a/b/c", "dir", true},
		{"name prefix", "/a/bb", "stat", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, nil)
			k := kinds[kindByName(t, tt.kind)]
			if !k.put(c, tt.path, 10) {
				t.Fatal("Put refused")
			}
			c.Invalidate("/a/b", 20)
			if _, ok := k.get(c, tt.path); ok != tt.survive {
				t.Errorf("after Invalidate(/a/b): %s of %s cached = %v, want %v", tt.kind, tt.path, ok, tt.survive)
			}
		})
	}
	t.Run("root", func(t *testing.T) {
		c := newCache(t, nil)
		c.PutDir("/", 1, nil)
		c.PutStat("/", 1, fsapi.Stat{IsDir: true})
		c.Invalidate("/", 2)
		if c.Len() != 0 {
			t.Errorf("Len = %d after invalidating the root", c.Len())
		}
	})
}

// TestCrossing checks the crossing race: a reply read no later than an
// invalidation already received is refused, a newer one is cached.
func TestCrossing(t *testing.T) {
	tests := []struct {
		name    string
		path    string // Invalidate(path, 20) first
		putPath string
		kind    string
		rev     uint64
		want    bool
	}{
		{"older", "/a/b", "/a/b", "contents", 19, false},
		{"same revision", "/a/b", "/a/b", "contents", 20, false},
		{"newer", "/a/b", "/a/b", "contents", 21, true},
		{"older stat", "/a/b", "/a/b", "stat", 5, false},
		{"older absent", "/a/b", "/a/b", "absent", 20, false},
		{"newer absent", "/a/b", "/a/b", "absent", 21, true},
		{"older handle", "/a/b", "/a/b", "handle", 20, false},
		{"older own listing", "/a/b", "/a/b", "dir", 20, false},
		{"older parent listing", "/a/b", "/a", "dir", 20, false},
		{"newer parent listing", "/a/b", "/a", "dir", 21, true},
		{"older parent stat", "/a/b", "/a", "stat", 20, true},
		{"older parent absent", "/a/b", "/a", "absent", 20, true},
		{"older sibling", "/a/b", "/a/c", "contents", 1, true},
		{"older child", "/a", "/a/b", "contents", 1, true},
		{"older grandparent listing", "/a/b", "/", "dir", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, nil)
			k := kinds[kindByName(t, tt.kind)]
			c.Invalidate(tt.path, 20)
			if got := k.put(c, tt.putPath, tt.rev); got != tt.want {
				t.Fatalf("Put %s of %s at %d = %v, want %v", tt.kind, tt.putPath, tt.rev, got, tt.want)
			}
			if _, ok := k.get(c, tt.putPath); ok != tt.want {
				t.Errorf("cached = %v, want %v", ok, tt.want)
			}
			if want := uint64(map[bool]int{false: 1, true: 0}[tt.want]); c.Stats().Stale != want {
				t.Errorf("Stale = %d, want %d", c.Stats().Stale, want)
			}
		})
	}
}

func TestNewestEntryWins(t *testing.T) {
	tests := []struct {
		name   string
		first  uint64
		second uint64
		want   uint64 // rev cached afterwards
		ok     bool   // second Put's answer
	}{
		{"newer replaces", 10, 12, 12, true},
		{"same replaces", 10, 10, 10, true},
		{"older refused", 12, 10, 12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, &cache.Config{Shards: 1})
			c.PutStat("/a", tt.first, fsapi.Stat{})
			if got := c.PutStat("/a", tt.second, fsapi.Stat{}); got != tt.ok {
				t.Errorf("second Put = %v, want %v", got, tt.ok)
			}
			if _, rev, _ := c.GetStat("/a"); rev != tt.want {
				t.Errorf("cached rev %d, want %d", rev, tt.want)
			}
			if c.Len() != 1 || c.Bytes() != cache.EntryOverhead+2 {
				t.Errorf("Len, Bytes = %d, %d; want 1, %d", c.Len(), c.Bytes(), cache.EntryOverhead+2)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	tests := []struct {
		name  string
		setup func(c *cache.Cache)
		path  string
		rev   uint64
		want  bool
	}{
		{"at floor", nil, "/x", 10, false},
		{"below floor", nil, "/x", 3, false},
		{"above floor", nil, "/x", 11, true},
		{"lower flush keeps floor", func(c *cache.Cache) { c.Flush(5) }, "/x", 9, false},
		{"higher flush raises floor", func(c *cache.Cache) { c.Flush(15) }, "/x", 12, false},
		{"newer mark kept", func(c *cache.Cache) { c.Invalidate("/m", 30); c.Flush(20) }, "/m", 25, false},
		{"newer mark still passes newer", func(c *cache.Cache) { c.Invalidate("/m", 30); c.Flush(20) }, "/m", 31, true},
		{"older mark covered", func(c *cache.Cache) { c.Invalidate("/m", 8) }, "/m", 11, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, nil)
			for _, k := range kinds {
				k.put(c, "/e", 7)
			}
			c.Flush(10)
			if c.Len() != 0 || c.Bytes() != 0 {
				t.Fatalf("after Flush: Len %d, Bytes %d", c.Len(), c.Bytes())
			}
			if tt.setup != nil {
				tt.setup(c)
			}
			if got := c.PutContents(tt.path, tt.rev, nil, fsapi.Stat{}); got != tt.want {
				t.Errorf("Put at %d = %v, want %v", tt.rev, got, tt.want)
			}
		})
	}
}

func TestDisable(t *testing.T) {
	c := newCache(t, nil)
	for _, k := range kinds {
		k.put(c, "/a", 5)
	}
	c.Disable()
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Fatalf("after Disable: Len %d, Bytes %d", c.Len(), c.Bytes())
	}
	c.Invalidate("/b", 30) // received while disabled
	for _, k := range kinds {
		t.Run("disabled/"+k.name, func(t *testing.T) {
			if k.put(c, "/a", 40) {
				t.Error("Put accepted while disabled")
			}
			if _, ok := k.get(c, "/a"); ok {
				t.Error("Get hit while disabled")
			}
		})
	}
	if st := c.Stats(); st.Refused != uint64(len(kinds)) || st.Stale != 0 {
		t.Errorf("Refused, Stale = %d, %d; want %d, 0", st.Refused, st.Stale, len(kinds))
	}
	c.Enable()
	c.Enable() // idempotent
	for _, k := range kinds {
		t.Run("enabled/"+k.name, func(t *testing.T) {
			if !k.put(c, "/a", 40) {
				t.Error("Put refused after Enable")
			}
			if _, ok := k.get(c, "/a"); !ok {
				t.Error("Get missed after Enable")
			}
			if k.put(c, "/b", 30) {
				t.Error("invalidation received while disabled was forgotten")
			}
		})
	}
}

// TestLRU uses one shard so that the order is exact. Each entry below
// costs EntryOverhead + 2 + 100 bytes; the cache holds three.
func TestLRU(t *testing.T) {
	const size = cache.EntryOverhead + 2 + 100
	data := make([]byte, 100)
	tests := []struct {
		name    string
		touch   []string // Get after putting /a, /b, /c in order
		evicted string   // by putting /d
	}{
		{"oldest first", nil, "/a"},
		{"get refreshes", []string{"/a"}, "/b"},
		{"all touched", []string{"/c", "/a", "/b"}, "/c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, &cache.Config{Shards: 1, MaxBytes: 3 * size})
			for _, p := range []string{"/a", "/b", "/c"} {
				c.PutContents(p, 1, data, fsapi.Stat{})
			}
			for _, p := range tt.touch {
				c.GetContents(p)
			}
			c.PutContents("/d", 1, data, fsapi.Stat{})
			for _, p := range []string{"/a", "/b", "/c", "/d"} {
				if _, _, _, ok := c.GetContents(p); ok == (p == tt.evicted) {
					t.Errorf("%s cached = %v", p, ok)
				}
			}
			if st := c.Stats(); st.Evictions != 1 || c.Len() != 3 || c.Bytes() != 3*size {
				t.Errorf("Evictions %d, Len %d, Bytes %d; want 1, 3, %d", st.Evictions, c.Len(), c.Bytes(), 3*size)
			}
		})
	}
	t.Run("large entry evicts several", func(t *testing.T) {
		c := newCache(t, &cache.Config{Shards: 1, MaxBytes: 3 * size})
		for _, p := range []string{"/a", "/b", "/c"} {
			c.PutContents(p, 1, data, fsapi.Stat{})
		}
		c.PutContents("/d", 1, make([]byte, 2*size-cache.EntryOverhead-2), fsapi.Stat{})
		if _, _, _, ok := c.GetContents("/c"); !ok || c.Len() != 2 || c.Stats().Evictions != 2 {
			t.Errorf("want /c and /d left after 2 evictions; Len %d, stats %+v", c.Len(), c.Stats())
		}
	})
	t.Run("too large refused", func(t *testing.T) {
		c := newCache(t, &cache.Config{Shards: 1, MaxBytes: 3 * size})
		c.PutContents("/a", 1, data, fsapi.Stat{})
		if c.PutContents("/big", 1, make([]byte, 3*size), fsapi.Stat{}) {
			t.Error("an entry larger than the cache was cached")
		}
		if st := c.Stats(); st.Refused != 1 || st.Evictions != 0 || c.Len() != 1 {
			t.Errorf("stats %+v, Len %d", st, c.Len())
		}
	})
	t.Run("listing size", func(t *testing.T) {
		c := newCache(t, &cache.Config{Shards: 1})
		c.PutDir("/d", 1, []fsapi.DirEntry{{Name: "abc"}, {Name: "de"}})
		if b := c.Bytes(); b <= cache.EntryOverhead+2+5 {
			t.Errorf("Bytes = %d: listed stats are not counted", b)
		}
	})
}

// TestMarksBounded checks that forgetting a mark raises the floor. With
// room for two marks, the three invalidations below leave marks for /c and
// / (child) and forget /a and /b, so the floor ends at 6.
func TestMarksBounded(t *testing.T) {
	tests := []struct {
		name string
		path string
		kind string
		rev  uint64
		want bool
	}{
		{"unrelated at floor", "/x", "stat", 6, false},
		{"unrelated above floor", "/x", "stat", 7, true},
		{"forgotten path above floor", "/a", "stat", 7, true},
		{"kept mark", "/c", "stat", 7, false},
		{"kept mark, newer", "/c", "stat", 8, true},
		{"kept child mark", "/", "dir", 7, false},
		{"kept child mark, newer", "/", "dir", 8, true},
		{"kept child mark, stat", "/", "stat", 7, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t, &cache.Config{Shards: 1, MaxMarks: 2})
			c.Invalidate("/a", 5) // marks: /a, /
			c.Invalidate("/b", 6) // forgets /a (floor 5); marks: /b, /
			c.Invalidate("/c", 7) // forgets /b (floor 6); marks: /c, /
			if got := kinds[kindByName(t, tt.kind)].put(c, tt.path, tt.rev); got != tt.want {
				t.Errorf("Put %s of %s at %d = %v, want %v", tt.kind, tt.path, tt.rev, got, tt.want)
			}
			if st := c.Stats(); st.MarksForgotten != 2 {
				t.Errorf("MarksForgotten = %d, want 2", st.MarksForgotten)
			}
		})
	}
}

func TestStats(t *testing.T) {
	c := newCache(t, &cache.Config{Shards: 1, MaxBytes: 2 * (cache.EntryOverhead + 2)})
	c.PutStat("/a", 1, fsapi.Stat{}) // put
	c.PutStat("/b", 1, fsapi.Stat{}) // put
	c.GetStat("/a")                  // hit
	c.GetStat("/z")                  // miss
	c.PutStat("/c", 1, fsapi.Stat{}) // put, evicts /b
	c.GetStat("/b")                  // miss
	c.Invalidate("/a", 3)            // invalidation
	c.PutStat("/a", 2, fsapi.Stat{}) // stale
	c.PutStat("/c", 0, fsapi.Stat{}) // stale: older than the entry
	c.Disable()
	c.PutStat("/a", 9, fsapi.Stat{}) // refused
	c.GetStat("/c")                  // miss
	want := cache.Stats{Hits: 1, Misses: 3, Puts: 3, Stale: 2, Refused: 1, Invalidations: 1, Evictions: 1}
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v\nwant    %+v", got, want)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  cache.Config
		err  string
	}{
		{"zero means defaults", cache.Config{}, ""},
		{"defaults", cache.DefaultConfig(), ""},
		{"one shard", cache.Config{Shards: 1, MaxBytes: cache.EntryOverhead, MaxMarks: 1}, ""},
		{"shards not a power of two", cache.Config{Shards: 3}, "power of two"},
		{"too many shards", cache.Config{Shards: 2 * cache.MaxShards}, "power of two"},
		{"negative shards", cache.Config{Shards: -4}, "power of two"},
		{"negative bytes", cache.Config{MaxBytes: -1}, "max bytes"},
		{"bytes below a shard's overhead", cache.Config{Shards: 16, MaxBytes: 100}, "max bytes"},
		{"negative marks", cache.Config{MaxMarks: -1}, "max marks"},
		{"fewer marks than shards", cache.Config{Shards: 4, MaxMarks: 2}, "max marks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cache.New(&tt.cfg)
			if verr := tt.cfg.Validate(); (verr == nil) != (err == nil) {
				t.Errorf("Validate = %v but New = %v", verr, err)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "cache: ")):
				t.Errorf("New = %v, want an error about %q", err, tt.err)
			}
		})
	}
	if _, err := cache.New(nil); err != nil {
		t.Errorf("New(nil): %v", err)
	}
}
