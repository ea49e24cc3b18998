package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/rs/zerolog"

	"switchyard/sim"
	"switchyard/stratum"
)

// The credit run measures what a real pool pays for through switchyard: a
// pool credits every accepted share at the pool's difficulty of its job,
// whatever difficulty the miner was given, so a miner set above the pool's
// difficulty does work the pool never pays for. Two simulated pools
// behaving like one real implementation (sim.PoolConfig.Profile) and a
// fleet behaving like one firmware (sim.FleetConfig.Firmware) run in this
// process; switchyard runs as its own process from the binary given, so an
// older build can be measured the same way.

type creditOptions struct {
	switchyard, dir, profile, firmware, label, report, logLevel string
	miners                                                      int
	rate, diff, minerFactor, networkFactor, poolMin, poolMax    float64
	phase, failbackAfter, backoffMax, jobInterval, ramp, limit  time.Duration
	progress                                                    time.Duration
	extranonce1Size, cleanEvery                                 int
	oldConfig                                                   bool
}

func creditFlags(o *creditOptions) *flag.FlagSet {
	fs := newFlagSet("credit", `Measures credit efficiency through a switchyard binary: the work the pools
credited (Σ the pool's difficulty of each accepted share × 2^32, by the
profile's rules) over the work the miners did (Σ the difficulty of each
share they submitted × 2^32, less the shares switchyard reports lost in an
outage). Two pools of -profile (p0 primary, p1 backup) and -miners of
-firmware run in this process; switchyard gives miners a difficulty of
-miner-factor × the pool's, above it, as vardiff would. Three phases of
-phase each: start (mining on p0), failover (p0 drops every connection and
refuses new ones; mining on p1), failback (p0 back; after failback_after,
mining on p0 again). For each phase it prints work, credit, efficiency,
credited shares, duplicates at the pools, miner disconnects, and block
candidates (shares meeting the jobs' nBits, -network-factor × the pool's
difficulty) the miners submitted against those the pools received; one
JSON line each too.`)
	fs.StringVar(&o.switchyard, "switchyard", "", "`path` of the switchyard binary (go build -o /tmp/switchyard ./cmd/switchyard)")
	fs.BoolVar(&o.oldConfig, "old-config", false, "leave server.min_pool_extranonce2_size out of the config, for builds that predate it")
	fs.StringVar(&o.label, "label", "", "name of the binary in the report (e.g. old, new); empty: the file name of -switchyard")
	fs.StringVar(&o.profile, "profile", sim.ProfileCkpool, "real `pool` the two pools behave like: "+strings.Join(sim.Profiles(), ", "))
	fs.StringVar(&o.firmware, "firmware", sim.FirmwareCgminer, "`firmware` the miners behave like: "+strings.Join(sim.Firmwares(), ", ")+"; -firmware= for stratumsim's own")
	fs.IntVar(&o.miners, "miners", 2000, "`number` of miners")
	fs.Float64Var(&o.rate, "rate", 0.5, "at most `n` shares per second per miner")
	fs.Float64Var(&o.diff, "diff", 1e-8, "the pools' starting `difficulty` (a fresh session's; 1e-8 ≈ 43 hashes a share)")
	fs.Float64Var(&o.minerFactor, "miner-factor", 16, "switchyard's [difficulty] initial = min = max is this `factor` × -diff")
	fs.Float64Var(&o.networkFactor, "network-factor", 64, "network difficulty (block candidates) is this `factor` × -diff")
	fs.Float64Var(&o.poolMin, "pool-min", 0.01, "the pools' vardiff never goes below this `factor` × -diff")
	fs.Float64Var(&o.poolMax, "pool-max", 16, "the pools' vardiff never goes above this `factor` × -diff (below -network-factor). At -miner-factor a pool\nclimbs to the miners' difficulty and no further: every share is forwarded and credit has no sampling noise; above it\nswitchyard forwards a fraction of the shares and credit is right only on average")
	fs.DurationVar(&o.phase, "phase", time.Minute, "how long each phase mines after its event")
	fs.DurationVar(&o.failbackAfter, "failback-after", 10*time.Second, "switchyard's [failover] failback_after")
	fs.DurationVar(&o.backoffMax, "backoff-max", 5*time.Second, "switchyard's [failover] backoff_max (how soon it redials the restored primary)")
	fs.DurationVar(&o.jobInterval, "job-interval", 30*time.Second, "time between the pools' jobs (ckpool's usual update_interval)")
	fs.IntVar(&o.cleanEvery, "clean-every", 1, "every `n`-th job is a new block (clean_jobs=true). 1: firmware drops its work item at every job; a simulated\nminer takes seconds over an item (its hashrate is -rate × its difficulty) where an ASIC takes microseconds, so with n > 1\nit lags behind each job of the same block, and the difficulty that job brings, far longer than a real one")
	fs.DurationVar(&o.ramp, "ramp", 5*time.Second, "spread the miners' first connections over this long")
	fs.IntVar(&o.extranonce1Size, "extranonce1-size", 0, "switchyard's server.extranonce1_size; 0: 2, or 1 with a pool extranonce2 under 4 bytes (NiceHash's 3), min_pool_extranonce2_size following")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "print the efficiency of the last `interval` this often; 0: never")
	fs.DurationVar(&o.limit, "limit", 10*time.Minute, "give up after this long in all")
	fs.StringVar(&o.dir, "dir", "", "`directory` for the config and switchyard's log; empty: a new temporary one")
	fs.StringVar(&o.report, "report", "", "append the phases' JSON lines to `file` as well")
	fs.StringVar(&o.logLevel, "log-level", "error", "log `level` of the pools and the fleet")
	return fs
}

