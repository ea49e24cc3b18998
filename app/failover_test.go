package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/race"
	"switchyard/sim"
	"switchyard/stratum"
)

// Issue 5's "done when": for every way a pool goes dark, miners move to the
// backup without losing their connection, come back only after the hold
// time, and every share ends in exactly one bucket on every side.

// faultCase is one way the primary pool goes dark.
type faultCase struct {
	name  string
	fault sim.Fault
	// reasons are the failovers_total reason labels a p0 → p1 switch may
	// carry for this fault.
	reasons []string
	// detect bounds the time from the fault to p1 serving miners.
	detect time.Duration
	// hold is how long the fault stays on after p1 took over; returns is
	// how many times miners may go back to p0 meanwhile (failback probes
	// of a pool that looks healthy while idle, see reject).
	hold    time.Duration
	returns int
	// idleHealthy: the pool looks healthy without shares (reject), so
	// switchyard cannot see when it recovered: failback is judged from the
	// time switchyard saw it live, not from the restore.
	idleHealthy bool
}

func faultCases(failback time.Duration) []faultCase {
	slack := time.Duration(1)
	if race.Enabled {
		slack = 2
	}
	return []faultCase{
		// A closed pool is seen on the read (eof, a reset) or, when a
		// share goes out first, on the write (the reset comes back there).
		{name: "close", fault: sim.Fault{Mode: sim.FaultClose},
			reasons: []string{"eof", "read_error", "write_error"}, detect: slack * time.Second, hold: failback + time.Second},
		// Submit timeout 1s: suspect (and switched away) after 1s, down after 2s.
		{name: "blackhole", fault: sim.Fault{Mode: sim.FaultBlackhole},
			reasons: []string{"submit_timeout"}, detect: slack * 3 * time.Second, hold: failback + time.Second},
		// Every answer 3s late, beyond the 1s submit timeout: dark.
		{name: "slow", fault: sim.Fault{Mode: sim.FaultSlow, Delay: 3 * time.Second},
			reasons: []string{"submit_timeout"}, detect: slack * 3 * time.Second, hold: failback + time.Second},
		// A rejecting pool connects, authorizes and sends jobs like a
		// healthy one: the only way to learn it recovered is to send it
		// shares again. switchyard retries it after the hold, and doubles
		// the hold each time it fails again right away: within 3 holds it
		// gets the miners back once, not every hold.
		{name: "reject", fault: sim.Fault{Mode: sim.FaultReject},
			reasons: []string{"rejecting"}, detect: slack * 2 * time.Second, hold: 3 * failback, returns: 1, idleHealthy: true},
		// Down and up every 600ms: never up for the 2s hold.
		{name: "flap", fault: sim.Fault{Mode: sim.FaultFlap, Period: 600 * time.Millisecond},
			reasons: []string{"eof", "read_error"}, detect: slack * time.Second, hold: failback + 2*time.Second},
	}
}

// TestFailover: for each way p0 goes dark, miners end up on p1, p1 accepts
// their shares, no miner connection drops, p0 gets the miners back only
// after failback_after, and every share is accounted for.
func TestFailover(t *testing.T) {
	for _, tc := range faultCases(2 * time.Second) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testFailover(t, tc)
		})
	}
}

