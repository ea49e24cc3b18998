package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"switchyard/sim"
)

type soakOptions struct {
	switchyard, dir, logLevel, pprof string
	miners, pools                    int
	rate, diff                       float64
	duration, warmup, settle         time.Duration
	gapMin, gapMax, recoverWithin    time.Duration
	failbackAfter                    time.Duration
	seed                             uint64
	heapSlack, rssSlack              float64
	goroutineSlack                   int
}

func soakFlags(o *soakOptions) *flag.FlagSet {
	fs := newFlagSet("soak", `Runs a switchyard binary between simulated pools and a simulated miner fleet
while the pools fail at random (close, blackhole, flap, slow, reject, and
back to normal; a seeded schedule, printed as it runs), then checks the
books: in total and per miner, every share the miners sent is accepted,
rejected by reason or lost by reason in switchyard's /metrics and
/api/v1/miners, and matches what the miners counted; every forwarded share
got one verdict per pool, consistent with the pools' own books; no miner
connection was dropped; switchyard's RSS, heap and goroutines are back near
their level before the chaos. Exit status 0 only when every check passes.`)
	fs.StringVar(&o.switchyard, "switchyard", "", "`path` of the switchyard binary (go build -o /tmp/switchyard ./cmd/switchyard)")
	fs.StringVar(&o.dir, "dir", "", "`directory` for the config and switchyard's log; empty: a new temporary one")
	fs.IntVar(&o.miners, "miners", 2000, "`number` of miners")
	fs.IntVar(&o.pools, "pools", 3, "`number` of simulated pools (2..9)")
	fs.Float64Var(&o.rate, "rate", 0.5, "at most `n` shares per second per miner")
	fs.Float64Var(&o.diff, "diff", 1e-8, "share `difficulty` of miners and pools (1e-8 ≈ 43 hashes a share)")
	fs.DurationVar(&o.duration, "duration", 3*time.Minute, "how long the chaos lasts")
	fs.DurationVar(&o.warmup, "warmup", 20*time.Second, "mining before the baseline is taken")
	fs.DurationVar(&o.settle, "settle", 20*time.Second, "mining after recovery before the final measurements")
	fs.DurationVar(&o.gapMin, "gap-min", 2*time.Second, "shortest pause between chaos events")
	fs.DurationVar(&o.gapMax, "gap-max", 8*time.Second, "longest pause between chaos events")
	fs.DurationVar(&o.recoverWithin, "recover", 3*time.Minute, "after the chaos, how long miners may take to be back on p0")
	fs.DurationVar(&o.failbackAfter, "failback-after", 5*time.Second, "switchyard's [failover] failback_after (other keys keep their defaults)")
	fs.Uint64Var(&o.seed, "seed", 1, "`seed` of the chaos schedule")
	fs.Float64Var(&o.heapSlack, "heap-slack", 1.25, "final go heap in use may be at most this `factor` of the baseline (+4 MiB)")
	fs.Float64Var(&o.rssSlack, "rss-slack", 1.25, "final RSS may be at most this `factor` of the baseline (+16 MiB)")
	fs.IntVar(&o.goroutineSlack, "goroutine-slack", 10, "final goroutines may exceed the baseline by this `number`")
	fs.StringVar(&o.pprof, "pprof", "", "loopback `address` for switchyard's profiler (SWITCHYARD_PPROF): memory is then read after a forced GC, and heap profiles are saved in -dir")
	fs.StringVar(&o.logLevel, "log-level", "error", "log `level` of the pools and the fleet")
	return fs
}

// soak is one run: its processes, its clock and the checks it failed.
type soak struct {
	o         soakOptions
	start     time.Time
	pools     []*sim.Pool
	http      string // switchyard's metrics address
	minerAddr string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
	fleet     *sim.Fleet
	books     *minerLedger
	failed    []string
	client    *http.Client
	logPath   string
}

