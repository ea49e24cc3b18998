package app_test

import (
	"strings"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/testkit"
	"switchyard/sim"
	"switchyard/stratum"
)

// linkedRig is a rig whose pools switchyard reaches through user-space
// links (sim.Link), one per pool, set up by link (nil: a plain relay).
func linkedRig(t *testing.T, n int, link func(i int, c *sim.LinkConfig), poolCfg func(i int, c *sim.PoolConfig), mutate func(c *config.Config)) (*rig, []*sim.Link) {
	t.Helper()
	var links []*sim.Link
	r := newRig(t, n, poolCfg, func(c *config.Config) {
		for i := range c.Pools {
			lc := sim.LinkConfig{Target: strings.TrimPrefix(c.Pools[i].URL, "stratum+tcp://"), Seed: uint64(i + 1)}
			if link != nil {
				link(i, &lc)
			}
			l, err := sim.StartLink(lc)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			links = append(links, l)
			c.Pools[i].URL = "stratum+tcp://" + l.Addr()
		}
		if mutate != nil {
			mutate(c)
		}
	})
	return r, links
}

// lostTimeouts is p's shares switchyard counted lost to submit_timeout.
func (r *rig) lostTimeouts(pool string) float64 {
	return r.counter("switchyard_pool_shares_total", "pool", pool, "result", "lost", "reason", stratum.ReasonSubmitTimeout.String())
}

// TestDarkFastPoolLeftAtItsDeadline: a pool that answers in well under a
// millisecond goes dark under share flow; switchyard leaves it once a
// share is late by its learned deadline (the 500 ms floor here), long
// before submit_timeout (10 s) would have lost a share.
func TestDarkFastPoolLeftAtItsDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t, 2, nil, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(10 * time.Second)
		c.Failover.FailbackAfter = config.Duration(time.Hour)
	})
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	r.waitDeadline("p0", 500*time.Millisecond)
	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultBlackhole}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", 8*time.Second) // below submit_timeout: the learned deadline did it
	if lost := r.lostTimeouts("p0"); lost != 0 {
		t.Errorf("%v shares lost to submit_timeout by the switch: it waited for the ceiling", lost)
	}
	r.checkFailoverReasons("p0", "p1", []string{"submit_timeout"})
	for _, p := range r.app.Pools.Status() {
		if p.Name == "p0" && !strings.HasPrefix(p.Detail, "no answer within 500ms") {
			t.Errorf("p0 status detail %q, want the learned deadline", p.Detail)
		}
	}
	r.waitMining(fleet, 1, n)
	r.checkConnected(fleet, n)
	// Thawed, p0 answers what it holds: nothing left for the drain at Stop.
	if err := r.pools[0].SetFault(sim.Fault{}); err != nil {
		t.Fatal(err)
	}
}

// TestSlowHealthyPoolNotLeft: a pool behind a link of 250 ms ± 100 ms each
// way (answers in 300-700 ms, above the 500 ms floor) answers every share:
// the deadline it learns covers its answer time, and it is never left.
func TestSlowHealthyPoolNotLeft(t *testing.T) {
	t.Parallel()
	r, _ := linkedRig(t, 2, func(i int, c *sim.LinkConfig) {
		if i == 0 {
			c.Latency, c.Jitter = 250*time.Millisecond, 100*time.Millisecond
		}
	}, nil, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(3 * time.Second)
	})
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	w := r.watch()
	r.waitMining(fleet, 0, n)
	from := r.pools[0].Stats().Accepted
	waitFor(t, 15*time.Second, "p0 to answer 10 shares per miner", func() bool {
		return r.pools[0].Stats().Accepted >= from+uint64(10*n)
	})
	for _, e := range w.since(time.Time{}) {
		if e.active != "p0" {
			t.Fatalf("miners left the slow but healthy p0: %v", w)
		}
	}
	if got := r.counter("switchyard_failovers_total", "from", "p0"); got != 0 {
		t.Errorf("failovers_total{from p0} = %v", got)
	}
	if lost := r.lostTimeouts("p0"); lost != 0 {
		t.Errorf("%v shares lost", lost)
	}
}

