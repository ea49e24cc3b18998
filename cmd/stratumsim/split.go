package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"switchyard/sim"
)

// The split run measures a route's weighted split through a switchyard
// binary: three simulated pools in one route, A and B of one priority
// sharing the route's work by weight and C a backup ranked after them, and
// a fleet of miners in hashrate classes. The miners' difficulty is fixed
// (switchyard's [difficulty] initial = min = max) and equal to the pools'
// (fixed too: stratumsim's own pool profile has no vardiff), so every
// share a miner finds is forwarded, and a miner's hashrate is exactly its
// cap × the difficulty × 2^32. What the split achieved is measured at the
// pools: each pool's credited work (sim.PoolStats.CreditedWork). The pools
// and the fleet run in this process, switchyard in its own.

// Pool indices of the split run.
const (
	poolA = iota
	poolB
	poolC
	numSplitPools
)

var splitPoolNames = [numSplitPools]string{"A", "B", "C"}

// splitRoute is the name of the run's route, its metrics' route label.
const splitRoute = "farm"

type splitOptions struct {
	switchyard, out, classes, firmware, dark, logLevel string
	weights                                            string
	miners                                             int
	diff, tolerance, takeover, movesGoal               float64
	warmup, duration, interval, darkFor, returnFor     time.Duration
	failbackAfter, backoffMax, jobInterval, ramp       time.Duration
	window, hold, limit                                time.Duration
	seed                                               uint64
}

func splitFlags(o *splitOptions) *flag.FlagSet {
	fs := newFlagSet("split", `Measures a route's weighted split through a switchyard binary. Three pools in
one route: A and B (priority 0, weights -weights) share the miners' work, C
(priority 10) is the route's backup. -miners miners in hashrate classes
(-classes; difficulty fixed and equal at miners and pools, so a miner's
hashrate is its cap × difficulty) mine through switchyard. Phases: warm-up;
steady (-duration): each pool's credited work, at the pools, as a fraction of
A+B against the weights, every -interval and over the whole phase; dark (-dark
mode for -dark-for): the time until B alone carries -takeover of the steady
rate, and what C credited; return (A back, for -return-for): the time until
the split is back within ±-tolerance (failback_after + convergence). Each
phase also counts the split's moves (switchyard_route_split_moves_total) and
the work they flushed. Prints a table and writes split.json, the config and
switchyard's log to -out.`)
	fs.StringVar(&o.switchyard, "switchyard", "", "`path` of the switchyard binary (go build -o /tmp/switchyard ./cmd/switchyard)")
	fs.StringVar(&o.out, "out", "", "`directory` for split.json, the config and switchyard's log; empty: a new temporary one")
	fs.IntVar(&o.miners, "miners", 2000, "`number` of miners")
	fs.StringVar(&o.classes, "classes", "big=1:1,mid=1:0.1,small=1:0.01", "hashrate `classes`: name=count-weight:shares-per-second, comma-separated; the miners are divided by the count weights\n(largest remainder) and authorize as name.0, name.1, …; the route's workers are name.* for each")
	fs.StringVar(&o.weights, "weights", "70,30", "`weights` of A and B; 0,0 is the no-split control (ranked failover: every miner on A)")
	fs.StringVar(&o.firmware, "firmware", sim.FirmwareCgminer, "`firmware` the miners behave like: "+strings.Join(sim.Firmwares(), ", ")+"; -firmware= for stratumsim's own\n(which drops a share held back by its rate cap at every new job: a move costs it a share that a real miner would have sent)")
	fs.Float64Var(&o.diff, "diff", 1e-8, "share `difficulty` of miners and pools (1e-8 ≈ 43 hashes a share)")
	fs.Uint64Var(&o.seed, "seed", 1, "`seed` of the order in which the miners dial in (classes mixed)")
	fs.DurationVar(&o.ramp, "ramp", 10*time.Second, "spread the miners' first connections over this long")
	fs.DurationVar(&o.warmup, "warmup", time.Minute, "mining after every miner is ready, before the steady phase")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "length of the steady phase")
	fs.DurationVar(&o.interval, "interval", time.Minute, "report the steady split every `interval`")
	fs.StringVar(&o.dark, "dark", "blackhole", "how A goes dark: blackhole (silent) or close (connections dropped, new ones refused)")
	fs.DurationVar(&o.darkFor, "dark-for", time.Minute, "how long A stays dark")
	fs.DurationVar(&o.returnFor, "return-for", 2*time.Minute, "mining after A is back")
	fs.DurationVar(&o.failbackAfter, "failback-after", 20*time.Second, "switchyard's [failover] failback_after")
	fs.DurationVar(&o.backoffMax, "backoff-max", 5*time.Second, "switchyard's [failover] backoff_max (how soon it redials A)")
	fs.DurationVar(&o.jobInterval, "job-interval", 30*time.Second, "time between the pools' jobs; every job is a new block (as in credit: firmware drops its work item at each)")
	fs.DurationVar(&o.window, "window", 0, "the windows the dark and return times are measured over; 0: long enough for ~1000 shares, 5s..60s")
	fs.DurationVar(&o.hold, "hold", 20*time.Second, "a condition counts as reached once it holds for windows starting anywhere in this long")
	fs.Float64Var(&o.tolerance, "tolerance", 0.02, "the split is on target when A's fraction of A+B is within this of its weight's")
	fs.Float64Var(&o.takeover, "takeover", 0.95, "A dark: B has taken over once it credits this `fraction` of the steady A+B rate")
	fs.Float64Var(&o.movesGoal, "moves-goal", 0.005, "the work moves may flush, as a `fraction` of all work")
	fs.DurationVar(&o.limit, "limit", 0, "give up after this long in all; 0: the phases plus 5 minutes")
	fs.StringVar(&o.logLevel, "log-level", "error", "log `level` of the pools and the fleet")
	return fs
}