// creditRun is one run: the pools, switchyard, the tap and the fleet.
type creditRun struct {
	o         creditOptions
	start     time.Time
	pools     [2]*sim.Pool
	books     [2]*blockBook
	tap       *blockTap
	fleet     *sim.Fleet
	meter     lossMeter
	meterMu   sync.Mutex
	client    *http.Client
	http      string // switchyard's metrics address
	minerAddr string
	cmd       *exec.Cmd
	exited    chan struct{}
	logPath   string
	en1, en2  int // switchyard's extranonce1_size and min_pool_extranonce2_size

	networkDiff float64 // of the jobs' nBits
}

func runCredit(ctx context.Context, args []string) error {
	var o creditOptions
	fs := creditFlags(&o)
	fs.Parse(args)
	var err error
	if o.profile, err = sim.ParseProfile(o.profile); err != nil {
		return fmt.Errorf("credit: -profile: %w", err)
	}
	if o.firmware, err = sim.ParseFirmware(o.firmware); err != nil {
		return fmt.Errorf("credit: -firmware: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("credit: unexpected arguments %q", fs.Args())
	case o.switchyard == "":
		return errors.New("credit: -switchyard is required")
	case o.miners < 1 || o.rate <= 0 || !(o.diff > 0) || o.phase <= 0 || o.cleanEvery < 1:
		return errors.New("credit: want miners > 0, rate > 0, diff > 0, phase > 0, clean-every > 0")
	case !(o.minerFactor > 0) || !(o.poolMin > 0) || o.poolMax < o.poolMin || o.networkFactor <= o.poolMax || o.networkFactor <= o.minerFactor:
		return errors.New("credit: want 0 < pool-min <= pool-max < network-factor and 0 < miner-factor < network-factor")
	}
	if o.label == "" {
		o.label = filepath.Base(o.switchyard)
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.limit)
	defer cancel()
	r := &creditRun{o: o, start: time.Now(), meter: lossMeter{window: 8}, client: &http.Client{Timeout: 10 * time.Second}}
	defer r.stop()
	if err := r.startPools(log); err != nil {
		return err
	}
	if err := r.startSwitchyard(ctx); err != nil {
		return err
	}
	if r.tap, err = startTap(r.minerAddr); err != nil {
		return err
	}
	phases, err := r.phases(ctx, log)
	for _, p := range phases {
		if werr := r.emit(p); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if len(phases) > 0 {
		fmt.Println()
		fmt.Println(creditTableHeader)
		for _, p := range phases {
			fmt.Println(p.row())
		}
		ts := r.tap.stats()
		r.logf("tap: %d submits hashed, %d on a job or extranonce it never saw (0 means every share was checked for a block); switchyard's log: %s",
			ts.submits, ts.unmatched, r.logPath)
	}
	return err
}

func (r *creditRun) logf(format string, args ...any) {
	fmt.Printf("%8.1fs  %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// startPools starts p0 and p1 with their block books, and reads the
// extranonce2 size they offer to size switchyard's miners.
func (r *creditRun) startPools(log zerolog.Logger) error {
	o := &r.o
	nbits := compactTarget(stratum.DifficultyTarget(o.diff * o.networkFactor))
	r.networkDiff = stratum.NBitsDifficulty(nbits)
	for i := range r.pools {
		r.books[i] = newBlockBook()
		p, err := sim.StartPool(sim.PoolConfig{
			Profile: o.profile, Difficulty: o.diff, NetworkDifficulty: r.networkDiff,
			Vardiff:     sim.Vardiff{Min: o.diff * o.poolMin, Max: o.diff * o.poolMax},
			JobInterval: o.jobInterval, CleanEvery: o.cleanEvery, Ledger: r.books[i],
			Work: newCreditWork(uint64(i)+1, nbits),
			Log:  log.With().Int("pool", i).Logger(),
		})
		if err != nil {
			return err
		}
		r.pools[i] = p
	}
	poolEn2, err := probeExtranonce2(r.pools[0].Addr(), 5*time.Second)
	if err != nil {
		return fmt.Errorf("credit: p0's extranonce2 size: %w", err)
	}
	if r.en1, r.en2, err = extranonceSizes(o.extranonce1Size, poolEn2); err != nil {
		return fmt.Errorf("credit: %w", err)
	}
	r.logf("pools: 2 × %s at difficulty %g (vardiff %g..%g), network difficulty %g, extranonce2 %d bytes; p0 %s, p1 %s",
		o.profile, o.diff, o.diff*o.poolMin, o.diff*o.poolMax, r.networkDiff, poolEn2, r.pools[0].Addr(), r.pools[1].Addr())
	return nil
}

// extranonceSizes returns switchyard's extranonce1_size and
// min_pool_extranonce2_size for a pool offering poolEn2 bytes: the
// defaults (2 and 4) where they fit, else a 1-byte prefix and the pool's
// size. en1 > 0 is kept. Miners need 2 bytes of extranonce2 at least
// (cgminer refuses fewer).
func extranonceSizes(en1, poolEn2 int) (int, int, error) {
	if en1 == 0 {
		en1 = 2
		if poolEn2 < 4 {
			en1 = poolEn2 - 2
		}
	}
	if en1 < 1 || poolEn2-en1 < 2 {
		return 0, 0, fmt.Errorf("a pool extranonce2 of %d bytes leaves no room for a %d-byte miner prefix and a 2-byte miner extranonce2", poolEn2, en1)
	}
	return en1, min(poolEn2, max(4, en1+2)), nil
}

// probeExtranonce2 subscribes to a pool once and returns the extranonce2
// size it answers.
func probeExtranonce2(addr string, within time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, within)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(within))
	if _, err := io.WriteString(c, `{"id":1,"method":"mining.subscribe","params":["stratumsim-probe/1.0"]}`+"\n"); err != nil {
		return 0, err
	}
	lr := stratum.NewLineReader(c, 1<<16)
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return 0, err
		}
		var m stratum.Message
		if m.Decode(line) != nil || !m.IsResponse() || string(m.ID) != "1" {
			continue
		}
		_, n, err := stratum.ParseSubscribeResult(m.Result)
		return n, err
	}
}

