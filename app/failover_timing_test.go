package app_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
)

// TestFailoverTiming measures, for BENCHMARKS.md, how long a large fleet
// goes without a pool when the primary of three goes dark: from the fault
// to switchyard's switch, to the switch duration switchyard itself reports
// (switchyard_failover_duration_seconds: first sign of darkness to the
// backup's job written to every miner), to the backup's job reaching 95%
// of the miners, to the first share accepted at the backup, and to 95%
// (and all) of the miners having a share accepted there. Then the primary
// recovers, and it measures the failback: from the restore to the primary
// serving miners again and its job reaching 95% of them. Per run and as
// median and maximum. It runs only with SWITCHYARD_FAILOVER_BENCH=1 (about
// 15 minutes, most of it failback holds):
//
//	SWITCHYARD_FAILOVER_BENCH=1 go test -run TestFailoverTiming -v -timeout 60m ./app/
//
// SWITCHYARD_FAILOVER_BENCH_RUNS (5), _MINERS (2000) and _RATE (2 shares/s
// per miner) change the load. switchyard runs with the default [failover]
// config (dial_timeout 3s, submit_timeout 3s, job_timeout 120s, keepalive
// 5s, user_timeout 10s, failback_after 60s, standby 1, backoff 0.5s..30s)
// and per-worker mode, so the backup pool's ledger names the miner of
// every share; blackhole is also measured with submit_timeout 1s (without
// failback). Shares cost about 43 hashes (difficulty 1e-8) so that the
// fleet's hashing leaves the CPU to switchyard.
func TestFailoverTiming(t *testing.T) {
	if os.Getenv("SWITCHYARD_FAILOVER_BENCH") == "" {
		t.Skip("set SWITCHYARD_FAILOVER_BENCH=1 to measure failover times (takes minutes)")
	}
	runs := envInt(t, "SWITCHYARD_FAILOVER_BENCH_RUNS", 5)
	miners := envInt(t, "SWITCHYARD_FAILOVER_BENCH_MINERS", 2000)
	rate := float64(envInt(t, "SWITCHYARD_FAILOVER_BENCH_RATE", 2))
	def := config.Default().Failover.SubmitTimeout.Duration()
	scenarios := []struct {
		name          string
		mode          sim.FaultMode
		submitTimeout time.Duration
		failback      bool
	}{
		{"close, default config", sim.FaultClose, def, true},
		{"blackhole, default config", sim.FaultBlackhole, def, true},
		{"blackhole, submit_timeout 1s", sim.FaultBlackhole, time.Second, false},
	}
	cols := []string{"switch", "switch (switchyard)", "job to 95%", "first share", "95% of miners", "all miners",
		"failback", "failback job to 95%"}
	var report strings.Builder
	fmt.Fprintf(&report, "%d miners at up to %g shares/s each, 3 pools, %d runs per scenario; ms after the fault (failback: after the restore), median / max (every run)\n", miners, rate, runs)
	fmt.Fprintf(&report, "| scenario | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, sc := range scenarios {
		var res [][]time.Duration // per run, one per column; < 0: never or not measured
		for i := range runs {
			t.Run(fmt.Sprintf("%s/%d", sc.name, i+1), func(t *testing.T) {
				m := timeFailover(t, miners, rate, sc.mode, sc.submitTimeout, sc.failback)
				shares := m.shares
				row := []time.Duration{m.switched, m.reported, m.jobs95, shares[0], shares[(len(shares)*95+99)/100-1], -1,
					m.failback, m.failbackJobs95}
				if len(shares) == miners {
					row[5] = shares[len(shares)-1]
				}
				var s []string
				for k, d := range row {
					s = append(s, cols[k]+" "+fmtMS(d))
				}
				t.Logf("%s, run %d (ms): %s", sc.name, i+1, strings.Join(s, ", "))
				res = append(res, row)
			})
		}
		fmt.Fprintf(&report, "| %s |", sc.name)
		for k := range cols {
			var ds []time.Duration
			var each []string
			for _, row := range res {
				ds = append(ds, row[k])
				each = append(each, fmtMS(row[k]))
			}
			if len(ds) == 0 || slices.Max(ds) < 0 {
				report.WriteString(" - |")
				continue
			}
			slices.Sort(ds)
			fmt.Fprintf(&report, " **%s** / %s (%s) |", fmtMS(ds[len(ds)/2]), fmtMS(ds[len(ds)-1]), strings.Join(each, ", "))
		}
		report.WriteString("\n")
	}
	t.Logf("failover timing:\n%s", report.String())
}

// failoverTimes is one measurement, as durations from the fault (failback:
// from the restore).
type failoverTimes struct {
	switched       time.Duration   // switchyard made p1 the active pool
	reported       time.Duration   // switchyard's own switch duration (histogram observation); < 0: none
	jobs95         time.Duration   // 95% of the miners got p1's job; < 0: never
	shares         []time.Duration // sorted: each miner's first share accepted at p1
	failback       time.Duration   // p0 serving miners again; < 0: not measured
	failbackJobs95 time.Duration   // 95% of the miners got p0's job again; < 0: not measured or never
}