// classSpec is one class of -classes.
type classSpec struct {
	name   string
	weight float64 // share of the miners
	rate   float64 // shares per second per miner
}

// parseClasses reads -classes: name=weight:rate, comma-separated.
func parseClasses(s string) ([]classSpec, error) {
	var out []classSpec
	seen := map[string]bool{}
	for _, item := range splitList(s) {
		name, rest, ok := strings.Cut(item, "=")
		w, r, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || name == "" || strings.ContainsAny(name, ".*?[ ") {
			return nil, fmt.Errorf("class %q: want name=count-weight:shares-per-second (a name without . * ? [ or space)", item)
		}
		weight, err1 := strconv.ParseFloat(w, 64)
		rate, err2 := strconv.ParseFloat(r, 64)
		if err := errors.Join(err1, err2); err != nil || !(weight > 0) || !(rate > 0) || math.IsInf(weight+rate, 0) {
			return nil, fmt.Errorf("class %q: want a count weight > 0 and a rate > 0", item)
		}
		if seen[name] {
			return nil, fmt.Errorf("class %q: the name %s twice", item, name)
		}
		seen[name] = true
		out = append(out, classSpec{name: name, weight: weight, rate: rate})
	}
	if len(out) == 0 {
		return nil, errors.New("no classes")
	}
	return out, nil
}

// fleetClasses divides n miners among the classes by weight, by largest
// remainder (ties to the earlier class).
func fleetClasses(specs []classSpec, n int) []sim.MinerClass {
	var total float64
	for _, c := range specs {
		total += c.weight
	}
	out := make([]sim.MinerClass, len(specs))
	rem := make([]float64, len(specs))
	left := n
	for i, c := range specs {
		q := float64(n) * c.weight / total
		out[i] = sim.MinerClass{Miners: int(q), MaxSharesPerSecond: c.rate, User: c.name}
		rem[i] = q - math.Floor(q)
		left -= int(q)
	}
	order := make([]int, len(specs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rem[a] > rem[b]:
			return -1
		case rem[a] < rem[b]:
			return 1
		}
		return 0
	})
	for i := 0; left > 0; i = (i + 1) % len(order) {
		out[order[i]].Miners++
		left--
	}
	return out
}

// parseWeights reads -weights: A's and B's.
func parseWeights(s string) ([2]int, error) {
	var w [2]int
	parts := splitList(s)
	if len(parts) != 2 {
		return w, fmt.Errorf("-weights %q: want two integers, A's and B's", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return w, fmt.Errorf("-weights %q: want two integers >= 0", s)
		}
		w[i] = n
	}
	if (w[0] == 0) != (w[1] == 0) {
		return w, fmt.Errorf("-weights %q: both > 0 (a split) or both 0 (the no-split control)", s)
	}
	return w, nil
}

// splitConfig is the switchyard config of a split run: miners at a fixed
// difficulty, pools A and B weighted in one route with C as its backup,
// the route's workers the classes' prefixes.
func splitConfig(minerAddr, httpAddr string, pools [numSplitPools]string, weights [2]int, workers []string, diff float64, failbackAfter, backoffMax time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nlisten = %q\n\n", minerAddr)
	fmt.Fprintf(&b, "[difficulty]\ninitial = %g\nmin = %g\nmax = %g\n\n", diff, diff, diff)
	fmt.Fprintf(&b, "[failover]\nfailback_after = %q\nbackoff_max = %q\n\n[metrics]\nlisten = %q\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
		failbackAfter.String(), backoffMax.String(), httpAddr)
	for i, addr := range pools {
		prio, weight := 0, 0
		if i == poolC {
			prio = 10
		} else {
			weight = weights[i]
		}
		fmt.Fprintf(&b, "\n[[pool]]\nname = %q\nurl = \"stratum+tcp://%s\"\nuser = \"split-%s.farm\"\npassword = \"x\"\npriority = %d\nweight = %d\n",
			splitPoolNames[i], addr, strings.ToLower(splitPoolNames[i]), prio, weight)
	}
	quoted := make([]string, len(workers))
	for i, w := range workers {
		quoted[i] = strconv.Quote(w)
	}
	fmt.Fprintf(&b, "\n[[route]]\nname = %q\nworkers = [%s]\npools = [%q, %q]\nbackup = [%q]\n",
		splitRoute, strings.Join(quoted, ", "), splitPoolNames[poolA], splitPoolNames[poolB], splitPoolNames[poolC])
	return b.String()
}

// ---- the run ----

// splitRun is one run: the pools, switchyard, the fleet and the samples.
type splitRun struct {
	o         splitOptions
	weights   [2]int
	classes   []sim.MinerClass
	start     time.Time
	pools     [numSplitPools]*sim.Pool
	refused   [numSplitPools]*refusedBook
	fleet     *sim.Fleet
	client    *http.Client
	http      string // switchyard's metrics address
	minerAddr string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	logPath   string

	mu      sync.Mutex
	samples []creditSample
	views   []splitView
}

// splitView is switchyard's split as /metrics showed it at one time.
type splitView struct {
	at     time.Time
	target [numSplitPools]float64 // switchyard_route_split_target_ratio
	moves  float64
}

// creditSample is the pools' credited work at one time.
type creditSample struct {
	at       time.Time
	credited [numSplitPools]float64
}

