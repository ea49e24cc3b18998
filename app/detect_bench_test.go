package app_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
	"switchyard/stratum"
)

// TestDetectTiming measures, for BENCHMARKS.md, a silent blackhole of the
// primary under share flow with pools that answer in 20-50 ms (each pool
// behind a sim.Link of 10-25 ms each way), with the learned deadline (the
// default config) and, in the same run and interleaved, with the deadline
// fixed at submit_timeout (submit_timeout_min = submit_timeout = 3s: what
// switchyard did before). Columns: ms from the fault to the switch, to the
// first share accepted at the backup, to 95% and to all of the miners
// having a share accepted there. It runs only with SWITCHYARD_DETECT_BENCH=1:
//
//	SWITCHYARD_DETECT_BENCH=1 flock /tmp/switchyard-bench.lock go test -run TestDetectTiming -v -timeout 60m ./app/
//
// SWITCHYARD_FAILOVER_BENCH_RUNS (5), _MINERS (2000) and _RATE (2) change
// the load, as for TestFailoverTiming.
func TestDetectTiming(t *testing.T) {
	if os.Getenv("SWITCHYARD_DETECT_BENCH") == "" {
		t.Skip("set SWITCHYARD_DETECT_BENCH=1 to measure detection times (takes minutes)")
	}
	runs := envInt(t, "SWITCHYARD_FAILOVER_BENCH_RUNS", 5)
	miners := envInt(t, "SWITCHYARD_FAILOVER_BENCH_MINERS", 2000)
	rate := float64(envInt(t, "SWITCHYARD_FAILOVER_BENCH_RATE", 2))
	ceil := config.Default().Failover.SubmitTimeout.Duration()
	scenarios := []struct {
		name  string
		floor time.Duration
	}{
		{"fixed deadline (submit_timeout_min = submit_timeout = 3s, as before)", ceil},
		{"learned deadline (default: submit_timeout_min 500ms, submit_timeout 3s)", config.Default().Failover.SubmitTimeoutMin.Duration()},
	}
	cols := []string{"switch", "first share", "95% of miners", "all miners"}
	res := make([][][]time.Duration, len(scenarios))
	for i := range runs {
		for k, sc := range scenarios {
			t.Run(fmt.Sprintf("%s/%d", sc.name, i+1), func(t *testing.T) {
				sw, shares := timeBlackhole(t, miners, rate, sc.floor, ceil)
				row := []time.Duration{sw, shares[0], shares[(len(shares)*95+99)/100-1], -1}
				if len(shares) == miners {
					row[3] = shares[len(shares)-1]
				}
				t.Logf("%s, run %d (ms): switch %s, first %s, 95%% %s, all %s", sc.name, i+1, fmtMS(row[0]), fmtMS(row[1]), fmtMS(row[2]), fmtMS(row[3]))
				res[k] = append(res[k], row)
			})
		}
	}
	var report strings.Builder
	fmt.Fprintf(&report, "%d miners at up to %g shares/s each, pool answers in 20-50 ms, %d runs per scenario (interleaved); ms after the fault, median / max (every run)\n", miners, rate, runs)
	fmt.Fprintf(&report, "| deadline | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for k, sc := range scenarios {
		fmt.Fprintf(&report, "| %s |", sc.name)
		for c := range cols {
			var ds []time.Duration
			var each []string
			for _, row := range res[k] {
				ds = append(ds, row[c])
				each = append(each, fmtMS(row[c]))
			}
			if len(ds) == 0 {
				report.WriteString(" - |")
				continue
			}
			slices.Sort(ds)
			fmt.Fprintf(&report, " **%s** / %s (%s) |", fmtMS(ds[len(ds)/2]), fmtMS(ds[len(ds)-1]), strings.Join(each, ", "))
		}
		report.WriteString("\n")
	}
	t.Logf("detection timing:\n%s", report.String())
}