// switchyardConfig is the config of a credit run: miners at a fixed
// difficulty (vardiff pinned), the two pools, metrics on.
func switchyardConfig(minerAddr, httpAddr string, pools []string, en1, minPoolEn2 int, oldConfig bool, diff float64, failbackAfter, backoffMax time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nlisten = %q\nextranonce1_size = %d\n", minerAddr, en1)
	if !oldConfig {
		fmt.Fprintf(&b, "min_pool_extranonce2_size = %d\n", minPoolEn2)
	}
	fmt.Fprintf(&b, "\n[difficulty]\ninitial = %g\nmin = %g\nmax = %g\n\n", diff, diff, diff)
	fmt.Fprintf(&b, "[failover]\nfailback_after = %q\nbackoff_max = %q\n\n[metrics]\nlisten = %q\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
		failbackAfter.String(), backoffMax.String(), httpAddr)
	for i, addr := range pools {
		fmt.Fprintf(&b, "\n[[pool]]\nname = \"p%d\"\nurl = \"stratum+tcp://%s\"\nuser = \"credit%d.farm\"\npassword = \"x\"\n", i, addr, i)
	}
	return b.String()
}

func (r *creditRun) startSwitchyard(ctx context.Context) error {
	o := &r.o
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "switchyard-credit-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	minerAddr, err1 := freePort()
	httpAddr, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	r.minerAddr, r.http = minerAddr, httpAddr
	cfg := switchyardConfig(minerAddr, httpAddr, []string{r.pools[0].Addr(), r.pools[1].Addr()}, r.en1, r.en2,
		o.oldConfig, o.diff*o.minerFactor, o.failbackAfter, o.backoffMax)
	cfgPath := filepath.Join(dir, "switchyard.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	r.logPath = filepath.Join(dir, "switchyard.log")
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	r.cmd = exec.Command(o.switchyard, "run", "-config", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("credit: start switchyard: %w", err)
	}
	r.exited = make(chan struct{})
	go func() { _ = r.cmd.Wait(); logf.Close(); close(r.exited) }()
	sizes := fmt.Sprintf("extranonce1_size %d, min_pool_extranonce2_size %d", r.en1, r.en2)
	if o.oldConfig {
		sizes = fmt.Sprintf("extranonce1_size %d (old config: no min_pool_extranonce2_size)", r.en1)
	}
	r.logf("switchyard %s (%s) pid %d: miners at difficulty %g, %s; config %s",
		o.switchyard, o.label, r.cmd.Process.Pid, o.diff*o.minerFactor, sizes, cfgPath)
	if !r.waitActive(ctx, "p0", 20*time.Second) {
		return fmt.Errorf("credit: switchyard not mining on p0 after 20s (see %s)", r.logPath)
	}
	return nil
}

// phases runs the fleet through the three phases and returns what each
// measured.
func (r *creditRun) phases(ctx context.Context, log zerolog.Logger) ([]creditPhase, error) {
	o := &r.o
	base, err := r.snapshot()
	if err != nil {
		return nil, err
	}
	if r.fleet, err = sim.StartFleet(context.Background(), sim.FleetConfig{
		Addr: r.tap.addr(), Miners: o.miners, User: "credit", VersionRolling: true,
		MaxSharesPerSecond: o.rate, RampUp: o.ramp, Firmware: o.firmware, Log: log,
	}); err != nil {
		return nil, err
	}
	go r.sample(ctx)
	r.logf("fleet: %d %s miners at up to %g shares/s each, through the tap on %s", o.miners, o.firmware, o.rate, r.tap.addr())
	if !r.waitFor(ctx, time.Minute, func() bool { return r.fleet.Stats().Ready == int64(o.miners) }) {
		return nil, fmt.Errorf("credit: %d of %d miners ready after a minute", r.fleet.Stats().Ready, o.miners)
	}
	r.logf("every miner subscribed and authorized; mining on p0 for %s", o.phase)
	var out []creditPhase
	end := func(name string, from creditSnap) (creditSnap, error) {
		s, err := r.snapshot()
		if err != nil {
			return s, err
		}
		p := phaseOf(from, s)
		p.Profile, p.Firmware, p.Binary, p.Phase = o.profile, o.firmware, o.label, name
		out = append(out, p)
		r.logf("%s: %s", name, p.summary())
		return s, nil
	}
	if !sleepCtx(ctx, o.phase) {
		return out, ctx.Err()
	}
	s1, err := end("start", base)
	if err != nil {
		return out, err
	}

	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		return out, err
	}
	r.logf("p0 closed every connection and refuses new ones")
	if !r.waitActive(ctx, "p1", 30*time.Second) {
		return out, fmt.Errorf("credit: miners not on p1 30s after p0 closed (see %s)", r.logPath)
	}
	r.logf("miners on p1 after %.1fs; mining for %s", time.Since(s1.at).Seconds(), o.phase)
	if !sleepCtx(ctx, o.phase) {
		return out, ctx.Err()
	}
	s2, err := end("failover", s1)
	if err != nil {
		return out, err
	}

	if err := r.pools[0].SetFault(sim.Fault{}); err != nil {
		return out, err
	}
	r.logf("p0 back to normal; waiting for failback (failback_after %s)", o.failbackAfter)
	if !r.waitActive(ctx, "p0", 2*time.Minute) {
		return out, fmt.Errorf("credit: miners not back on p0 2m after it was restored (see %s)", r.logPath)
	}
	r.logf("miners back on p0 after %.1fs; mining for %s", time.Since(s2.at).Seconds(), o.phase)
	if !sleepCtx(ctx, o.phase) {
		return out, ctx.Err()
	}
	_, err = end("failback", s2)
	return out, err
}

