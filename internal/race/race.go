//go:build !race

// Package race reports whether the race detector is compiled in, so tests
// can scale their load down under it.
package race

// Enabled is true when built with -race.
const Enabled = false
