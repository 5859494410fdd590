//go:build race

package mastertest

// raceEnabled: this binary runs with the race detector, so ProcCell builds
// haspd with it too.
const raceEnabled = true