// timeBlackhole runs one measurement: miners on p0, p1 the hot standby,
// both behind 10-25 ms links; p0 freezes (sim.FaultBlackhole: TCP up,
// nothing read or written).
func timeBlackhole(t *testing.T, miners int, rate float64, floor, ceil time.Duration) (time.Duration, []time.Duration) {
	const diff = 1e-8
	first := &firstAccepts{first: map[string]time.Time{}}
	r, _ := linkedRig(t, 3, func(i int, c *sim.LinkConfig) {
		c.Latency, c.Jitter = 17500*time.Microsecond, 7500*time.Microsecond
	}, func(i int, c *sim.PoolConfig) {
		c.Difficulty = diff
		c.Extranonce2Size = 8
		c.Ledger = nil
		if i == 1 {
			c.Ledger = first
		}
	}, func(c *config.Config) {
		d := config.Default()
		c.Failover = d.Failover
		c.Failover.SubmitTimeout = config.Duration(ceil)
		c.Failover.SubmitTimeoutMin = config.Duration(floor)
		c.Failover.FailbackAfter = config.Duration(time.Hour)
		c.Difficulty.Initial, c.Difficulty.Min, c.Difficulty.Max = diff, diff, diff
		c.Server.Extranonce1Size = d.Server.Extranonce1Size
		c.Server.WorkerMode = config.WorkerModePerWorker
		c.Metrics.Listen = ""
	})
	fleet := r.startFleet(miners, func(c *sim.FleetConfig) {
		c.MaxSharesPerSecond = rate
		c.RampUp = 3 * time.Second
	})
	waitFor(t, 60*time.Second, "every miner mining on p0", func() bool { return fleet.Stats().Ready == int64(miners) })
	r.waitMining(fleet, 0, miners)
	time.Sleep(2 * time.Second) // the deadline has learned from thousands of answers
	w := r.watch()
	want := (miners*95 + 99) / 100
	tDark := time.Now()
	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultBlackhole}); err != nil {
		t.Fatal(err)
	}
	deadline := tDark.Add(2*ceil + 30*time.Second)
	for first.count() < miners && time.Now().Before(deadline) {
		if first.count() >= want && time.Now().After(tDark.Add(2*ceil+5*time.Second)) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if first.count() < want {
		t.Fatalf("only %d of %d miners had a share accepted at p1", first.count(), miners)
	}
	sw, ok := w.firstTo("p1", tDark)
	if !ok {
		t.Fatal("no switch to p1 recorded")
	}
	w.stop()
	r.checkConnected(fleet, miners)
	shares := first.since(t, tDark)
	_ = fleet.Close()
	if err := r.pools[0].SetFault(sim.Fault{}); err != nil { // nothing left pending for Stop's drain
		t.Fatal(err)
	}
	return sw.at.Sub(tDark), shares
}

// TestLinkSoak runs switchyard for SWITCHYARD_LINK_SOAK (a duration, e.g.
// "30m") over two links and reports every switch and false alarm, for
// BENCHMARKS.md:
//
//   - satellite: p0 behind a healthy link of 300 ms ± 100 ms each way
//     (answers in 600 ms ± 200 ms), stalling for 2 s every
//     SWITCHYARD_LINK_SOAK_STALL_EVERY (5m);
//   - fast: p0 answering in 20-50 ms, with the same stalls.
//
// Each stall must cost no switch longer than the stall, and every move away
// from p0 must come back as a counted false alarm.
//
//	SWITCHYARD_LINK_SOAK=30m flock /tmp/switchyard-bench.lock go test -run TestLinkSoak -v -timeout 90m ./app/
func TestLinkSoak(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("SWITCHYARD_LINK_SOAK"))
	if err != nil || dur <= 0 {
		t.Skip("set SWITCHYARD_LINK_SOAK=30m (a duration) to soak switchyard over stalling links")
	}
	every := 5 * time.Minute
	if s := os.Getenv("SWITCHYARD_LINK_SOAK_STALL_EVERY"); s != "" {
		if every, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	const stall = 2 * time.Second
	miners := envInt(t, "SWITCHYARD_FAILOVER_BENCH_MINERS", 200)
	for _, sc := range []struct {
		name            string
		latency, jitter time.Duration
	}{
		{"satellite 600±200ms", 300 * time.Millisecond, 100 * time.Millisecond},
		{"fast 20-50ms", 17500 * time.Microsecond, 7500 * time.Microsecond},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			r, links := linkedRig(t, 2, func(i int, c *sim.LinkConfig) {
				c.Latency, c.Jitter = sc.latency, sc.jitter
				if i == 0 {
					c.StallEvery, c.StallFor = every, stall
				}
			}, func(i int, c *sim.PoolConfig) {
				c.JobInterval, c.CleanEvery = 30*time.Second, 4
			}, func(c *config.Config) {
				d := config.Default()
				c.Failover = d.Failover
				c.Failover.Standby = 1
				c.Metrics.Listen = ""
			})
			fleet := r.startFleet(miners, func(c *sim.FleetConfig) { c.MaxSharesPerSecond = 1 })
			r.waitMining(fleet, 0, miners)
			w := r.watch()
			t0 := time.Now()
			time.Sleep(dur)
			w.stop()
			spells := w.returnsTo("p1", t0, time.Now())
			longest := time.Duration(0)
			for _, s := range spells {
				longest = max(longest, s.stay)
			}
			alarms := r.counter("switchyard_pool_false_alarms_total", "pool", "p0")
			quick := r.counter("switchyard_failovers_total", "from", "p1", "to", "p0", "reason", "false_alarm")
			lost := r.lostTimeouts("p0")
			st := links[0].Stats()
			t.Logf("%s over %s: %d stalls of %s; %d switches to p1 (longest stay %s), %v false alarms counted, %v quick returns, %v shares lost to submit_timeout, %v rejected by p0; miners accepted %d",
				sc.name, dur, st.Stalls, stall, len(spells), longest.Round(time.Millisecond), alarms, quick, lost,
				r.counter("switchyard_pool_shares_total", "pool", "p0", "result", "rejected"), fleet.Stats().Accepted)
			if longest > stall {
				t.Errorf("a switch lasted %s, longer than the %s stall", longest, stall)
			}
			if float64(len(spells)) != alarms {
				t.Errorf("%d switches to p1, %v false alarms counted", len(spells), alarms)
			}
			r.checkConnected(fleet, miners)
		})
	}
}