func testFailover(t *testing.T, tc faultCase) {
	r := newRig(t, 2, nil, func(c *config.Config) { c.Failover.RejectWindow = 10 })
	fa := r.cfg.Failover.FailbackAfter.Duration()
	if tc.hold < fa && tc.returns == 0 {
		t.Fatalf("hold %s must outlast failback_after %s to show there is no yo-yo", tc.hold, fa)
	}
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	if got := r.counter("switchyard_failovers_total"); got != 0 {
		t.Fatalf("%v failovers before the fault", got)
	}
	w := r.watch()

	tFault := time.Now()
	if err := r.pools[0].SetFault(tc.fault); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", tc.detect)
	tSwitch := time.Now()
	t.Logf("%s: miners on p1 %s after the fault", tc.name, tSwitch.Sub(tFault).Round(time.Millisecond))
	r.checkFailoverReasons("p0", "p1", tc.reasons)
	r.waitMining(fleet, 1, n)

	// While p0 stays dark, miners stay on p1 (apart from failback probes
	// of a pool that looks healthy while idle).
	time.Sleep(time.Until(tSwitch.Add(tc.hold)))
	returns := w.returnsTo("p0", tSwitch, time.Now())
	if len(returns) > tc.returns {
		t.Errorf("miners went back to p0 %d times while it was still %s (at most %d allowed): %v", len(returns), tc.name, tc.returns, w)
	}
	for _, ret := range returns {
		if ret.stay > time.Second {
			t.Errorf("miners stayed %s on p0 while it was still %s: %v", ret.stay, tc.name, w)
		}
	}
	r.checkConnected(fleet, n)

	// p0 heals: failback only after failback_after (since it came back, or
	// since switchyard saw it live when it looked healthy all along).
	tRestore := time.Now()
	if err := r.pools[0].SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p0", 4*fa+5*time.Second)
	back, ok := w.firstTo("p0", tRestore)
	if !ok {
		t.Fatalf("no switch to p0 recorded: %v", w)
	}
	t.Logf("%s: failback %s after the restore (p0 live for %s)", tc.name,
		back.at.Sub(tRestore).Round(time.Millisecond), back.at.Sub(back.p0LiveSince).Round(time.Millisecond))
	if !tc.idleHealthy && back.at.Sub(tRestore) < fa {
		t.Errorf("failback %s after p0 came back, before failback_after %s", back.at.Sub(tRestore), fa)
	}
	if back.p0LiveSince.IsZero() || back.at.Sub(back.p0LiveSince) < fa {
		t.Errorf("failback when p0 had been live since %s, only %s: want at least %s",
			back.p0LiveSince.Format("15:04:05.000"), back.at.Sub(back.p0LiveSince), fa)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p1", "to", "p0", "reason", "failback"); got < 1 {
		t.Errorf("failovers_total{p1→p0, failback} = %v", got)
	}
	r.waitMining(fleet, 0, n)
	time.Sleep(500 * time.Millisecond)
	if ev := w.since(back.at); len(ev) > 1 && ev[len(ev)-1].active != "p0" {
		t.Errorf("miners left p0 again after failing back to the healthy pool: %v", w)
	}
	w.stop()
	r.checkConnected(fleet, n)
	r.closeAndAccount(fleet, accountOpts{})
}

// TestNoYoYo: a pool that comes back and dies again within failback_after
// never gets the miners back; once it stays up for failback_after, it does,
// exactly once.
func TestNoYoYo(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, nil, nil)
	fa := r.cfg.Failover.FailbackAfter.Duration()
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	w := r.watch()
	p0 := r.pools[0]

	const cycles = 3
	tFirst := time.Now()
	for i := range cycles {
		if err := p0.SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
			t.Fatal(err)
		}
		r.waitActive("p1", 5*time.Second)
		if err := p0.SetFault(sim.Fault{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "p0 to be live again", func() bool { return r.poolState("p0") == "live" })
		liveAt := time.Now()
		// Live again, but it dies again well within failback_after.
		time.Sleep(time.Until(liveAt.Add(fa / 2)))
		if a := r.app.Pools.Active(); a != "p1" {
			t.Fatalf("cycle %d: active pool %q half a hold after p0 came back", i, a)
		}
	}
	if err := p0.SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := w.returnsTo("p0", tFirst, time.Now()); len(got) != 0 {
		t.Errorf("miners went back to p0 %d times while it kept dying within the hold: %v", len(got), w)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p0", "to", "p1"); got != 1 {
		t.Errorf("failovers_total{p0→p1} = %v, want 1 (miners never went back)", got)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p1", "to", "p0"); got != 0 {
		t.Errorf("failovers_total{p1→p0} = %v, want 0", got)
	}
	if got := w.p0LiveSpells(); got < cycles {
		t.Errorf("p0 was live %d times, want %d: the pool never came back, the test proves nothing", got, cycles)
	}

	// Now it stays up: miners go back once, failback_after later.
	tUp := time.Now()
	if err := p0.SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p0", fa+3*time.Second)
	back, _ := w.firstTo("p0", tUp)
	if back.at.Sub(tUp) < fa {
		t.Errorf("failback %s after p0 came back for good, before failback_after %s", back.at.Sub(tUp), fa)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p1", "to", "p0", "reason", "failback"); got != 1 {
		t.Errorf("failovers_total{p1→p0, failback} = %v, want 1", got)
	}
	w.stop()
	r.waitMining(fleet, 0, n)
	r.checkConnected(fleet, n)
	r.closeAndAccount(fleet, accountOpts{})
}

