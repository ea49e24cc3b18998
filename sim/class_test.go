package sim

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFleetLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  FleetConfig
		want []string // worker@rate#class
	}{
		{"no classes", FleetConfig{User: "farm", Miners: 3, MaxSharesPerSecond: 2},
			[]string{"farm.0@2#0", "farm.1@2#0", "farm.2@2#0"}},
		{"prefixes of their own", FleetConfig{User: "sim", MaxSharesPerSecond: 1, Classes: []MinerClass{
			{Miners: 2, MaxSharesPerSecond: 10, User: "alpha"},
			{Miners: 1, User: "beta"},
		}}, []string{"alpha.0@10#0", "alpha.1@10#0", "beta.0@1#1"}},
		{"a shared prefix counts on", FleetConfig{User: "farm", MaxSharesPerSecond: 0.5, Classes: []MinerClass{
			{Miners: 1, MaxSharesPerSecond: 5},
			{Miners: 0, User: "empty"},
			{Miners: 2, MaxSharesPerSecond: 0.05, User: "farm"},
		}}, []string{"farm.0@5#0", "farm.1@0.05#2", "farm.2@0.05#2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Addr = "127.0.0.1:1"
			cfg, _, err := tc.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sp := range cfg.layout() {
				got = append(got, fmt.Sprintf("%s@%g#%d", sp.worker, sp.rate, sp.class))
			}
			if !slices.Equal(got, tc.want) || cfg.Miners != len(tc.want) {
				t.Fatalf("layout %v (%d miners), want %v", got, cfg.Miners, tc.want)
			}
		})
	}
}

func TestFleetClassErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  FleetConfig
		want string
	}{
		{"negative miners", FleetConfig{Classes: []MinerClass{{Miners: -1}, {Miners: 2}}}, "class 0: miners and rate must not be negative"},
		{"negative rate", FleetConfig{Classes: []MinerClass{{Miners: 1, MaxSharesPerSecond: -1}}}, "class 0: miners and rate"},
		{"no miners", FleetConfig{Classes: []MinerClass{{User: "a"}}}, "the classes have no miners"},
		{"miners disagree", FleetConfig{Miners: 4, Classes: []MinerClass{{Miners: 3}}}, "4 miners, but the classes add up to 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Addr = "127.0.0.1:1"
			_, err := StartFleet(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartFleet: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDialOrderIsAPermutation(t *testing.T) {
	if got := dialOrder(4, 0); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Fatalf("seed 0: %v, want index order", got)
	}
	a, b := dialOrder(50, 7), dialOrder(50, 7)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two orders")
	}
	if slices.Equal(a, dialOrder(50, 0)) {
		t.Fatal("seed 7 kept index order")
	}
	s := slices.Clone(a)
	slices.Sort(s)
	if !slices.Equal(s, dialOrder(50, 0)) {
		t.Fatalf("not a permutation: %v", a)
	}
}

// TestFleetClasses runs two classes at one pool: each miner authorizes
// under its class's prefix, no class submits faster than its cap allows,
// and the classes' counters add up to the fleet's.
func TestFleetClasses(t *testing.T) {
	var led syncBuffer
	p := startPool(t, PoolConfig{Ledger: &led, JobInterval: time.Hour})
	start := time.Now()
	f := startFleet(t, FleetConfig{Addr: p.Addr(), User: "sim", DialSeed: 3, Classes: []MinerClass{
		{Miners: 2, MaxSharesPerSecond: 40, User: "alpha"},
		{Miners: 3, MaxSharesPerSecond: 2, User: "beta"},
	}})
	waitFor(t, 20*time.Second, "40 shares from each alpha miner, one from each beta", func() bool {
		w := perWorker(led.entries(t))
		return w["alpha.0"] >= 40 && w["alpha.1"] >= 40 && w["beta.0"] > 0 && w["beta.1"] > 0 && w["beta.2"] > 0
	})
	f.Close()
	elapsed := time.Since(start).Seconds()
	p.Close()
	fs := f.Stats()
	if len(fs.Classes) != 2 {
		t.Fatalf("classes %+v", fs.Classes)
	}
	alpha, beta := fs.Classes[0], fs.Classes[1]
	t.Logf("alpha %+v", alpha)
	t.Logf("beta  %+v", beta)
	if alpha.User != "alpha" || alpha.Miners != 2 || alpha.MaxSharesPerSecond != 40 || beta.User != "beta" || beta.Miners != 3 {
		t.Fatalf("class identity: %+v %+v", alpha, beta)
	}
	// A capped miner's first share goes within one interval, and each
	// next one an interval later at the earliest.
	if limit := uint64(3 * (2*elapsed + 1)); beta.Submits > limit {
		t.Fatalf("beta submitted %d in %.1fs: more than its cap allows (%d)", beta.Submits, elapsed, limit)
	}
	if beta.Submits == 0 {
		t.Fatal("beta submitted nothing")
	}
	var sub, acc, rej, lost uint64
	var work, accWork float64
	for _, c := range fs.Classes {
		if c.Submits != c.Accepted+c.Rejected+c.Lost || c.Ready != 0 {
			t.Fatalf("class %s: submits %d != accepted %d + rejected %d + lost %d (ready %d after Close)",
				c.User, c.Submits, c.Accepted, c.Rejected, c.Lost, c.Ready)
		}
		if !near(c.Work, float64(c.Submits)*testDiff*hashesPerDifficulty) {
			t.Fatalf("class %s: work %g for %d shares at %g", c.User, c.Work, c.Submits, testDiff)
		}
		sub, acc, rej, lost = sub+c.Submits, acc+c.Accepted, rej+c.Rejected, lost+c.Lost
		work, accWork = work+c.Work, accWork+c.AcceptedWork
	}
	if sub != fs.Submits || acc != fs.Accepted || rej != fs.RejectedTotal() || lost != fs.Lost || !near(work, fs.Work) || !near(accWork, fs.AcceptedWork) {
		t.Fatalf("classes add up to submits %d accepted %d rejected %d lost %d work %g/%g; fleet %s", sub, acc, rej, lost, work, accWork, fs)
	}
	byWorker := perWorker(led.entries(t))
	names := make([]string, 0, len(byWorker))
	for w := range byWorker {
		names = append(names, w)
	}
	slices.Sort(names)
	if want := []string{"alpha.0", "alpha.1", "beta.0", "beta.1", "beta.2"}; !slices.Equal(names, want) {
		t.Fatalf("workers at the pool %v, want %v", names, want)
	}
	if uint64(byWorker["alpha.0"]+byWorker["alpha.1"]) != alpha.Accepted {
		t.Fatalf("pool credited alpha %d shares, the fleet counted %d", byWorker["alpha.0"]+byWorker["alpha.1"], alpha.Accepted)
	}
}

// TestFleetWithoutClassesReportsNone keeps FleetStats as it was for every
// existing caller.
func TestFleetWithoutClassesReportsNone(t *testing.T) {
	p := startPool(t, PoolConfig{})
	f := startFleet(t, FleetConfig{Addr: p.Addr(), Miners: 2, MaxSharesPerSecond: 20})
	waitFor(t, 10*time.Second, "shares", func() bool { return f.Stats().Accepted >= 4 })
	f.Close()
	if s := f.Stats(); s.Classes != nil {
		t.Fatalf("classes %+v without FleetConfig.Classes", s.Classes)
	}
}