func runSoak(ctx context.Context, args []string) error {
	var o soakOptions
	fs := soakFlags(&o)
	fs.Parse(args)
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("soak: unexpected arguments %q", fs.Args())
	case o.switchyard == "":
		return errors.New("soak: -switchyard is required")
	case o.pools < 2 || o.pools > 9 || o.miners < 1 || o.rate <= 0 || o.gapMin <= 0 || o.gapMax < o.gapMin:
		return errors.New("soak: want 2..9 pools, miners > 0, rate > 0, 0 < gap-min <= gap-max")
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	s := &soak{o: o, start: time.Now(), books: &minerLedger{m: map[string]*minerCount{}},
		client: &http.Client{Timeout: 10 * time.Second}}
	defer s.stop()
	if err := s.startPools(log); err != nil {
		return err
	}
	if err := s.startSwitchyard(); err != nil {
		return err
	}
	if s.fleet, err = sim.StartFleet(context.Background(), sim.FleetConfig{
		Addr: s.minerAddr, Miners: o.miners, User: "soak", VersionRolling: true,
		MaxSharesPerSecond: o.rate, RampUp: 5 * time.Second, Ledger: s.books, Log: log,
	}); err != nil {
		return err
	}
	s.logf("fleet: %d miners at up to %g shares/s each, difficulty %g", o.miners, o.rate, o.diff)
	if !s.waitFor(ctx, time.Minute, "every miner subscribed and authorized", func() bool {
		return s.fleet.Stats().Ready == int64(o.miners)
	}) {
		return s.finish()
	}
	if !sleepCtx(ctx, o.warmup) {
		return s.finish()
	}
	base, err := s.scrape()
	if err != nil {
		return err
	}
	baseMem := s.memory("baseline")

	s.chaos(ctx)
	if ctx.Err() != nil {
		return s.finish()
	}
	// As before the chaos: miners on p0, p1 its live standby (the default
	// [failover] standby = 1; later pools are not connected).
	s.waitFor(ctx, o.recoverWithin, "miners back on p0, p1 live", func() bool {
		m, err := s.scrape()
		return err == nil && m.sum("switchyard_pool_active", "pool", "p0") == 1 &&
			m.sum("switchyard_pool_state", "pool", "p0", "state", "live") == 1 &&
			m.sum("switchyard_pool_state", "pool", "p1", "state", "live") == 1
	})
	s.logf("recovered; mining for %s more", o.settle)
	if !sleepCtx(ctx, o.settle) {
		return s.finish()
	}
	s.checkMemory(baseMem, s.memory("final"))
	s.checkBooks(ctx, base)
	return s.finish()
}