// TestAllDownHold: with when_all_down = "hold", miners stay connected on
// their last job while no pool is live; their shares are answered and
// counted lost{no_upstream}; they resume the moment a pool is live again,
// with no hold time.
func TestAllDownHold(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, nil, func(c *config.Config) { c.Failover.WhenAllDown = config.WhenAllDownHold })
	fa := r.cfg.Failover.FailbackAfter.Duration()
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	w := r.watch()

	for _, p := range []*sim.Pool{r.pools[1], r.pools[0]} {
		if err := p.SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 3*time.Second, "no pool to be active", func() bool { return r.app.Pools.Active() == "" })
	if r.app.Pools.Live() {
		t.Error("Live() with every pool closed")
	}
	// Miners keep mining their last job; switchyard answers and counts
	// their shares as lost for want of a pool.
	lost0 := r.counter("switchyard_shares_total", "result", "lost", "reason", stratum.ReasonNoUpstream.String())
	acc0 := fleet.Stats().Accepted
	waitFor(t, 5*time.Second, "shares held while all pools are down", func() bool {
		lost := r.counter("switchyard_shares_total", "result", "lost", "reason", stratum.ReasonNoUpstream.String())
		return lost >= lost0+float64(n) && fleet.Stats().Accepted >= acc0+uint64(n)
	})
	r.checkConnected(fleet, n)

	// The backup comes back: miners resume at once, no failback hold.
	tUp := time.Now()
	if err := r.pools[1].SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", fa)
	back, _ := w.firstTo("p1", tUp)
	t.Logf("miners on p1 %s after it came back", back.at.Sub(tUp).Round(time.Millisecond))
	r.waitMining(fleet, 1, n)
	if got := r.counter("switchyard_failovers_total", "from", "none", "to", "p1", "reason", "recovered"); got != 1 {
		t.Errorf("failovers_total{none→p1, recovered} = %v, want 1", got)
	}
	w.stop()
	r.checkConnected(fleet, n)
	r.closeAndAccount(fleet, accountOpts{})
}

// TestAllDownDisconnect: with when_all_down = "disconnect", miners are
// closed when no pool is live (so ASICs use their own backup pools), and
// come back once a pool is.
func TestAllDownDisconnect(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, nil, func(c *config.Config) { c.Failover.WhenAllDown = config.WhenAllDownDisconnect })
	n := fleetSize()
	fleet := r.startFleet(n, func(c *sim.FleetConfig) { c.RetryDelay = 200 * time.Millisecond })
	r.waitMining(fleet, 0, n)

	for _, p := range []*sim.Pool{r.pools[1], r.pools[0]} {
		if err := p.SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "every miner to be disconnected", func() bool {
		return r.counter("switchyard_miner_connections_closed_total", "reason", "all_pools_down") >= float64(n)
	})
	// While all pools are down, miners that redial are turned away.
	time.Sleep(500 * time.Millisecond)
	if got := fleet.Stats().Ready; got != 0 {
		t.Errorf("%d miners mining with every pool down", got)
	}
	if got := sumMap(fleet.Stats().Disconnects); got < uint64(n) {
		t.Errorf("fleet saw %d disconnects, want at least %d", got, n)
	}

	if err := r.pools[1].SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", 3*time.Second)
	waitFor(t, 10*time.Second, "every miner to reconnect", func() bool { return fleet.Stats().Ready == int64(n) })
	r.waitMining(fleet, 1, n)
	r.closeAndAccount(fleet, accountOpts{disconnects: true})
}