func (r *creditRun) waitFor(ctx context.Context, within time.Duration, cond func() bool) bool {
	return waitUntil(ctx, r.exited, within, cond)
}

func (r *creditRun) waitActive(ctx context.Context, pool string, within time.Duration) bool {
	return r.waitFor(ctx, within, func() bool {
		m, err := r.scrape()
		return err == nil && m.sum("switchyard_pool_active", "pool", pool) == 1
	})
}

func (r *creditRun) scrape() (metricSet, error) { return scrapeMetrics(r.client, r.http) }

// lostShares is every share switchyard reports lost: valid for the miner
// but never judged by a pool (not forwarded for want of a pool, or
// forwarded and never answered).
func lostShares(m metricSet) float64 {
	return m.sum("switchyard_shares_total", "result", "lost") + m.sum("switchyard_pool_shares_total", "result", "lost")
}

// observe feeds the loss meter one reading of the fleet and switchyard.
// The readings are taken under the meter's lock so that they reach it in
// the order they were made.
func (r *creditRun) observe() (lossMeter, error) {
	r.meterMu.Lock()
	defer r.meterMu.Unlock()
	m, err := r.scrape()
	if err != nil {
		return lossMeter{}, err
	}
	var fs sim.FleetStats
	if r.fleet != nil {
		fs = r.fleet.Stats()
	}
	r.meter.observe(lossSample{submits: fs.Submits, work: fs.Work, lost: lostShares(m)})
	return r.meter, nil
}

// sample reads the loss meter twice a second, and prints the efficiency
// of the last -progress, until ctx is done or switchyard exits.
func (r *creditRun) sample(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	prev, _ := r.snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.exited:
			return
		case <-t.C:
		}
		if r.o.progress <= 0 || time.Since(prev.at) < r.o.progress {
			_, _ = r.observe() // a failed scrape only widens the next interval
			continue
		}
		s, err := r.snapshot()
		if err != nil {
			continue
		}
		p := phaseOf(prev, s)
		r.logf("   last %.0fs on %s: efficiency %.4f, %.0f shares/s, %d credited, %.0f lost, %d rejected by switchyard %v, %d by the pools %v, %d pool retargets",
			p.Seconds, r.activePool(), p.Efficiency, float64(p.Submits)/p.Seconds, p.CreditedShares, p.LostShares,
			p.Rejected, p.RejectedBy, p.PoolRejected, p.PoolRejectBy, p.Retargets)
		prev = s
	}
}

// activePool is the pool switchyard's metrics show miners on, "-" for none.
func (r *creditRun) activePool() string {
	m, err := r.scrape()
	if err != nil {
		return "-"
	}
	for i := range r.pools {
		if name := fmt.Sprintf("p%d", i); m.sum("switchyard_pool_active", "pool", name) == 1 {
			return name
		}
	}
	return "-"
}

func (r *creditRun) snapshot() (creditSnap, error) {
	lm, err := r.observe()
	if err != nil {
		return creditSnap{}, fmt.Errorf("credit: scrape switchyard: %w", err)
	}
	s := creditSnap{at: time.Now(), lostShares: lm.lost, lostWork: lm.lostWork}
	if r.fleet != nil {
		fs := r.fleet.Stats()
		s.work, s.submits, s.rejected, s.disconnects = fs.Work, fs.Submits, fs.RejectedTotal(), sumCounts(fs.Disconnects)
		s.rejectedBy = fs.Rejected
	}
	s.poolRejectedBy = map[string]uint64{}
	for i, p := range r.pools {
		ps := p.Stats()
		s.credited += ps.CreditedWork
		s.creditedShares += ps.Accepted
		s.poolRejected += ps.RejectedTotal()
		for k, v := range ps.Rejected {
			s.poolRejectedBy[k] += v
		}
		s.duplicates += ps.Duplicates
		s.poolBlocks += ps.Blocks
		s.retargets += ps.Retargets
		s.reached += r.books[i].count()
	}
	if r.tap != nil {
		s.found = r.tap.stats().found
	}
	return s, nil
}

