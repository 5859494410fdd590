//go:build !race

package mastertest

const raceEnabled = false