// fleetSize is the number of miners for the failover tests.
func fleetSize() int {
	if race.Enabled {
		return 20
	}
	return 60
}

// startFleet starts n rate-capped, version-rolling miners against
// switchyard; mutate may adjust the config. The fleet is closed at cleanup.
func (r *rig) startFleet(n int, mutate func(c *sim.FleetConfig)) *sim.Fleet {
	r.t.Helper()
	cfg := sim.FleetConfig{
		Addr:               r.app.MinerAddr(),
		Miners:             n,
		User:               "rig",
		VersionRolling:     true,
		MaxSharesPerSecond: 2,
		RampUp:             500 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	f, err := sim.StartFleet(context.Background(), cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = f.Close() })
	return f
}

// waitMining waits until every miner is connected and pool i has accepted
// another 2n shares: the whole fleet is mining there.
func (r *rig) waitMining(f *sim.Fleet, i, n int) {
	r.t.Helper()
	from := r.pools[i].Stats().Accepted
	waitFor(r.t, 20*time.Second, fmt.Sprintf("%d miners mining on p%d", n, i), func() bool {
		return f.Stats().Ready == int64(n) && r.pools[i].Stats().Accepted >= from+uint64(2*n)
	})
}

// checkConnected checks that no miner connection was dropped, from both
// sides.
func (r *rig) checkConnected(f *sim.Fleet, n int) {
	r.t.Helper()
	fs := f.Stats()
	if d := sumMap(fs.Disconnects); d != 0 || fs.Up != int64(n) {
		r.t.Errorf("miners dropped: disconnects %v, %d of %d connected", fs.Disconnects, fs.Up, n)
	}
	if c := r.counter("switchyard_miner_connections_closed_total"); c != 0 {
		r.t.Errorf("switchyard closed %v miner connections", c)
	}
}

// checkFailoverReasons checks that every switch from → to carried one of
// reasons.
func (r *rig) checkFailoverReasons(from, to string, reasons []string) {
	r.t.Helper()
	total := r.counter("switchyard_failovers_total", "from", from, "to", to)
	var ok float64
	for _, why := range reasons {
		ok += r.counter("switchyard_failovers_total", "from", from, "to", to, "reason", why)
	}
	if total < 1 || ok != total {
		r.t.Errorf("failovers_total{%s→%s} = %v, %v of them with reason in %v", from, to, total, ok, reasons)
	}
}

// poolState returns the state switchyard reports for pool name.
func (r *rig) poolState(name string) string {
	for _, p := range r.app.Pools.Status() {
		if p.Name == name {
			return p.State
		}
	}
	return ""
}

type accountOpts struct {
	disconnects bool // miners were disconnected on purpose: shares may be lost on their side
	// books returns pool i's own counters; nil: r.pools[i].Stats().
	books func(i int) sim.PoolStats
}