// emit prints a phase's JSON line and appends it to -report.
func (r *creditRun) emit(p creditPhase) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	if r.o.report == "" {
		return nil
	}
	f, err := os.OpenFile(r.o.report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return errors.Join(err, f.Close())
}

// stop ends the fleet, switchyard (SIGTERM, SIGKILL after 20 s), the tap
// and the pools.
func (r *creditRun) stop() {
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
	if r.tap != nil {
		r.tap.close()
	}
	for _, p := range r.pools {
		if p != nil {
			_ = p.Close()
		}
	}
}

// ---- accounting ----

// creditSnap is every counter a phase is measured with, read at one time.
type creditSnap struct {
	at                              time.Time
	work                            float64 // fleet: Σ difficulty × 2^32 of submitted shares
	submits, rejected, disconnects  uint64  // fleet
	lostShares, lostWork            float64 // switchyard's lost shares, and the loss meter's estimate of their work
	credited                        float64 // pools: Σ CreditedWork
	creditedShares, poolRejected    uint64  // pools: accepted, rejected
	duplicates, poolBlocks, reached uint64  // pools: duplicates, block submissions, distinct block candidates
	found                           uint64  // tap: distinct block candidates the miners submitted
	retargets                       uint64  // pools: difficulty changes
	rejectedBy, poolRejectedBy      map[string]uint64
}

// creditPhase is what one phase measured: the deltas of two snapshots.
type creditPhase struct {
	Profile  string  `json:"profile"`
	Firmware string  `json:"firmware"`
	Binary   string  `json:"binary"`
	Phase    string  `json:"phase"`
	Seconds  float64 `json:"elapsed_s"`

	// Work is the miners' work less that of the shares lost in an outage;
	// Efficiency is Credited / Work (0 when there was no work).
	Work           float64 `json:"work"`
	MinersWork     float64 `json:"miners_work"` // all submitted shares
	LostShares     float64 `json:"lost_shares"`
	LostWork       float64 `json:"lost_work"` // estimated: lost shares × the mean work a share around then
	Credited       float64 `json:"credited"`
	Efficiency     float64 `json:"efficiency"`
	CreditedShares uint64  `json:"credited_shares"`

	Submits       uint64            `json:"submits"`
	Rejected      uint64            `json:"rejected_by_switchyard"` // answered false to the miners
	RejectedBy    map[string]uint64 `json:"rejected_by_switchyard_reason,omitempty"`
	PoolRejected  uint64            `json:"rejected_by_pools"`
	PoolRejectBy  map[string]uint64 `json:"rejected_by_pools_reason,omitempty"`
	Duplicates    uint64            `json:"duplicates"` // at the pools, refused or (public-pool) paid
	Disconnects   uint64            `json:"disconnects"`
	BlocksFound   uint64            `json:"blocks_found"`   // distinct, submitted by the miners
	BlocksReached uint64            `json:"blocks_reached"` // distinct, received by a pool as a block
	PoolBlocks    uint64            `json:"pool_block_submissions"`
	Retargets     uint64            `json:"pool_retargets"`
}

// phaseOf returns what happened between two snapshots.
func phaseOf(a, b creditSnap) creditPhase {
	p := creditPhase{
		Seconds:        b.at.Sub(a.at).Seconds(),
		MinersWork:     b.work - a.work,
		LostShares:     b.lostShares - a.lostShares,
		LostWork:       b.lostWork - a.lostWork,
		Credited:       b.credited - a.credited,
		CreditedShares: b.creditedShares - a.creditedShares,
		Submits:        b.submits - a.submits,
		Rejected:       b.rejected - a.rejected,
		PoolRejected:   b.poolRejected - a.poolRejected,
		Duplicates:     b.duplicates - a.duplicates,
		Disconnects:    b.disconnects - a.disconnects,
		BlocksFound:    b.found - a.found,
		BlocksReached:  b.reached - a.reached,
		PoolBlocks:     b.poolBlocks - a.poolBlocks,
		Retargets:      b.retargets - a.retargets,
		RejectedBy:     countsDelta(a.rejectedBy, b.rejectedBy),
		PoolRejectBy:   countsDelta(a.poolRejectedBy, b.poolRejectedBy),
	}
	p.Work = max(p.MinersWork-p.LostWork, 0)
	p.Efficiency = efficiency(p.Credited, p.Work)
	return p
}

// countsDelta returns b - a by key, non-zero only; nil when none is.
func countsDelta(a, b map[string]uint64) map[string]uint64 {
	var out map[string]uint64
	for k, v := range b {
		if d := v - a[k]; v > a[k] {
			if out == nil {
				out = map[string]uint64{}
			}
			out[k] = d
		}
	}
	return out
}