func (s *soak) logf(format string, args ...any) {
	fmt.Printf("%8.1fs  %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.failed = append(s.failed, msg)
	s.logf("FAIL %s", msg)
}

func (s *soak) pass(format string, args ...any) { s.logf("ok   "+format, args...) }

func (s *soak) finish() error {
	if len(s.failed) > 0 {
		return fmt.Errorf("soak: %d checks failed (switchyard's log: %s)", len(s.failed), s.logPath)
	}
	s.logf("PASS: every check held (switchyard's log: %s)", s.logPath)
	return nil
}

func (s *soak) waitFor(ctx context.Context, within time.Duration, what string, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.fail("timed out after %s waiting for %s", within, what)
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

func (s *soak) startPools(log zerolog.Logger) error {
	for i := range s.o.pools {
		p, err := sim.StartPool(sim.PoolConfig{
			Addr: "127.0.0.1:0", Difficulty: s.o.diff, Extranonce1Size: 4, Extranonce2Size: 8,
			JobInterval: 15 * time.Second, Log: log.With().Int("pool", i).Logger(),
		})
		if err != nil {
			return err
		}
		s.pools = append(s.pools, p)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (s *soak) startSwitchyard() error {
	dir := s.o.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "switchyard-soak-"); err != nil {
			return err
		}
	}
	minerAddr, err1 := freePort()
	httpAddr, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s.minerAddr, s.http, s.dir = minerAddr, httpAddr, dir
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nlisten = %q\n\n[difficulty]\ninitial = %g\nmin = %g\nmax = %g\n\n", minerAddr, s.o.diff, s.o.diff, s.o.diff)
	fmt.Fprintf(&b, "[failover]\nfailback_after = %q\n\n[metrics]\nlisten = %q\n\n[log]\nlevel = \"info\"\nformat = \"json\"\n", s.o.failbackAfter.String(), httpAddr)
	for i, p := range s.pools {
		fmt.Fprintf(&b, "\n[[pool]]\nname = \"p%d\"\nurl = \"stratum+tcp://%s\"\nuser = \"soak%d\"\npassword = \"x\"\n", i, p.Addr(), i)
	}
	cfgPath := filepath.Join(dir, "switchyard.toml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	s.logPath = filepath.Join(dir, "switchyard.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(s.o.switchyard, "run", "-config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if s.o.pprof != "" {
		s.cmd.Env = append(os.Environ(), "SWITCHYARD_PPROF="+s.o.pprof)
	}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("soak: start switchyard: %w", err)
	}
	s.exited = make(chan struct{})
	go func() { _ = s.cmd.Wait(); logf.Close(); close(s.exited) }()
	s.logf("switchyard pid %d: miners on %s, metrics on %s, config %s, log %s", s.cmd.Process.Pid, minerAddr, httpAddr, cfgPath, s.logPath)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := s.scrape(); err == nil && s.activePool() == "p0" {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("soak: switchyard exited at start (see %s)", s.logPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("soak: switchyard not mining on p0 after 20s (see %s)", s.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *soak) activePool() string {
	m, err := s.scrape()
	if err != nil {
		return ""
	}
	for i := range s.pools {
		if name := fmt.Sprintf("p%d", i); m.sum("switchyard_pool_active", "pool", name) == 1 {
			return name
		}
	}
	return ""
}

// stop ends everything the soak started: the fleet, switchyard (SIGTERM,
// then SIGKILL after 20s) and the pools.
func (s *soak) stop() {
	if s.fleet != nil {
		_ = s.fleet.Close()
	}
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	for _, p := range s.pools {
		_ = p.Close()
	}
}

// chaos changes one pool's fault every gap-min..gap-max until the
// duration is over, then sets every pool back to normal. Every pool is
// exposed; all of them can be dark at once (miners are then held).
func (s *soak) chaos(ctx context.Context) {
	rng := rand.New(rand.NewPCG(s.o.seed, 0x5eed))
	s.logf("chaos for %s, seed %d", s.o.duration, s.o.seed)
	end := time.Now().Add(s.o.duration)
	counts := map[string]int{}
	for {
		gap := s.o.gapMin + time.Duration(rng.Int64N(int64(s.o.gapMax-s.o.gapMin)+1))
		if time.Now().Add(gap).After(end) || !sleepCtx(ctx, gap) {
			break
		}
		i := rng.IntN(len(s.pools))
		var f sim.Fault
		switch x := rng.IntN(100); {
		case x < 35:
			f.Mode = sim.FaultNormal
		case x < 50:
			f.Mode = sim.FaultClose
		case x < 65:
			f.Mode = sim.FaultBlackhole
		case x < 75:
			f.Mode, f.Period = sim.FaultFlap, time.Duration(500+rng.IntN(3500))*time.Millisecond
		case x < 87:
			f.Mode, f.Delay = sim.FaultSlow, time.Duration(100+rng.IntN(4900))*time.Millisecond
		default:
			f.Mode = sim.FaultReject
		}
		if err := s.pools[i].SetFault(f); err != nil {
			s.fail("p%d: set fault %s: %v", i, f, err)
			continue
		}
		counts[f.Mode.String()]++
		fs := s.fleet.Stats()
		s.logf("chaos p%d → %-22s active=%s miners up=%d submits=%d accepted=%d rejected=%d", i, f, s.activePool(),
			fs.Up, fs.Submits, fs.Accepted, fs.RejectedTotal())
	}
	for i, p := range s.pools {
		if err := p.SetFault(sim.Fault{}); err != nil {
			s.fail("p%d: restore: %v", i, err)
		}
	}
	s.logf("chaos over: every pool normal; events %v", counts)
}

// mem is switchyard's memory as /metrics reports it.
type mem struct{ rss, heap, goroutines float64 }

// memory reads switchyard's memory ten times, a second apart, and keeps
// the smallest of each figure: the heap between two collections also holds
// garbage, so a single reading depends on when the last one ran. With
// -pprof, each reading follows a forced collection and the last heap
// profile is saved as heap-<name>.pb.gz.
func (s *soak) memory(name string) mem {
	var m mem
	for i := range 10 {
		if i > 0 {
			time.Sleep(time.Second)
		}
		if s.o.pprof != "" {
			s.saveHeap(name)
		}
		ms, err := s.scrape()
		if err != nil {
			s.fail("memory: %v", err)
			return m
		}
		r := mem{ms.sum("process_resident_memory_bytes"), ms.sum("go_memstats_heap_inuse_bytes"), ms.sum("go_goroutines")}
		if i == 0 {
			m = r
		}
		m = mem{min(m.rss, r.rss), min(m.heap, r.heap), min(m.goroutines, r.goroutines)}
	}
	s.logf("%-8s rss %.1f MiB, go heap in use %.1f MiB, goroutines %.0f (least of 10 readings over 10 s)",
		name+":", m.rss/(1<<20), m.heap/(1<<20), m.goroutines)
	return m
}

// saveHeap fetches a heap profile after a forced collection.
func (s *soak) saveHeap(name string) {
	resp, err := s.client.Get("http://" + s.o.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		s.logf("pprof: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(filepath.Join(s.dir, "heap-"+name+".pb.gz"), b, 0o644)
	}
	if err != nil {
		s.logf("pprof: %v", err)
	}
}

func (s *soak) checkMemory(base, final mem) {
	check := func(name string, b, f, limit float64, unit string, scale float64) {
		if f > limit {
			s.fail("%s %.1f%s after the chaos, baseline %.1f%s, limit %.1f%s", name, f/scale, unit, b/scale, unit, limit/scale, unit)
		} else {
			s.pass("%s %.1f%s after the chaos, baseline %.1f%s (limit %.1f%s)", name, f/scale, unit, b/scale, unit, limit/scale, unit)
		}
	}
	const mib = 1 << 20
	check("go heap in use", base.heap, final.heap, base.heap*s.o.heapSlack+4*mib, " MiB", mib)
	check("rss", base.rss, final.rss, base.rss*s.o.rssSlack+16*mib, " MiB", mib)
	check("goroutines", base.goroutines, final.goroutines, base.goroutines+float64(s.o.goroutineSlack), "", 1)
}

// checkBooks drains the fleet and checks every account, in total and per
// miner.
func (s *soak) checkBooks(ctx context.Context, base metricSet) {
	if !s.fleet.Drain(15 * time.Second) {
		s.fail("miners: %d shares still unanswered 15s after they stopped submitting", s.fleet.Stats().Pending)
	}
	// Wait for a verdict on every share switchyard forwarded.
	var m metricSet
	s.waitFor(ctx, 15*time.Second, "a pool verdict on every forwarded share", func() bool {
		var err error
		m, err = s.scrape()
		return err == nil && m.sum("switchyard_pool_shares_forwarded_total") == m.sum("switchyard_pool_shares_total")
	})
	fs := s.fleet.Stats()
	s.logf("miners: %s", fs)

	// No miner connection dropped.
	closed0, closed := base.sum("switchyard_miner_connections_closed_total"), m.sum("switchyard_miner_connections_closed_total")
	if d := sumCounts(fs.Disconnects); d != 0 || fs.Up != int64(s.o.miners) || closed != closed0 ||
		m.sum("switchyard_miners_connected") != float64(s.o.miners) {
		s.fail("connections: miners saw %d disconnects %v, %d of %d up; switchyard closed %.0f (%.0f before the chaos), %.0f connected",
			d, fs.Disconnects, fs.Up, s.o.miners, closed, closed0, m.sum("switchyard_miners_connected"))
	} else {
		s.pass("connections: %d miners connected throughout: 0 disconnects on either side, %d dials", s.o.miners, fs.Dials)
	}

	// Totals: the miners' own identity, then switchyard's against it.
	if fs.Submits != fs.Accepted+fs.RejectedTotal()+fs.Lost || fs.Pending != 0 || fs.Lost != 0 {
		s.fail("miners: %d submitted != %d accepted + %d rejected + %d lost (pending %d; lost must be 0)",
			fs.Submits, fs.Accepted, fs.RejectedTotal(), fs.Lost, fs.Pending)
	}
	acc := m.sum("switchyard_shares_total", "result", "accepted")
	rej := m.sum("switchyard_shares_total", "result", "rejected")
	lost := m.sum("switchyard_shares_total", "result", "lost")
	rejBy, lostBy := m.byLabel("switchyard_shares_total", "reason", "result", "rejected"), m.byLabel("switchyard_shares_total", "reason", "result", "lost")
	totalOK := acc+rej+lost == float64(fs.Submits) && acc+lost == float64(fs.Accepted) && rej == float64(fs.RejectedTotal())
	for label, n := range fs.Rejected {
		totalOK = totalOK && rejBy[label] == float64(n)
	}
	for label, n := range rejBy {
		totalOK = totalOK && float64(fs.Rejected[label]) == n
	}
	line := fmt.Sprintf("total: submitted %d = accepted %.0f + rejected %.0f %v + lost %.0f %v (miners: accepted %d incl. lost, rejected %v)",
		fs.Submits, acc, rej, fmtFloats(rejBy), lost, fmtFloats(lostBy), fs.Accepted, fs.Rejected)
	if totalOK {
		s.pass("%s", line)
	} else {
		s.fail("%s", line)
	}

	s.checkPerMiner()

	// Per pool: every forwarded share has one verdict, consistent with the
	// pool's own books.
	for i, p := range s.pools {
		name := fmt.Sprintf("p%d", i)
		fwd := m.sum("switchyard_pool_shares_forwarded_total", "pool", name)
		pacc := m.sum("switchyard_pool_shares_total", "pool", name, "result", "accepted")
		prej := m.sum("switchyard_pool_shares_total", "pool", name, "result", "rejected")
		plost := m.sum("switchyard_pool_shares_total", "pool", name, "result", "lost")
		plostBy := m.byLabel("switchyard_pool_shares_total", "reason", "pool", name, "result", "lost")
		ps := p.Stats()
		pj := float64(ps.Accepted + ps.RejectedTotal())
		line := fmt.Sprintf("%s: forwarded %.0f = accepted %.0f + rejected %.0f + lost %.0f %v; the pool's books: received %d, accepted %d, rejected %d",
			name, fwd, pacc, prej, plost, fmtFloats(plostBy), ps.Submits, ps.Accepted, ps.RejectedTotal())
		// A share switchyard gave up on (lost) may still have been judged
		// by the pool: read before it went dark, answered too late.
		if fwd != pacc+prej+plost || float64(ps.Accepted) < pacc || float64(ps.RejectedTotal()) < prej ||
			pj > pacc+prej+plost || float64(ps.Submits) > fwd {
			s.fail("%s", line)
		} else {
			s.pass("%s", line)
		}
	}
	fo := m.byLabel("switchyard_failovers_total", "reason")
	s.logf("failovers by reason %v; switch duration: %.0f observed, mean %.3fs", fmtFloats(fo),
		m.sum("switchyard_failover_duration_seconds_count"),
		m.sum("switchyard_failover_duration_seconds_sum")/max(1, m.sum("switchyard_failover_duration_seconds_count")))
}

// minerRow is the part of /api/v1/miners the soak reads.
type minerRow struct {
	Worker     string            `json:"worker"`
	Submitted  uint64            `json:"submitted"`
	Accepted   uint64            `json:"accepted"`
	Rejected   uint64            `json:"rejected"`
	RejectedBy map[string]uint64 `json:"rejected_by"`
	Lost       uint64            `json:"lost"`
	LostBy     map[string]uint64 `json:"lost_by"`
}

// checkPerMiner compares, miner by miner, switchyard's books with the
// miner's own.
func (s *soak) checkPerMiner() {
	resp, err := s.client.Get("http://" + s.http + "/api/v1/miners")
	if err != nil {
		s.fail("per miner: %v", err)
		return
	}
	var rows []minerRow
	err = json.NewDecoder(resp.Body).Decode(&rows)
	resp.Body.Close()
	if err != nil {
		s.fail("per miner: /api/v1/miners: %v", err)
		return
	}
	mine := s.books.snapshot()
	seen := map[string]bool{}
	var bad []string
	var sub uint64
	for _, r := range rows {
		c := mine[r.Worker]
		switch {
		case seen[r.Worker]:
			bad = append(bad, r.Worker+": two connections")
			continue
		case c == nil:
			c = &minerCount{}
		}
		seen[r.Worker] = true
		sub += r.Submitted
		ok := r.Submitted == r.Accepted+r.Rejected+r.Lost && r.Rejected == sumCounts(r.RejectedBy) && r.Lost == sumCounts(r.LostBy) &&
			c.submitted == r.Submitted && c.accepted == r.Accepted+r.Lost && c.lost == 0 && len(c.rejected) == len(r.RejectedBy)
		for label, n := range c.rejected {
			ok = ok && r.RejectedBy[label] == n
		}
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: switchyard submitted %d = accepted %d + rejected %d %v + lost %d %v; the miner: submitted %d, accepted %d, rejected %v, lost %d",
				r.Worker, r.Submitted, r.Accepted, r.Rejected, r.RejectedBy, r.Lost, r.LostBy, c.submitted, c.accepted, c.rejected, c.lost))
		}
	}
	for w := range mine {
		if !seen[w] {
			bad = append(bad, w+": not in /api/v1/miners")
		}
	}
	if len(rows) != s.o.miners {
		bad = append(bad, fmt.Sprintf("%d rows for %d miners", len(rows), s.o.miners))
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		for _, b := range bad[:min(len(bad), 10)] {
			s.logf("     %s", b)
		}
		s.fail("per miner: %d of %d miners' books disagree (first 10 above)", len(bad), s.o.miners)
		return
	}
	s.pass("per miner: for each of %d miners, submitted = accepted + rejected by reason + lost by reason in switchyard's books, equal to the miner's own (%d shares)", len(rows), sub)
}

// minerLedger is a fleet ledger that counts each miner's shares by
// outcome (the fleet writes one entry per Write).
type minerLedger struct {
	mu  sync.Mutex
	m   map[string]*minerCount
	bad error
}

type minerCount struct {
	submitted, accepted, lost uint64
	rejected                  map[string]uint64
}

func (l *minerLedger) Write(p []byte) (int, error) {
	var e sim.LedgerEntry
	err := json.Unmarshal(p, &e)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.bad = err
		return len(p), nil
	}
	c := l.m[e.Worker]
	if c == nil {
		c = &minerCount{rejected: map[string]uint64{}}
		l.m[e.Worker] = c
	}
	c.submitted++
	switch e.Result {
	case sim.ResultAccepted:
		c.accepted++
	case sim.ResultRejected:
		c.rejected[e.Reason]++
	default:
		c.lost++
	}
	return len(p), nil
}

func (l *minerLedger) snapshot() map[string]*minerCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m
}

func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtFloats(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%.0f", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// metricSet is one scrape of a Prometheus text exposition.
type metricSet []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s *soak) scrape() (metricSet, error) { return scrapeMetrics(s.client, s.http) }

// scrapeMetrics reads switchyard's /metrics at addr.
func scrapeMetrics(c *http.Client, addr string) (metricSet, error) {
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseMetrics(string(body))
}

// parseMetrics reads the Prometheus text format: name{k="v",…} value.
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sm := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i < 0 {
			return nil, fmt.Errorf("metrics: %q", line)
		} else {
			sm.name, rest = line[:i], line[i:]
		}
		if rest[0] == '{' {
			rest = rest[1:]
			for len(rest) > 0 && rest[0] != '}' {
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
					return nil, fmt.Errorf("metrics: %q", line)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				for len(rest) > 0 && rest[0] != '"' {
					if rest[0] == '\\' && len(rest) > 1 {
						rest = rest[1:]
						if rest[0] == 'n' {
							val.WriteByte('\n')
							rest = rest[1:]
							continue
						}
					}
					val.WriteByte(rest[0])
					rest = rest[1:]
				}
				if len(rest) == 0 {
					return nil, fmt.Errorf("metrics: %q", line)
				}
				sm.labels[key] = val.String()
				rest = strings.TrimPrefix(rest[1:], ",")
			}
			if len(rest) == 0 {
				return nil, fmt.Errorf("metrics: %q", line)
			}
			rest = rest[1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: %q", line)
		}
		if _, err := fmt.Sscan(f[0], &sm.value); err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out = append(out, sm)
	}
	return out, nil
}

// sum adds the samples of a metric whose labels match the given pairs.
func (m metricSet) sum(name string, labels ...string) float64 {
	var t float64
	for _, s := range m {
		if s.name == name && s.match(labels) {
			t += s.value
		}
	}
	return t
}

// byLabel sums a metric's matching samples by the value of one label.
func (m metricSet) byLabel(name, label string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name == name && s.match(labels) {
			out[s.labels[label]] += s.value
		}
	}
	return out
}

func (s sample) match(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if s.labels[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}
