//go:build race

package main

// raceEnabled: the test binary runs with the race detector, so the haspd
// processes it starts are built with it too.
const raceEnabled = true