// efficiency is credited / work, 0 without work.
func efficiency(credited, work float64) float64 {
	if !(work > 0) || math.IsInf(work, 0) {
		return 0
	}
	return credited / work
}

const creditTableHeader = "| profile | firmware | binary | phase | work (hashes) | credited (hashes) | efficiency | credited shares | duplicates | disconnects | blocks found / reached |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|"

// row is the phase as a row of the BENCHMARKS.md table.
func (p creditPhase) row() string {
	fw := p.Firmware
	if fw == "" {
		fw = "stratumsim"
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %.4g | %.4g | %.4f | %d | %d | %d | %d / %d |",
		p.Profile, fw, p.Binary, p.Phase, p.Work, p.Credited, p.Efficiency, p.CreditedShares,
		p.Duplicates, p.Disconnects, p.BlocksFound, p.BlocksReached)
}

// summary is the phase on one line.
func (p creditPhase) summary() string {
	return fmt.Sprintf("%.0fs: work %.4g (of %.4g submitted; %.0f shares lost in the outage ≈ %.3g), credited %.4g: efficiency %.4f over %d credited shares; %d submits, %d rejected by switchyard %v, %d by the pools %v; %d duplicates at the pools; %d disconnects; blocks %d found, %d reached a pool (%d submissions); %d pool retargets",
		p.Seconds, p.Work, p.MinersWork, p.LostShares, p.LostWork, p.Credited, p.Efficiency, p.CreditedShares,
		p.Submits, p.Rejected, p.RejectedBy, p.PoolRejected, p.PoolRejectBy, p.Duplicates, p.Disconnects, p.BlocksFound, p.BlocksReached, p.PoolBlocks, p.Retargets)
}

// lossSample is one reading: the fleet's submits and work so far, and the
// shares switchyard reported lost so far.
type lossSample struct {
	submits uint64
	work    float64
	lost    float64
}

// lossMeter prices the shares switchyard reports lost. switchyard counts
// them, not their difficulty; a lost share is priced at the miners' mean
// work per submitted share over the last window intervals (a share is
// declared lost at most submit_timeout after it was sent), or at the last
// such mean when nothing was submitted meanwhile (all pools dark).
type lossMeter struct {
	window   int
	hist     []lossSample // the last window+1 readings, oldest first
	per      float64      // the last mean work per share seen
	lost     float64      // lost shares so far
	lostWork float64      // their estimated work
}

// observe adds a reading; readings must not go backwards.
func (m *lossMeter) observe(s lossSample) {
	if n := len(m.hist); n > 0 {
		old := m.hist[0]
		if s.submits > old.submits {
			m.per = (s.work - old.work) / float64(s.submits-old.submits)
		}
		if d := s.lost - m.hist[n-1].lost; d > 0 {
			m.lost += d
			m.lostWork += d * m.per
		}
	} else {
		m.lost = s.lost // counted before the first reading: not this run's to price
	}
	m.hist = append(m.hist, s)
	if len(m.hist) > max(m.window, 1)+1 {
		m.hist = append(m.hist[:0], m.hist[1:]...)
	}
}

// ---- block candidates ----

// creditWork is a pool's WorkSource: jobs of the shape the simulated
// network's have (sim/jobs.go: a coinbase with the BIP34 height and the
// extranonces in its scriptSig, a 12-level merkle branch, a fresh previous
// block hash per block), but with the run's network target as nBits, so
// that switchyard sees the block candidates the pools see: it counts them
// and forwards them whatever the miner's verdict. A block found does not
// move the tip (the run keeps the pools' job rhythm).
type creditWork struct {
	mu     sync.Mutex
	rng    *rand.Rand
	nbits  uint32
	seq    uint64
	height uint32
	prev   [32]byte // header order
}

func newCreditWork(seed uint64, nbits uint32) *creditWork {
	w := &creditWork{rng: rand.New(rand.NewPCG(seed, 0xc7ed17)), nbits: nbits, height: 900000}
	w.newBlock()
	return w
}

func (w *creditWork) newBlock() {
	w.height++
	for i := 0; i < 24; i += 8 {
		binary.LittleEndian.PutUint64(w.prev[i:], w.rng.Uint64())
	}
	clear(w.prev[24:]) // a block hash's leading zeros
}