// TestFalseAlarmReturnsAtOnce: the link to a fast pool stalls for 1.2 s,
// less than submit_timeout. Miners leave it at its deadline, and when its
// late shares are answered (none lost) they go back at once, not after
// failback_after (an hour here); the false alarm is counted.
func TestFalseAlarmReturnsAtOnce(t *testing.T) {
	t.Parallel()
	r, links := linkedRig(t, 2, nil, nil, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(3 * time.Second)
		c.Failover.FailbackAfter = config.Duration(time.Hour)
	})
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	r.waitDeadline("p0", 600*time.Millisecond) // so the stall outlasts it
	w := r.watch()
	t0 := time.Now()
	links[0].Stall(1200 * time.Millisecond)
	// The spell on p1 can be shorter than a poll of the active pool: the
	// switch is read from the timeline, which records every one.
	if !testkit.Poll(5*time.Second, func() bool {
		for _, e := range r.app.Status().Timeline {
			if e.To == "p1" && e.At.After(t0) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no switch to p1 within 5s of the stall; pools %+v", r.app.Pools.Status())
	}
	r.waitActive("p0", 5*time.Second)
	back, _ := w.firstTo("p0", t0)
	t.Logf("timeline after the stall:\n%s\nminers back on p0 %v after it began", w, back.at.Sub(t0).Round(time.Millisecond))
	if got := r.counter("switchyard_pool_false_alarms_total", "pool", "p0"); got != 1 {
		t.Errorf("false_alarms_total{p0} = %v, want 1", got)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p1", "to", "p0", "reason", "false_alarm"); got != 1 {
		t.Errorf("failovers_total{p1→p0, false_alarm} = %v, want 1", got)
	}
	if lost := r.lostTimeouts("p0"); lost != 0 {
		t.Errorf("%v shares lost to the stall", lost)
	}
	r.waitMining(fleet, 0, n)
	r.checkConnected(fleet, n)
}

// TestTwoSlowPoolsNoHold: both pools' links turn slow (400 ms each way)
// while every job is a new block, so most shares reach the pools after
// their job was replaced and are answered stale. Stale answers say nothing
// about credit, and a pool that answers late is not dark: miners are never
// held while either pool answers.
func TestTwoSlowPoolsNoHold(t *testing.T) {
	t.Parallel()
	r, links := linkedRig(t, 2, nil, func(i int, c *sim.PoolConfig) {
		c.JobInterval, c.CleanEvery = 250*time.Millisecond, 1
	}, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(3 * time.Second)
		c.Failover.WhenAllDown = config.WhenAllDownHold
	})
	n := fleetSize()
	fleet := r.startFleet(n, nil)
	r.waitMining(fleet, 0, n)
	w := r.watch()
	t0 := time.Now()
	for _, l := range links {
		l.SetLatency(400*time.Millisecond, 50*time.Millisecond)
	}
	stale0 := r.counter("switchyard_pool_shares_total", "result", "rejected")
	waitFor(t, 15*time.Second, "stale answers from the slow pools", func() bool {
		return r.counter("switchyard_pool_shares_total", "result", "rejected") >= stale0+float64(4*n)
	})
	time.Sleep(2 * time.Second) // more than a reject window's worth
	for _, e := range w.since(t0) {
		if e.active == "" {
			t.Fatalf("miners held with both pools answering: %v", w)
		}
	}
	if held := r.counter("switchyard_shares_total", "result", "lost", "reason", stratum.ReasonNoUpstream.String()); held != 0 {
		t.Errorf("%v shares lost for want of a pool", held)
	}
	for _, p := range []string{"p0", "p1"} {
		if got := r.counter("switchyard_failovers_total", "from", p, "reason", "rejecting"); got != 0 {
			t.Errorf("%s left as rejecting %v times: stale answers counted as refusals", p, got)
		}
	}
	r.checkConnected(fleet, n)
}
