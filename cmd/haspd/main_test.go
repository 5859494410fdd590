package main

import "testing"

func TestMemLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ base, live, overhead, want int64 }{
		{64 * mib, 10 * mib, 5 * mib, 64 * mib},     // small replica: the configured limit
		{64 * mib, 200 * mib, 100 * mib, 400 * mib}, // thousands of sessions: follows the live heap
		{64 * mib, 40 * mib, 10 * mib, 70 * mib},    // just past the base
		{64 * mib, 0, -5, 64 * mib},                 // nonsense accounting never lowers it
	} {
		if got := memLimitFor(tc.base, tc.live, tc.overhead); got != tc.want {
			t.Errorf("memLimitFor(%d, %d, %d) = %d MiB, want %d MiB", tc.base/mib, tc.live/mib, tc.overhead, got/mib, tc.want/mib)
		}
	}
}