// Job returns the next job; a clean one starts a new block.
func (w *creditWork) Job(en1Size, en2Size int, clean bool) (*stratum.Notify, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if clean && w.seq > 0 {
		w.newBlock()
	}
	w.seq++
	const tag = "/switchyard credit/"
	en := en1Size + en2Size
	b1 := binary.LittleEndian.AppendUint32(nil, 1) // tx version
	b1 = append(b1, 1)                             // one input
	b1 = append(b1, make([]byte, 32)...)           // null prevout
	b1 = append(b1, 0xff, 0xff, 0xff, 0xff)
	b1 = append(b1, byte(4+1+en+1+len(tag))) // scriptSig length
	b1 = append(b1, 3, byte(w.height), byte(w.height>>8), byte(w.height>>16))
	b1 = append(b1, byte(en)) // push of the extranonces
	b2 := append([]byte{byte(len(tag))}, tag...)
	b2 = append(b2, 0xff, 0xff, 0xff, 0xff) // sequence
	b2 = append(b2, 1)                      // one output: P2WPKH
	b2 = binary.LittleEndian.AppendUint64(b2, 312_500_000+w.rng.Uint64N(50_000_000))
	b2 = append(b2, 22, 0x00, 20)
	for range 20 {
		b2 = append(b2, byte(w.rng.Uint32()))
	}
	b2 = binary.LittleEndian.AppendUint32(b2, 0) // locktime
	n := &stratum.Notify{
		JobID:    strconv.FormatUint(w.seq, 16),
		PrevHash: stratum.SwapWords(w.prev), // NOTE: the wire spells prevhash word-swapped
		Coinb1:   b1,
		Coinb2:   b2,
		Branch:   make([][32]byte, 12),
		Version:  0x20000000,
		NBits:    w.nbits,
		NTime:    uint32(time.Now().Unix()),
		Clean:    clean,
	}
	for i := range n.Branch {
		for j := 0; j < 32; j += 8 {
			binary.LittleEndian.PutUint64(n.Branch[i][j:], w.rng.Uint64())
		}
	}
	return n, nil
}

// Block takes a block candidate; the tip stays.
func (w *creditWork) Block(sim.BlockCandidate) bool { return false }

// compactTarget is the nBits of the largest compact target not above t:
// the network difficulty it stands for is at least t's.
func compactTarget(t stratum.Target) uint32 {
	i := len(t) - 1
	for i > 0 && t[i] == 0 {
		i--
	}
	size := i + 1
	var mant uint32
	for k := 0; k < 3; k++ {
		mant <<= 8
		if j := i - k; j >= 0 {
			mant |= uint32(t[j])
		}
	}
	if mant&0x00800000 != 0 { // the sign bit: one byte more, two of mantissa
		mant >>= 8
		size++
	}
	return uint32(size)<<24 | mant
}

// blockBook is a pool ledger that keeps only block candidates, each
// counted once however often it was submitted.
type blockBook struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func newBlockBook() *blockBook { return &blockBook{seen: map[string]struct{}{}} }

var blockMark = []byte(`"block":true`)

// Write takes one ledger line (sim.LedgerEntry).
func (b *blockBook) Write(p []byte) (int, error) {
	if !bytes.Contains(p, blockMark) {
		return len(p), nil
	}
	var e sim.LedgerEntry
	if json.Unmarshal(p, &e) != nil || !e.Block {
		return len(p), nil
	}
	key := strings.Join([]string{e.JobID, e.Extranonce1, e.Extranonce2, e.NTime, e.Nonce, e.Version}, "/")
	b.mu.Lock()
	b.seen[key] = struct{}{}
	b.mu.Unlock()
	return len(p), nil
}

func (b *blockBook) count() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(len(b.seen))
}

// blockTap relays every miner connection to switchyard unchanged and
// hashes each share a miner submits with the job, extranonce1 and version
// mask switchyard gave that connection, counting the distinct ones that
// meet the network target of their job's nBits: the block candidates the
// miners found, to set against those that reached a pool.
type blockTap struct {
	ln  net.Listener
	dst string

	mu    sync.Mutex
	seen  map[chainhash.Hash]struct{}
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup

	submits, unmatched atomic.Uint64
}

// tapStats is what the tap counted.
type tapStats struct {
	submits, unmatched, found uint64
}

func startTap(dst string) (*blockTap, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := newBlockTap(dst)
	t.ln = ln
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

func newBlockTap(dst string) *blockTap {
	return &blockTap{dst: dst, seen: map[chainhash.Hash]struct{}{}, conns: map[net.Conn]struct{}{}}
}

func (t *blockTap) addr() string { return t.ln.Addr().String() }

func (t *blockTap) stats() tapStats {
	t.mu.Lock()
	found := uint64(len(t.seen))
	t.mu.Unlock()
	return tapStats{submits: t.submits.Load(), unmatched: t.unmatched.Load(), found: found}
}

func (t *blockTap) serve() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.wg.Add(1)
		go t.relay(c)
	}
}