// timeFailover runs one measurement: miners mine on p0 (p1 the hot
// standby, p2 the next backup), then p0 goes dark with mode; with
// failback, p0 then recovers and miners must return to it.
func timeFailover(t *testing.T, miners int, rate float64, mode sim.FaultMode, submitTimeout time.Duration, failback bool) failoverTimes {
	const diff = 1e-8
	first := &firstAccepts{first: map[string]time.Time{}}
	r := newRig(t, 3, func(i int, c *sim.PoolConfig) {
		c.Difficulty = diff
		c.Extranonce2Size = 8
		c.Ledger = nil
		if i == 1 {
			c.Ledger = first
		}
	}, func(c *config.Config) {
		d := config.Default()
		c.Failover = d.Failover
		c.Failover.SubmitTimeout = config.Duration(submitTimeout)
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
	time.Sleep(time.Second)
	w := r.watch()
	want := uint64((miners*95 + 99) / 100)

	sum0, n0 := r.histogram("switchyard_failover_duration_seconds")
	jobs0 := fleet.Stats().Jobs
	tDark := time.Now()
	if err := r.pools[0].SetFault(sim.Fault{Mode: mode}); err != nil {
		t.Fatal(err)
	}
	m := failoverTimes{jobs95: -1, reported: -1, failback: -1, failbackJobs95: -1}
	deadline := tDark.Add(2*submitTimeout + 30*time.Second)
	for first.count() < miners && time.Now().Before(deadline) {
		if m.jobs95 < 0 && fleet.Stats().Jobs >= jobs0+want {
			m.jobs95 = time.Since(tDark)
		}
		if first.count() >= int(want) && time.Now().After(tDark.Add(2*submitTimeout+5*time.Second)) {
			break // the stragglers had their chance
		}
		time.Sleep(5 * time.Millisecond)
	}
	if first.count() < int(want) {
		t.Fatalf("only %d of %d miners had a share accepted at p1 after %s", first.count(), miners, time.Since(tDark))
	}
	sw, ok := w.firstTo("p1", tDark)
	if !ok {
		t.Fatal("no switch to p1 recorded")
	}
	m.switched = sw.at.Sub(tDark)
	m.shares = first.since(t, tDark)
	if sum, n := r.histogram("switchyard_failover_duration_seconds"); n == n0+1 {
		m.reported = time.Duration((sum - sum0) * float64(time.Second))
	} else {
		t.Errorf("switchyard observed %d switch durations, want 1", n-n0)
	}
	r.checkConnected(fleet, miners)
	if !failback {
		w.stop()
		return m
	}

	hold := r.cfg.Failover.FailbackAfter.Duration()
	jobsR := fleet.Stats().Jobs
	tRestore := time.Now()
	if err := r.pools[0].SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
	deadline = tRestore.Add(hold + r.cfg.Failover.BackoffMax.Duration() + 30*time.Second)
	for m.failbackJobs95 < 0 && time.Now().Before(deadline) {
		if m.failback < 0 && r.app.Pools.Active() == "p0" {
			m.failback = time.Since(tRestore)
		}
		if m.failback >= 0 && fleet.Stats().Jobs >= jobsR+want {
			m.failbackJobs95 = time.Since(tRestore)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.stop()
	if back, ok := w.firstTo("p0", tRestore); ok {
		m.failback = back.at.Sub(tRestore)
	}
	if m.failback < hold {
		t.Errorf("failback after %s, before failback_after %s", m.failback, hold)
	}
	r.checkConnected(fleet, miners)
	return m
}

// histogram returns a switchyard histogram's sample sum and count.
func (r *rig) histogram(name string) (float64, uint64) {
	r.t.Helper()
	mfs, err := r.app.Registry.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				return h.GetSampleSum(), h.GetSampleCount()
			}
		}
	}
	return 0, 0
}

// firstAccepts is a pool ledger that keeps, per worker, the time of its
// first accepted share.
type firstAccepts struct {
	mu    sync.Mutex
	first map[string]time.Time
	bad   string
}

// Write takes one ledger line (the pool writes each entry in one Write).
func (f *firstAccepts) Write(p []byte) (int, error) {
	var e sim.LedgerEntry
	err := json.Unmarshal(p, &e)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil:
		f.bad = err.Error()
	case e.Result == sim.ResultAccepted:
		if _, ok := f.first[e.Worker]; !ok {
			f.first[e.Worker] = e.T
		}
	}
	return len(p), nil
}

func (f *firstAccepts) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.first)
}

// since returns, sorted, each worker's first acceptance time minus t0.
func (f *firstAccepts) since(t *testing.T, t0 time.Time) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bad != "" {
		t.Fatalf("unreadable ledger line: %s", f.bad)
	}
	var out []time.Duration
	for w, at := range f.first {
		if !strings.HasPrefix(w, "acct1.farm.") {
			t.Fatalf("p1 saw worker %q: per-worker names missing", w)
		}
		out = append(out, at.Sub(t0))
	}
	slices.Sort(out)
	return out
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

func fmtMS(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}