func runSplit(ctx context.Context, args []string) error {
	var o splitOptions
	fs := splitFlags(&o)
	fs.Parse(args)
	specs, err := parseClasses(o.classes)
	if err != nil {
		return fmt.Errorf("split: -classes: %w", err)
	}
	weights, err := parseWeights(o.weights)
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	if o.firmware, err = sim.ParseFirmware(o.firmware); err != nil {
		return fmt.Errorf("split: -firmware: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("split: unexpected arguments %q", fs.Args())
	case o.switchyard == "":
		return errors.New("split: -switchyard is required")
	case o.dark != "blackhole" && o.dark != "close":
		return fmt.Errorf("split: -dark %q: want blackhole or close", o.dark)
	case o.miners < 1 || !(o.diff > 0) || o.duration <= 0 || o.interval <= 0 || o.darkFor <= 0 || o.returnFor <= 0 || o.window < 0 || o.hold < 0:
		return errors.New("split: want miners > 0, diff > 0, duration, interval, dark-for, return-for > 0, window and hold >= 0")
	case !(o.tolerance > 0) || !(o.takeover > 0) || o.takeover > 1:
		return errors.New("split: want tolerance > 0 and 0 < takeover <= 1")
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if o.limit == 0 {
		o.limit = 2*time.Minute + o.ramp + o.warmup + o.duration + o.darkFor + o.returnFor + 5*time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	r := &splitRun{o: o, weights: weights, classes: fleetClasses(specs, o.miners), start: time.Now(),
		client: &http.Client{Timeout: 10 * time.Second}}
	defer r.stop()
	if err := r.startPools(log); err != nil {
		return err
	}
	if err := r.startSwitchyard(ctx); err != nil {
		return err
	}
	rep, err := r.phases(ctx, log)
	if rep != nil {
		rep.finish(r)
		if werr := r.write(rep); werr != nil {
			err = errors.Join(err, werr)
		}
		fmt.Println()
		rep.print(os.Stdout)
	}
	if err != nil {
		return fmt.Errorf("split: %w (switchyard's log: %s)", err, r.logPath)
	}
	return nil
}

func (r *splitRun) logf(format string, args ...any) {
	fmt.Printf("%8.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

func (r *splitRun) startPools(log zerolog.Logger) error {
	for i := range r.pools {
		r.refused[i] = &refusedBook{}
		p, err := sim.StartPool(sim.PoolConfig{
			Difficulty: r.o.diff, Vardiff: sim.Vardiff{Off: true}, Extranonce1Size: 4, Extranonce2Size: 8,
			JobInterval: r.o.jobInterval, CleanEvery: 1, Ledger: r.refused[i],
			Log: log.With().Str("pool", splitPoolNames[i]).Logger(),
		})
		if err != nil {
			return err
		}
		r.pools[i] = p
	}
	r.logf("pools at difficulty %g (fixed), a new block every %s: A %s (weight %d), B %s (weight %d), C %s (backup, priority 10)",
		r.o.diff, r.o.jobInterval, r.pools[poolA].Addr(), r.weights[0], r.pools[poolB].Addr(), r.weights[1], r.pools[poolC].Addr())
	return nil
}

// workers returns the route's worker globs: one per class prefix.
func (r *splitRun) workers() []string {
	var out []string
	for _, c := range r.classes {
		out = append(out, c.User+".*")
	}
	return out
}

func (r *splitRun) startSwitchyard(ctx context.Context) error {
	dir := r.o.out
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "switchyard-split-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r.dir = dir
	minerAddr, err1 := freePort()
	httpAddr, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r.minerAddr, r.http = minerAddr, httpAddr
	var addrs [numSplitPools]string
	for i, p := range r.pools {
		addrs[i] = p.Addr()
	}
	cfg := splitConfig(minerAddr, httpAddr, addrs, r.weights, r.workers(), r.o.diff, r.o.failbackAfter, r.o.backoffMax)
	cfgPath := filepath.Join(dir, "switchyard.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, r.o.switchyard, "check", "-config", cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("split: switchyard check refuses the config (%v):\n%s", err, out)
	}
	r.logPath = filepath.Join(dir, "switchyard.log")
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	r.cmd = exec.Command(r.o.switchyard, "run", "-config", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("split: start switchyard: %w", err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	r.logf("switchyard %s pid %d: miners on %s, metrics on %s, config %s, log %s", r.o.switchyard, r.cmd.Process.Pid, minerAddr, httpAddr, cfgPath, r.logPath)
	if !r.waitFor(ctx, 30*time.Second, func() bool {
		m, err := r.scrape()
		return err == nil && r.live(m, poolA) && r.live(m, poolB)
	}) {
		return fmt.Errorf("split: A and B not both live in switchyard after 30s (see %s)", r.logPath)
	}
	return nil
}

func (r *splitRun) live(m metricSet, pool int) bool {
	return m.sum("switchyard_pool_state", "route", splitRoute, "pool", splitPoolNames[pool], "state", "live") == 1
}

func (r *splitRun) scrape() (metricSet, error) { return scrapeMetrics(r.client, r.http) }

func (r *splitRun) waitFor(ctx context.Context, within time.Duration, cond func() bool) bool {
	return waitUntil(ctx, r.exited, within, cond)
}

// sample records the pools' credited work every 100 ms, and switchyard's
// split targets and moves every 500 ms, until ctx is done.
func (r *splitRun) sample(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		r.record()
		if i%5 == 0 {
			go r.view() // a scrape may take longer than a tick
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *splitRun) view() {
	m, err := r.scrape()
	if err != nil {
		return
	}
	v := splitView{at: time.Now(), moves: m.sum("switchyard_route_split_moves_total", "route", splitRoute)}
	for i := range v.target {
		v.target[i] = m.sum("switchyard_route_split_target_ratio", "route", splitRoute, "pool", splitPoolNames[i])
	}
	r.mu.Lock()
	r.views = append(r.views, v)
	r.mu.Unlock()
}

// firstView returns how long after from switchyard's metrics first showed
// a split that satisfies ok (a scrape every 500 ms, sorted by time).
func (r *splitRun) firstView(from time.Time, ok func(v splitView) bool) (time.Duration, bool) {
	r.mu.Lock()
	vs := slices.Clone(r.views)
	r.mu.Unlock()
	slices.SortFunc(vs, func(a, b splitView) int { return a.at.Compare(b.at) })
	for _, v := range vs {
		if !v.at.Before(from) && ok(v) {
			return v.at.Sub(from), true
		}
	}
	return 0, false
}

func (r *splitRun) record() creditSample {
	s := creditSample{at: time.Now()}
	for i, p := range r.pools {
		s.credited[i] = p.Stats().CreditedWork
	}
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
	return s
}

func (r *splitRun) series() []creditSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

// sleep waits d, or until ctx is done or switchyard exits.
func (r *splitRun) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-r.exited:
		return errors.New("switchyard exited")
	case <-t.C:
		return nil
	}
}

// phases runs the fleet through warm-up, steady, dark and return, and
// returns what each measured.
func (r *splitRun) phases(ctx context.Context, log zerolog.Logger) (*splitReport, error) {
	o := &r.o
	var err error
	if r.fleet, err = sim.StartFleet(context.Background(), sim.FleetConfig{
		Addr: r.minerAddr, Classes: r.classes, DialSeed: o.seed, VersionRolling: true,
		RampUp: o.ramp, Firmware: o.firmware, Log: log,
	}); err != nil {
		return nil, err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go r.sample(sctx)
	var desc []string
	for _, c := range r.classes {
		desc = append(desc, fmt.Sprintf("%d %s at %g shares/s", c.Miners, c.User, c.MaxSharesPerSecond))
	}
	fw := o.firmware
	if fw == "" {
		fw = "stratumsim"
	}
	r.logf("fleet (%s): %s; %.1f shares/s in all", fw, strings.Join(desc, ", "), r.sharesPerSecond())
	if !r.waitFor(ctx, o.ramp+2*time.Minute, func() bool { return r.fleet.Stats().Ready == int64(o.miners) }) {
		return nil, fmt.Errorf("%d of %d miners ready", r.fleet.Stats().Ready, o.miners)
	}
	rep := &splitReport{Options: r.reportOptions(), Window: r.window().Seconds(), Hold: o.hold.Seconds()}
	ready, err := r.snapshot("ready")
	if err != nil {
		return nil, err
	}
	rep.readyAt = ready.at
	r.logf("every miner ready; warm-up %s", o.warmup)
	if err := r.sleep(ctx, o.warmup); err != nil {
		return rep, err
	}
	warm, err := r.snapshot("warmup")
	if err != nil {
		return rep, err
	}
	rep.Phases = append(rep.Phases, r.phase("warmup", ready, warm))

	// Steady: the split every interval and over the whole phase.
	r.logf("steady for %s", o.duration)
	prev, from := warm, warm
	for elapsed := time.Duration(0); elapsed < o.duration-10*time.Millisecond; elapsed = prev.at.Sub(from.at) {
		step := min(o.interval, o.duration-elapsed)
		if err := r.sleep(ctx, step); err != nil {
			return rep, err
		}
		s, err := r.snapshot("steady")
		if err != nil {
			return rep, err
		}
		row := r.phase(fmt.Sprintf("steady %.0fs", s.at.Sub(from.at).Seconds()), prev, s)
		rep.Intervals = append(rep.Intervals, row)
		r.logf("%s", row.line())
		prev = s
	}
	steady := r.phase("steady", from, prev)
	rep.Phases = append(rep.Phases, steady)
	rep.steadyRate = (steady.Credited[poolA] + steady.Credited[poolB]) / steady.Seconds

	// Dark: A silent or closed; B alone should take the work, C none.
	f := sim.Fault{Mode: sim.FaultBlackhole}
	if o.dark == "close" {
		f.Mode = sim.FaultClose
	}
	if err := r.pools[poolA].SetFault(f); err != nil {
		return rep, err
	}
	dark := r.record()
	rep.darkAt = dark.at
	r.logf("A %s for %s", f, o.darkFor)
	if err := r.sleep(ctx, o.darkFor); err != nil {
		return rep, err
	}
	darkEnd, err := r.snapshot("dark")
	if err != nil {
		return rep, err
	}
	rep.Phases = append(rep.Phases, r.phase("dark", prev, darkEnd))

	// Return: A back; after failback_after the split should come back.
	if err := r.pools[poolA].SetFault(sim.Fault{}); err != nil {
		return rep, err
	}
	back := r.record()
	rep.returnAt = back.at
	r.logf("A back to normal for %s (failback_after %s)", o.returnFor, o.failbackAfter)
	if err := r.sleep(ctx, o.returnFor); err != nil {
		return rep, err
	}
	end, err := r.snapshot("return")
	if err != nil {
		return rep, err
	}
	rep.Phases = append(rep.Phases, r.phase("return", darkEnd, end))
	rep.endAt = end.at
	return rep, nil
}

// sharesPerSecond is the fleet's submit rate at its caps.
func (r *splitRun) sharesPerSecond() float64 {
	var n float64
	for _, c := range r.classes {
		n += float64(c.Miners) * c.MaxSharesPerSecond
	}
	return n
}

// window is -window, or long enough for about 1000 shares, 5 s to 60 s:
// the split's fraction over it is steady to a few tenths of a percent.
func (r *splitRun) window() time.Duration {
	if r.o.window > 0 {
		return r.o.window
	}
	w := time.Duration(1000 / r.sharesPerSecond() * float64(time.Second))
	return min(max(w, 5*time.Second), time.Minute).Round(time.Second)
}

// takeoverWindow is -window, or long enough for about 200 shares, 1 s to
// 60 s: a rate needs fewer shares than a fraction, and a shorter window
// places the takeover closer (the forward window [t, t+w] reaches 95 % up
// to 0.05·w before the takeover completes).
func (r *splitRun) takeoverWindow() time.Duration {
	if r.o.window > 0 {
		return r.o.window
	}
	w := time.Duration(200 / r.sharesPerSecond() * float64(time.Second))
	return min(max(w, time.Second), time.Minute).Round(100 * time.Millisecond)
}

func (r *splitRun) stop() {
	if r.fleet != nil {
		_ = r.fleet.Close()
	}
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	for _, p := range r.pools {
		if p != nil {
			_ = p.Close()
		}
	}
}

// ---- accounting ----

// splitSnap is every counter a phase is measured with, read at one time.
type splitSnap struct {
	at       time.Time
	credited [numSplitPools]float64           // pools: Σ CreditedWork
	accepted [numSplitPools]uint64            // pools: accepted shares
	refused  [numSplitPools]map[string]uint64 // pools: rejected shares by label
	fleet    sim.FleetStats
	moves    float64            // switchyard_route_split_moves_total
	rejected map[string]float64 // switchyard_shares_total{result="rejected"} by reason
	lost     map[string]float64 // switchyard_shares_total{result="lost"} by reason
	poolLost float64            // switchyard_pool_shares_total{result="lost"}
	measured [numSplitPools]float64
	target   [numSplitPools]float64
}

func (r *splitRun) snapshot(name string) (splitSnap, error) {
	m, err := r.scrape()
	if err != nil {
		return splitSnap{}, fmt.Errorf("%s: scrape switchyard: %w", name, err)
	}
	cs := r.record()
	s := splitSnap{at: cs.at, credited: cs.credited, fleet: r.fleet.Stats()}
	for i, p := range r.pools {
		ps := p.Stats()
		s.accepted[i], s.refused[i] = ps.Accepted, ps.Rejected
		s.measured[i] = m.sum("switchyard_route_split_measured_ratio", "route", splitRoute, "pool", splitPoolNames[i])
		s.target[i] = m.sum("switchyard_route_split_target_ratio", "route", splitRoute, "pool", splitPoolNames[i])
	}
	s.moves = m.sum("switchyard_route_split_moves_total", "route", splitRoute)
	s.rejected = m.byLabel("switchyard_shares_total", "reason", "route", splitRoute, "result", "rejected")
	s.lost = m.byLabel("switchyard_shares_total", "reason", "route", splitRoute, "result", "lost")
	s.poolLost = m.sum("switchyard_pool_shares_total", "route", splitRoute, "result", "lost")
	return s, nil
}

// splitPhase is what one phase (or one interval of the steady phase)
// measured: the deltas of two snapshots.
type splitPhase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"elapsed_s"`

	// At the pools: credited work (hashes) of A, B, C; A's and B's
	// fractions of A+B; C's of A+B+C; A's error against its target
	// fraction.
	Credited  [numSplitPools]float64 `json:"credited"`
	FractionA float64                `json:"fraction_a"`
	FractionB float64                `json:"fraction_b"`
	FractionC float64                `json:"fraction_c"`
	ErrorA    float64                `json:"error_a"`
	Shares    [numSplitPools]uint64  `json:"credited_shares"`
	// PoolRejected is what each pool refused, by its label: shares
	// switchyard forwarded as valid.
	PoolRejected [numSplitPools]map[string]uint64 `json:"pool_rejected"`

	// switchyard's own view at the end: split_measured_ratio and
	// split_target_ratio of each pool.
	Measured [numSplitPools]float64 `json:"switchyard_measured_ratio"`
	Target   [numSplitPools]float64 `json:"switchyard_target_ratio"`

	// Moves is Δ switchyard_route_split_moves_total.
	Moves float64 `json:"moves"`

	// The miners' side (the fleet's own counters): every share submitted
	// and how it ended, and shares found but not submitted. Flushed is
	// every share that did not count: rejected (any reason), lost and
	// unsubmitted at the miners, and those switchyard answered true but
	// lost upstream (PoolLost); FlushedFraction is Flushed over submitted +
	// unsubmitted (at a fixed difficulty, shares and work are in
	// proportion).
	Submits         uint64            `json:"submits"`
	Accepted        uint64            `json:"accepted"`
	RejectedBy      map[string]uint64 `json:"rejected_by,omitempty"`
	Lost            uint64            `json:"lost"`
	Unsubmitted     map[string]uint64 `json:"unsubmitted,omitempty"`
	Flushed         uint64            `json:"flushed"`
	FlushedFraction float64           `json:"flushed_fraction"`
	Jobs            uint64            `json:"jobs"` // mining.notify the miners received (a move is one)

	// switchyard's books of the same shares (switchyard_shares_total by
	// reason, and forwarded shares lost upstream).
	SwitchyardRejectedBy map[string]float64 `json:"switchyard_rejected_by,omitempty"`
	SwitchyardLostBy     map[string]float64 `json:"switchyard_lost_by,omitempty"`
	PoolLost             float64            `json:"switchyard_pool_lost"`

	Classes []sim.ClassStats `json:"classes,omitempty"`
}

func (r *splitRun) phase(name string, a, b splitSnap) splitPhase {
	p := splitPhase{Name: name, Seconds: b.at.Sub(a.at).Seconds(), Measured: b.measured, Target: b.target,
		Moves: b.moves - a.moves, PoolLost: b.poolLost - a.poolLost}
	for i := range p.Credited {
		p.Credited[i] = b.credited[i] - a.credited[i]
		p.Shares[i] = b.accepted[i] - a.accepted[i]
		p.PoolRejected[i] = countsDelta(a.refused[i], b.refused[i])
	}
	p.FractionA, p.FractionB, p.FractionC = fractions(p.Credited)
	p.ErrorA = p.FractionA - r.targetA()
	fa, fb := a.fleet, b.fleet
	p.Submits, p.Accepted, p.Lost, p.Jobs = fb.Submits-fa.Submits, fb.Accepted-fa.Accepted, fb.Lost-fa.Lost, fb.Jobs-fa.Jobs
	p.RejectedBy = countsDelta(fa.Rejected, fb.Rejected)
	p.Unsubmitted = countsDelta(fa.Unsubmitted, fb.Unsubmitted)
	p.Flushed = sumCounts(p.RejectedBy) + p.Lost + sumCounts(p.Unsubmitted) + uint64(math.Round(p.PoolLost))
	if n := p.Submits + sumCounts(p.Unsubmitted); n > 0 {
		p.FlushedFraction = float64(p.Flushed) / float64(n)
	}
	p.SwitchyardRejectedBy = floatsDelta(a.rejected, b.rejected)
	p.SwitchyardLostBy = floatsDelta(a.lost, b.lost)
	for i := range fb.Classes {
		c, d := fb.Classes[i], sim.ClassStats{}
		if i < len(fa.Classes) {
			d = fa.Classes[i]
		}
		c.Submits -= d.Submits
		c.Accepted -= d.Accepted
		c.Rejected -= d.Rejected
		c.Lost -= d.Lost
		c.Work -= d.Work
		c.AcceptedWork -= d.AcceptedWork
		p.Classes = append(p.Classes, c)
	}
	return p
}

// targetA is A's target fraction of A+B (1 for the no-split control).
func (r *splitRun) targetA() float64 {
	if r.weights[0]+r.weights[1] == 0 {
		return 1
	}
	return float64(r.weights[0]) / float64(r.weights[0]+r.weights[1])
}

// fractions returns A's and B's fractions of A+B and C's of A+B+C (0
// without work).
func fractions(c [numSplitPools]float64) (a, b, cc float64) {
	if ab := c[poolA] + c[poolB]; ab > 0 {
		a, b = c[poolA]/ab, c[poolB]/ab
	}
	if all := c[poolA] + c[poolB] + c[poolC]; all > 0 {
		cc = c[poolC] / all
	}
	return a, b, cc
}

// floatsDelta returns b - a by key, non-zero only; nil when none is.
func floatsDelta(a, b map[string]float64) map[string]float64 {
	var out map[string]float64
	for k, v := range b {
		if d := v - a[k]; d > 0 {
			if out == nil {
				out = map[string]float64{}
			}
			out[k] = d
		}
	}
	return out
}

func (p splitPhase) line() string {
	return fmt.Sprintf("%s: A %.4f B %.4f (error %+.4f), C %.4f of all; switchyard measured A %.4f B %.4f; %.0f moves; %d submits, flushed %d (%.4f%%): rejected %v, lost %d / %.0f upstream, unsubmitted %v; refused by A %v B %v C %v",
		p.Name, p.FractionA, p.FractionB, p.ErrorA, p.FractionC, p.Measured[poolA], p.Measured[poolB], p.Moves,
		p.Submits, p.Flushed, 100*p.FlushedFraction, p.RejectedBy, p.Lost, p.PoolLost, p.Unsubmitted,
		fmtCounts(p.PoolRejected[poolA]), fmtCounts(p.PoolRejected[poolB]), fmtCounts(p.PoolRejected[poolC]))
}

// firstSustained returns how long after from the first sample t comes
// whose forward window [t, t+w] satisfies ok, as do the windows of every
// sample up to hold after it; false when none does with hold covered
// before the series ends. ok gets the credited deltas over the window and
// its length in seconds.
func firstSustained(ss []creditSample, from time.Time, w, hold time.Duration, ok func(d [numSplitPools]float64, secs float64) bool) (time.Duration, bool) {
	// Windows start at ss[:valid]; good[i]: the window from ss[i] satisfies ok.
	n, valid := len(ss), 0
	good := make([]bool, n)
	for i, j := 0, 0; i < n; i++ {
		for j < n && ss[j].at.Sub(ss[i].at) < w {
			j++
		}
		if j == n {
			break
		}
		var d [numSplitPools]float64
		for k := range d {
			d[k] = ss[j].credited[k] - ss[i].credited[k]
		}
		good[i] = ok(d, ss[j].at.Sub(ss[i].at).Seconds())
		valid = i + 1
	}
	for i := 0; i < valid; i++ {
		if ss[i].at.Before(from) || !good[i] {
			continue
		}
		if ss[valid-1].at.Sub(ss[i].at) < hold {
			return 0, false // too near the end to show it lasts
		}
		held := true
		for k := i + 1; k < valid && ss[k].at.Sub(ss[i].at) <= hold; k++ {
			if !good[k] {
				held = false
				break
			}
		}
		if held {
			return ss[i].at.Sub(from), true
		}
	}
	return 0, false
}

// ---- the report ----

// splitReport is the run's result, written to split.json.
type splitReport struct {
	Options map[string]any `json:"options"`
	Window  float64        `json:"window_s"` // of the start, dark and return measurements
	Hold    float64        `json:"hold_s"`   // how long a condition had to last

	Phases    []splitPhase `json:"phases"`    // warmup, steady, dark, return
	Intervals []splitPhase `json:"intervals"` // the steady phase, every -interval

	// Steady: A's error against its target over the whole phase and the
	// worst interval's.
	SteadyError     float64 `json:"steady_error_a"`
	WorstInterval   float64 `json:"worst_interval_error_a"`
	SteadyRate      float64 `json:"steady_rate_hs"` // A+B credited, hashes per second
	SteadyFlushed   float64 `json:"steady_flushed_fraction"`
	SteadyMovesRate float64 `json:"steady_moves_per_minute"`

	// Times in seconds, -1 when not reached: from every miner ready to the
	// split within tolerance; from A dark to B alone carrying -takeover of
	// the steady rate; from A back to the split within tolerance.
	StartConverged float64 `json:"start_converged_s"`
	Takeover       float64 `json:"takeover_s"`
	Returned       float64 `json:"returned_s"`
	// C's credited work while A was dark, as a fraction of all credited then.
	DarkC float64 `json:"dark_fraction_c"`
	// DarkLost is the credit the dark phase fell short of the steady rate
	// by, in seconds of that rate: the outage as the pools were paid.
	DarkLost float64 `json:"dark_lost_s"`
	// Switched is when switchyard's metrics first showed B alone serving
	// (target ratio 1) after A went dark; Failback when they showed A
	// serving again after it returned; -1 when not seen.
	Switched float64 `json:"switched_s"`
	Failback float64 `json:"failback_s"`
	// TakeoverWindow is the window Takeover is measured over.
	TakeoverWindow float64 `json:"takeover_window_s"`

	Goals map[string]bool `json:"goals"`

	// Timeline is the pools' credited rate every second from the first
	// miner ready: seconds since then, then hashes per second of A, B, C.
	Timeline [][4]float64 `json:"timeline"`

	readyAt, darkAt, returnAt, endAt time.Time
	steadyRate                       float64
}

func (r *splitRun) reportOptions() map[string]any {
	o := &r.o
	return map[string]any{
		"miners": o.miners, "classes": r.classes, "weights": r.weights, "firmware": o.firmware, "diff": o.diff,
		"seed": o.seed, "ramp_s": o.ramp.Seconds(), "warmup_s": o.warmup.Seconds(), "duration_s": o.duration.Seconds(),
		"interval_s": o.interval.Seconds(), "dark": o.dark, "dark_for_s": o.darkFor.Seconds(), "return_for_s": o.returnFor.Seconds(),
		"failback_after_s": o.failbackAfter.Seconds(), "backoff_max_s": o.backoffMax.Seconds(), "job_interval_s": o.jobInterval.Seconds(),
		"hold_s": o.hold.Seconds(), "tolerance": o.tolerance, "takeover": o.takeover, "moves_goal": o.movesGoal,
		"switchyard": o.switchyard, "shares_per_second": r.sharesPerSecond(),
	}
}

// finish computes the times and the goals from the samples.
func (rep *splitReport) finish(r *splitRun) {
	ss := r.series()
	w, hold, tol, target := r.window(), r.o.hold, r.o.tolerance, r.targetA()
	inSplit := func(d [numSplitPools]float64, _ float64) bool {
		a, _, _ := fractions(d)
		return d[poolA]+d[poolB] > 0 && math.Abs(a-target) <= tol
	}
	seconds := func(d time.Duration, ok bool) float64 {
		if !ok {
			return -1
		}
		return d.Seconds()
	}
	rep.StartConverged, rep.Takeover, rep.Returned = -1, -1, -1
	if !rep.readyAt.IsZero() {
		limit := ss
		if !rep.darkAt.IsZero() {
			limit = before(ss, rep.darkAt)
		}
		rep.StartConverged = seconds(firstSustained(limit, rep.readyAt, w, hold, inSplit))
	}
	if !rep.darkAt.IsZero() && rep.steadyRate > 0 {
		limit := ss
		if !rep.returnAt.IsZero() {
			limit = before(ss, rep.returnAt)
		}
		want := r.o.takeover * rep.steadyRate
		rep.TakeoverWindow = r.takeoverWindow().Seconds()
		rep.Takeover = seconds(firstSustained(limit, rep.darkAt, r.takeoverWindow(), hold, func(d [numSplitPools]float64, secs float64) bool {
			return d[poolB]/secs >= want
		}))
	}
	if !rep.returnAt.IsZero() {
		rep.Returned = seconds(firstSustained(ss, rep.returnAt, w, hold, inSplit))
	}
	rep.Switched, rep.Failback = -1, -1
	if !rep.darkAt.IsZero() {
		rep.Switched = seconds(r.firstView(rep.darkAt, func(v splitView) bool { return v.target[poolB] == 1 }))
	}
	if !rep.returnAt.IsZero() {
		rep.Failback = seconds(r.firstView(rep.returnAt, func(v splitView) bool { return v.target[poolA] > 0 }))
	}
	rep.Timeline = timeline(ss, rep.readyAt, time.Second)
	for _, p := range rep.Phases {
		switch p.Name {
		case "steady":
			rep.SteadyError, rep.SteadyFlushed, rep.SteadyRate = p.ErrorA, p.FlushedFraction, rep.steadyRate
			if p.Seconds > 0 {
				rep.SteadyMovesRate = p.Moves / p.Seconds * 60
			}
		case "dark":
			rep.DarkC = p.FractionC
			if rep.steadyRate > 0 {
				all := p.Credited[poolA] + p.Credited[poolB] + p.Credited[poolC]
				rep.DarkLost = p.Seconds - all/rep.steadyRate
			}
		}
	}
	for _, p := range rep.Intervals {
		if math.Abs(p.ErrorA) > math.Abs(rep.WorstInterval) {
			rep.WorstInterval = p.ErrorA
		}
	}
	rep.Goals = map[string]bool{
		"steady_within_tolerance":      math.Abs(rep.SteadyError) <= tol,
		"every_interval_within":        math.Abs(rep.WorstInterval) <= tol,
		"moves_flush_below_goal":       rep.SteadyFlushed < r.o.movesGoal,
		"b_took_over":                  rep.Takeover >= 0,
		"c_carried_nothing_while_dark": rep.DarkC == 0,
		"split_returned":               rep.Returned >= 0,
	}
}

// timeline returns the credited rate of each pool over every step from
// from on: [seconds since from, A, B, C] in hashes per second.
func timeline(ss []creditSample, from time.Time, step time.Duration) [][4]float64 {
	var out [][4]float64
	i := 0
	for i < len(ss) && ss[i].at.Before(from) {
		i++
	}
	for i < len(ss) {
		j := i + 1
		for j < len(ss) && ss[j].at.Sub(ss[i].at) < step {
			j++
		}
		if j == len(ss) {
			break
		}
		secs := ss[j].at.Sub(ss[i].at).Seconds()
		row := [4]float64{math.Round(ss[i].at.Sub(from).Seconds()*10) / 10}
		for k := range numSplitPools {
			row[k+1] = (ss[j].credited[k] - ss[i].credited[k]) / secs
		}
		out = append(out, row)
		i = j
	}
	return out
}

// refusedBook is a pool ledger that keeps only the shares the pool
// refused (sim.LedgerEntry lines, one per Write), to place them in time.
type refusedBook struct {
	mu  sync.Mutex
	buf []byte
}

var refusedMark = []byte(`"result":"` + sim.ResultRejected + `"`)

func (b *refusedBook) Write(p []byte) (int, error) {
	if bytes.Contains(p, refusedMark) {
		b.mu.Lock()
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
	}
	return len(p), nil
}

func (b *refusedBook) lines() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.buf)
}

// before returns the samples taken before t.
func before(ss []creditSample, t time.Time) []creditSample {
	i, _ := slices.BinarySearchFunc(ss, t, func(s creditSample, t time.Time) int { return s.at.Compare(t) })
	return ss[:i]
}

func (r *splitRun) write(rep *splitReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	for i, rb := range r.refused {
		if lines := rb.lines(); len(lines) > 0 {
			path := filepath.Join(r.dir, "refused-"+splitPoolNames[i]+".jsonl")
			if err := os.WriteFile(path, lines, 0o644); err != nil {
				return err
			}
			r.logf("%s refused %d shares switchyard forwarded: %s", splitPoolNames[i], bytes.Count(lines, []byte{'\n'}), path)
		}
	}
	path := filepath.Join(r.dir, "split.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	r.logf("wrote %s", path)
	return nil
}

const splitTableHeader = "| phase | s | A | B | C of all | A − target | switchyard A / B | moves | submits | flushed | rejected (miners) | lost (miners / upstream) | unsubmitted |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|"

func (p splitPhase) row() string {
	return fmt.Sprintf("| %s | %.0f | %.4f | %.4f | %.4f | %+.4f | %.4f / %.4f | %.0f | %d | %d (%.3f%%) | %v | %d / %.0f | %v |",
		p.Name, p.Seconds, p.FractionA, p.FractionB, p.FractionC, p.ErrorA, p.Measured[poolA], p.Measured[poolB], p.Moves,
		p.Submits, p.Flushed, 100*p.FlushedFraction, fmtCounts(p.RejectedBy), p.Lost, p.PoolLost, fmtCounts(p.Unsubmitted))
}

// fmtCounts formats counts as {k:v …} in key order.
func fmtCounts(m map[string]uint64) string {
	f := make(map[string]float64, len(m))
	for k, v := range m {
		f[k] = float64(v)
	}
	return fmtFloats(f)
}

func (rep *splitReport) print(w *os.File) {
	fmt.Fprintln(w, splitTableHeader)
	for _, p := range rep.Intervals {
		fmt.Fprintln(w, p.row())
	}
	for _, p := range rep.Phases {
		fmt.Fprintln(w, p.row())
	}
	secs := func(v float64) string {
		if v < 0 {
			return "not reached"
		}
		return fmt.Sprintf("%.1fs", v)
	}
	fmt.Fprintf(w, "\nsteady: A %+.4f from its target over the phase, worst interval %+.4f; %.2f moves/min; flushed %.4f%% of the work\n",
		rep.SteadyError, rep.WorstInterval, rep.SteadyMovesRate, 100*rep.SteadyFlushed)
	fmt.Fprintf(w, "split within tolerance (windows of %.1fs, held %.1fs) %s after every miner was ready\n", rep.Window, rep.Hold, secs(rep.StartConverged))
	fmt.Fprintf(w, "A dark: switchyard showed B alone serving after %s; B credited its takeover share (windows of %.1fs) after %s; %.2fs of credit lost; C %.4f of all\n",
		secs(rep.Switched), rep.TakeoverWindow, secs(rep.Takeover), rep.DarkLost, rep.DarkC)
	fmt.Fprintf(w, "A back: switchyard showed A serving again after %s; split within tolerance after %s\n", secs(rep.Failback), secs(rep.Returned))
	keys := make([]string, 0, len(rep.Goals))
	for k := range rep.Goals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-30s %v\n", k, rep.Goals[k])
	}
}