// closeAndAccount closes the fleet, waits for the pools' answers to
// everything forwarded, and checks that every share is accounted for: the
// miners' own counts add up, switchyard answered every share the miners
// sent, and per pool every forwarded share got exactly one verdict, which
// agrees with the simulated pool's own books.
func (r *rig) closeAndAccount(f *sim.Fleet, o accountOpts) {
	t := r.t
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fs := f.Stats()
	if fs.Pending != 0 || fs.Submits != fs.Accepted+fs.RejectedTotal()+fs.Lost {
		t.Errorf("miners: %d submits != %d accepted + %d rejected + %d lost (pending %d)",
			fs.Submits, fs.Accepted, fs.RejectedTotal(), fs.Lost, fs.Pending)
	}
	if !o.disconnects && fs.Lost != 0 {
		t.Errorf("miners lost %d shares with no connection dropped", fs.Lost)
	}
	if fs.Accepted == 0 {
		t.Error("no share accepted: the test proves nothing")
	}
	acc := r.counter("switchyard_shares_total", "result", "accepted")
	rej := r.counter("switchyard_shares_total", "result", "rejected")
	lost := r.counter("switchyard_shares_total", "result", "lost")
	noUp := r.counter("switchyard_shares_total", "result", "lost", "reason", stratum.ReasonNoUpstream.String())
	if lost != noUp {
		t.Errorf("switchyard answered %v shares lost, %v of them for no_upstream", lost, noUp)
	}
	// Shares lost for want of a pool are answered true.
	answered := acc + rej + lost
	if !o.disconnects && (answered != float64(fs.Submits) || acc+lost != float64(fs.Accepted) || rej != float64(fs.RejectedTotal())) {
		t.Errorf("switchyard answered %v accepted + %v rejected + %v lost; miners sent %d: %d accepted, %d rejected %v, %d lost",
			acc, rej, lost, fs.Submits, fs.Accepted, fs.RejectedTotal(), fs.Rejected, fs.Lost)
	}
	// A miner cut off by switchyard loses the shares in flight: switchyard
	// answered them, or never read them.
	if o.disconnects && (answered > float64(fs.Submits) || float64(fs.Submits) > answered+float64(fs.Lost) ||
		acc+lost > float64(fs.Accepted+fs.Lost) || rej > float64(fs.RejectedTotal()+fs.Lost)) {
		t.Errorf("switchyard answered %v accepted + %v rejected + %v lost; miners sent %d: %d accepted, %d rejected %v, %d lost",
			acc, rej, lost, fs.Submits, fs.Accepted, fs.RejectedTotal(), fs.Rejected, fs.Lost)
	}
	for i, p := range r.pools {
		name := fmt.Sprintf("p%d", i)
		fwd := func() float64 { return r.counter("switchyard_pool_shares_forwarded_total", "pool", name) }
		verdicts := func() float64 { return r.counter("switchyard_pool_shares_total", "pool", name) }
		waitFor(t, 5*time.Second, "a verdict on every share forwarded to "+name, func() bool { return verdicts() == fwd() })
		pacc := r.counter("switchyard_pool_shares_total", "pool", name, "result", "accepted")
		prej := r.counter("switchyard_pool_shares_total", "pool", name, "result", "rejected")
		plost := r.counter("switchyard_pool_shares_total", "pool", name, "result", "lost")
		timeout := r.counter("switchyard_pool_shares_total", "pool", name, "result", "lost", "reason", stratum.ReasonSubmitTimeout.String())
		down := r.counter("switchyard_pool_shares_total", "pool", name, "result", "lost", "reason", stratum.ReasonUpstreamDown.String())
		if f := fwd(); f != pacc+prej+plost || plost != timeout+down {
			t.Errorf("%s: forwarded %v != accepted %v + rejected %v + lost %v (submit_timeout %v, upstream_down %v)",
				name, f, pacc, prej, plost, timeout, down)
		}
		ps := p.Stats()
		if o.books != nil {
			ps = o.books(i)
		}
		t.Logf("%s: forwarded %v: accepted %v, rejected %v, lost %v (submit_timeout %v, upstream_down %v); the pool's books: %s",
			name, fwd(), pacc, prej, plost, timeout, down, ps)
		// The pool judged every share whose verdict switchyard got. A
		// share switchyard gave up on (lost) may still have been judged by
		// the pool (read before it went dark, answered too late or never).
		pj := float64(ps.Accepted + ps.RejectedTotal())
		if float64(ps.Accepted) < pacc || float64(ps.RejectedTotal()) < prej || pj > pacc+prej+plost ||
			float64(ps.Submits) > fwd() {
			t.Errorf("%s: the pool's books (accepted %d, rejected %d of %d received) disagree with switchyard's (accepted %v, rejected %v, lost %v of %v forwarded)",
				name, ps.Accepted, ps.RejectedTotal(), ps.Submits, pacc, prej, plost, fwd())
		}
		if plost == 0 && (float64(ps.Accepted) != pacc || float64(ps.RejectedTotal()) != prej) {
			t.Errorf("%s: nothing lost, yet the pool accepted %d and rejected %d, switchyard saw %v and %v",
				name, ps.Accepted, ps.RejectedTotal(), pacc, prej)
		}
	}
}