// track registers a connection for close; false once the tap is closing.
func (t *blockTap) track(c net.Conn, add bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !add {
		delete(t.conns, c)
		return true
	}
	if t.done {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// relay joins a miner to switchyard.
func (t *blockTap) relay(miner net.Conn) {
	defer t.wg.Done()
	defer miner.Close()
	up, err := net.DialTimeout("tcp", t.dst, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !t.track(miner, true) || !t.track(up, true) {
		return
	}
	defer t.track(miner, false)
	defer t.track(up, false)
	st := newTapConn()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(up, miner, func(line []byte) { st.fromMiner(t, line) })
		_ = up.Close()
		_ = miner.Close()
	}()
	pump(miner, up, st.fromSwitchyard)
	_ = up.Close()
	_ = miner.Close()
	wg.Wait()
}

// pump copies src to dst, handing each complete line to see before the
// bytes holding it are written: a request is known before its answer can
// come back, a job before a share on it.
func pump(dst io.Writer, src io.Reader, see func([]byte)) {
	buf := make([]byte, 32<<10)
	var lines lineSplitter
	for {
		n, err := src.Read(buf)
		if n > 0 {
			lines.feed(buf[:n], see)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// lineSplitter cuts a byte stream into lines ("\r\n" or "\n"), dropping a
// line longer than maxTapLine.
type lineSplitter struct {
	part []byte
	skip bool // inside an over-long line
}

const maxTapLine = 1 << 20

func (s *lineSplitter) feed(b []byte, see func([]byte)) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !s.skip {
				s.part = append(s.part, b...)
				if len(s.part) > maxTapLine {
					s.part, s.skip = s.part[:0], true
				}
			}
			return
		}
		if !s.skip {
			line := b[:i]
			if len(s.part) > 0 {
				s.part = append(s.part, line...)
				line = s.part
			}
			see(bytes.TrimSuffix(line, []byte{'\r'}))
		}
		s.part, s.skip = s.part[:0], false
		b = b[i+1:]
	}
}

// tapConn is what the tap knows of one miner connection.
type tapConn struct {
	mu    sync.Mutex
	reqs  map[string]string // request id → method, for the answers that matter
	en1   []byte
	mask  uint32
	jobs  map[string]tapJob
	order []string // job ids, oldest first
}

// tapJob is a job as the miner got it, with the extranonce1 then in force.
type tapJob struct {
	job *stratum.Job
	en1 []byte
}

const tapJobs = 64 // jobs remembered per connection (switchyard keeps 16)

func newTapConn() *tapConn {
	return &tapConn{reqs: map[string]string{}, jobs: map[string]tapJob{}}
}

// fromSwitchyard reads a line switchyard sent the miner: the subscribe and
// configure answers, jobs, and changes of extranonce or version mask.
func (c *tapConn) fromSwitchyard(line []byte) {
	var m stratum.Message
	if m.Decode(line) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.IsResponse() {
		method, ok := c.reqs[string(m.ID)]
		if !ok {
			return
		}
		delete(c.reqs, string(m.ID))
		switch method {
		case stratum.MethodSubscribe:
			if en1, _, err := stratum.ParseSubscribeResult(m.Result); err == nil {
				c.en1 = en1
			}
		case stratum.MethodConfigure:
			if rolling, mask, err := stratum.ParseConfigureResult(m.Result); err == nil && rolling {
				c.mask = mask
			}
		}
		return
	}
	switch string(m.Method) {
	case stratum.MethodNotify:
		var n stratum.Notify
		if n.Decode(m.Params) != nil {
			return
		}
		j, err := stratum.NewJob(&n)
		if err != nil {
			return
		}
		if _, ok := c.jobs[j.ID]; !ok {
			c.order = append(c.order, j.ID)
		}
		c.jobs[j.ID] = tapJob{job: j, en1: c.en1}
		if len(c.order) > tapJobs {
			delete(c.jobs, c.order[0])
			c.order = c.order[1:]
		}
	case stratum.MethodSetExtranonce:
		if en1, _, err := stratum.ParseSetExtranonce(m.Params); err == nil {
			c.en1 = en1
		}
	case stratum.MethodSetVersionMask:
		if mask, err := stratum.ParseVersionMask(m.Params); err == nil {
			c.mask = mask
		}
	}
}

// fromMiner reads a line the miner sent: it remembers the ids of
// mining.subscribe and mining.configure and hashes every mining.submit.
func (c *tapConn) fromMiner(t *blockTap, line []byte) {
	var m stratum.Message
	if m.Decode(line) != nil || m.IsResponse() {
		return
	}
	switch method := string(m.Method); method {
	case stratum.MethodSubscribe, stratum.MethodConfigure:
		c.mu.Lock()
		c.reqs[string(m.ID)] = method
		c.mu.Unlock()
	case stratum.MethodSubmit:
		var s stratum.Submit
		if s.Decode(m.Params) != nil {
			return
		}
		t.submits.Add(1)
		h, nbits, ok := c.hash(&s)
		if !ok {
			t.unmatched.Add(1)
			return
		}
		if stratum.NBitsTarget(nbits).Meets(&h) {
			t.mu.Lock()
			t.seen[h] = struct{}{}
			t.mu.Unlock()
		}
	}
}

// hash returns the header hash of a submitted share and its job's nBits,
// false when the job is not known.
func (c *tapConn) hash(s *stratum.Submit) (chainhash.Hash, uint32, bool) {
	c.mu.Lock()
	tj, ok := c.jobs[string(s.JobID)]
	mask := c.mask
	c.mu.Unlock()
	if !ok || tj.en1 == nil {
		return chainhash.Hash{}, 0, false
	}
	version := tj.job.Version
	if s.HasVersion {
		v, err := stratum.RollVersion(tj.job.Version, s.Version, mask)
		if err != nil {
			return chainhash.Hash{}, 0, false
		}
		version = v
	}
	var hdr [80]byte
	tj.job.Header(&hdr, tj.en1, s.Extranonce2, s.NTime, s.Nonce, version)
	return chainhash.DoubleHashH(hdr[:]), tj.job.NBits, true
}

func (t *blockTap) close() {
	t.mu.Lock()
	t.done = true
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	if t.ln != nil {
		_ = t.ln.Close()
	}
	t.wg.Wait()
}

// waitUntil polls cond every 100 ms until it holds (true), or within has
// passed, ctx is done or exited is closed (false).
func waitUntil(ctx context.Context, exited <-chan struct{}, within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-exited:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}