// TestUpstreamBytes measures, for BENCHMARKS.md, the bytes that cross the
// pool's uplink for SWITCHYARD_BYTES_BENCH_MINERS (1000) miners over
// SWITCHYARD_BYTES_BENCH (a duration, e.g. "2m"), scaled to an hour: the
// fleet straight at the pool (every miner its own connection) against the
// same fleet through switchyard (one session per lane, plus the hot
// standby's), both through a sim.Link that counts bytes each way. The pool
// sends a job every 30 s (every 4th a new block); pool difficulty and
// miner difficulty are equal, so switchyard forwards every share (the most
// it can send).
//
//	SWITCHYARD_BYTES_BENCH=2m flock /tmp/switchyard-bench.lock go test -run TestUpstreamBytes -v -timeout 30m ./app/
func TestUpstreamBytes(t *testing.T) {
	dur, err := time.ParseDuration(os.Getenv("SWITCHYARD_BYTES_BENCH"))
	if err != nil || dur <= 0 {
		t.Skip("set SWITCHYARD_BYTES_BENCH=2m (a duration) to measure upstream bytes")
	}
	miners := envInt(t, "SWITCHYARD_BYTES_BENCH_MINERS", 1000)
	const diff = 1e-7
	const rate = 0.1 // shares/s per miner: vardiff's one per 10 s
	poolCfg := func(c *sim.PoolConfig) {
		c.Difficulty, c.Extranonce1Size, c.Extranonce2Size = diff, 4, 8
		c.JobInterval, c.CleanEvery = 30*time.Second, 4
	}
	perHour := func(b uint64) float64 { return float64(b) / dur.Seconds() * 3600 / 1e6 }

	t.Run("direct", func(t *testing.T) {
		pc := sim.PoolConfig{}
		poolCfg(&pc)
		p, err := sim.StartPool(pc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		l := startLinkTo(t, p.Addr())
		f, err := sim.StartFleet(t.Context(), sim.FleetConfig{Addr: l.Addr(), Miners: miners, User: "acct0.farm",
			VersionRolling: true, MaxSharesPerSecond: rate, RampUp: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		waitFor(t, 60*time.Second, "the fleet connected", func() bool { return f.Stats().Ready == int64(miners) })
		s0, a0 := l.Stats(), p.Stats().Accepted
		time.Sleep(dur)
		s1, a1 := l.Stats(), p.Stats().Accepted
		t.Logf("direct, %d miners, %s: up %d B, down %d B; per hour up %.2f MB, down %.2f MB; %d shares accepted (%.0f B up per share)",
			miners, dur, s1.BytesUp-s0.BytesUp, s1.BytesDown-s0.BytesDown, perHour(s1.BytesUp-s0.BytesUp), perHour(s1.BytesDown-s0.BytesDown),
			a1-a0, float64(s1.BytesUp-s0.BytesUp)/float64(max(a1-a0, 1)))
	})
	t.Run("switchyard", func(t *testing.T) {
		r, links := linkedRig(t, 2, nil, func(i int, c *sim.PoolConfig) { poolCfg(c) }, func(c *config.Config) {
			d := config.Default()
			c.Failover = d.Failover
			c.Server.Extranonce1Size = d.Server.Extranonce1Size
			c.Difficulty.Initial, c.Difficulty.Min, c.Difficulty.Max = diff, diff, diff
			c.Metrics.Listen = ""
		})
		f := r.startFleet(miners, func(c *sim.FleetConfig) { c.MaxSharesPerSecond, c.RampUp = rate, 5*time.Second })
		waitFor(t, 60*time.Second, "the fleet connected", func() bool { return f.Stats().Ready == int64(miners) })
		s0, b0, a0 := links[0].Stats(), links[1].Stats(), r.pools[0].Stats().Accepted
		time.Sleep(dur)
		s1, b1, a1 := links[0].Stats(), links[1].Stats(), r.pools[0].Stats().Accepted
		t.Logf("switchyard, %d miners, %s: active pool up %d B, down %d B; per hour up %.2f MB, down %.2f MB; %d shares accepted (%.0f B up per share); hot standby per hour up %.3f MB, down %.3f MB; %v forwarded",
			miners, dur, s1.BytesUp-s0.BytesUp, s1.BytesDown-s0.BytesDown, perHour(s1.BytesUp-s0.BytesUp), perHour(s1.BytesDown-s0.BytesDown),
			a1-a0, float64(s1.BytesUp-s0.BytesUp)/float64(max(a1-a0, 1)), perHour(b1.BytesUp-b0.BytesUp), perHour(b1.BytesDown-b0.BytesDown),
			r.counter("switchyard_pool_shares_total", "pool", "p0", "result", "accepted"))
		if got := r.counter("switchyard_shares_total", "result", "lost", "reason", stratum.ReasonNoUpstream.String()); got != 0 {
			t.Errorf("%v shares lost", got)
		}
	})
}

func startLinkTo(t *testing.T, target string) *sim.Link {
	t.Helper()
	l, err := sim.StartLink(sim.LinkConfig{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