// watcher records, every few milliseconds, which pool serves miners and
// p0's state as switchyard reports them.
type watcher struct {
	r    *rig
	quit chan struct{}
	done chan struct{}

	samples atomic.Uint64 // samples taken so far

	mu     sync.Mutex
	events []event
}

// event is a change of the active pool or of p0's state.
type event struct {
	at          time.Time
	active      string
	p0State     string
	p0LiveSince time.Time
}

// returnSpell is a stay on a pool.
type returnSpell struct {
	at   time.Time
	stay time.Duration
}

func (r *rig) watch() *watcher {
	w := &watcher{r: r, quit: make(chan struct{}), done: make(chan struct{})}
	var last event
	sample := func() {
		e := event{at: time.Now(), active: r.app.Pools.Active()}
		for _, p := range r.app.Pools.Status() {
			if p.Name == "p0" {
				e.p0State, e.p0LiveSince = p.State, p.LiveSince
			}
		}
		if e.active != last.active || e.p0State != last.p0State {
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
			last = e
		}
		w.samples.Add(1)
	}
	sample() // the state when watching starts is on record before watch returns
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.quit:
				return
			case <-time.After(5 * time.Millisecond):
			}
			sample()
		}
	}()
	r.t.Cleanup(w.stop)
	return w
}

// settle waits until the watcher has taken a full sample after the call,
// so what the caller just saw happen is on record.
func (w *watcher) settle() {
	n := w.samples.Load()
	for i := 0; i < 1000 && w.samples.Load() < n+2; i++ {
		select {
		case <-w.done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

func (w *watcher) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
}

func (w *watcher) since(t0 time.Time) []event {
	w.settle()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []event
	for _, e := range w.events {
		if !e.at.Before(t0) {
			out = append(out, e)
		}
	}
	return out
}

// firstTo returns the first switch to pool at or after t0.
func (w *watcher) firstTo(pool string, t0 time.Time) (event, bool) {
	w.settle()
	prev := ""
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.active == pool && prev != pool && !e.at.Before(t0) {
			return e, true
		}
		prev = e.active
	}
	return event{}, false
}

// returnsTo lists the stays on pool that began in [from, to).
func (w *watcher) returnsTo(pool string, from, to time.Time) []returnSpell {
	w.settle()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []returnSpell
	prev := ""
	for i, e := range w.events {
		if e.active == pool && prev != pool && !e.at.Before(from) && e.at.Before(to) {
			end := time.Now()
			for _, f := range w.events[i+1:] {
				if f.active != pool {
					end = f.at
					break
				}
			}
			out = append(out, returnSpell{at: e.at, stay: end.Sub(e.at)})
		}
		prev = e.active
	}
	return out
}

// p0LiveSpells counts the times p0 became live.
func (w *watcher) p0LiveSpells() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, prev := 0, ""
	for _, e := range w.events {
		if e.p0State == "live" && prev != "live" {
			n++
		}
		prev = e.p0State
	}
	return n
}

// String prints the timeline.
func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	if len(w.events) == 0 {
		return "(no events)"
	}
	t0 := w.events[0].at
	for _, e := range w.events {
		fmt.Fprintf(&b, "\n  +%6.3fs active=%-3s p0=%s", e.at.Sub(t0).Seconds(), e.active, e.p0State)
	}
	return b.String()
}
