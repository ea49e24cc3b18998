package app_test

import (
	"flag"
	"os"
	"testing"

	"switchyard/internal/race"
)

// TestMain runs up to 6 (3 under -race) of the package's parallel tests at
// once unless
// -parallel says otherwise: they spend their time waiting on pools, links
// and timers (failback_after, backoffs), not on the CPU, so the default of
// one per CPU left a 2-core machine mostly idle (120 s against 83 s).
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		n := "6"
		if race.Enabled {
			n = "3" // the race detector makes each test several times heavier
		}
		_ = flag.Set("test.parallel", n)
	}
	os.Exit(m.Run())
}
