package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"switchyard/app"
	"switchyard/config"
	"switchyard/sim"
)

// routeRig is switchyard with routes in front of simulated pools p0…pN-1,
// each accepting only its own account (acct<i>).
func routeRig(t *testing.T, n int, mutate func(c *config.Config)) *rig {
	t.Helper()
	return newRig(t, n, func(i int, c *sim.PoolConfig) {
		c.Users = []string{fmt.Sprintf("acct%d", i)}
	}, func(c *config.Config) {
		c.Failover.Standby = 0
		mutate(c)
	})
}

// fleetAt starts n miners against addr with worker names user.<i>.
func (r *rig) fleetAt(addr, user string, n int, rate float64) *sim.Fleet {
	r.t.Helper()
	f, err := sim.StartFleet(context.Background(), sim.FleetConfig{Addr: addr, Miners: n, User: user,
		VersionRolling: true, MaxSharesPerSecond: rate, RampUp: 200 * time.Millisecond})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = f.Close() })
	return f
}

// workersAt returns the worker names pool i saw on its accepted shares.
func (r *rig) workersAt(i int) map[string]int {
	out := map[string]int{}
	for _, e := range r.ledgers[i].entries(r.t) {
		if e.Result == sim.ResultAccepted {
			out[e.Worker]++
		}
	}
	return out
}

// routeOf finds a route in the status.
func routeOf(st app.Status, name string) (app.RouteStatus, bool) {
	for _, r := range st.Routes {
		if r.Name == name {
			return r, true
		}
	}
	return app.RouteStatus{}, false
}

// checkRouteBooks checks, after the fleets closed, that every share a
// route's miners had accepted is booked on that route, and that each
// route's pools got a verdict on every share forwarded to them.
func (r *rig) checkRouteBooks(route string, fleets ...*sim.Fleet) {
	r.t.Helper()
	var acc, rej uint64
	for _, f := range fleets {
		if err := f.Close(); err != nil {
			r.t.Fatal(err)
		}
		fs := f.Stats()
		acc += fs.Accepted
		rej += fs.RejectedTotal()
	}
	got := r.counter("switchyard_shares_total", "route", route, "result", "accepted") +
		r.counter("switchyard_shares_total", "route", route, "result", "lost")
	gotRej := r.counter("switchyard_shares_total", "route", route, "result", "rejected")
	if got != float64(acc) || gotRej != float64(rej) {
		r.t.Errorf("route %s: switchyard booked %v accepted and %v rejected, its miners %d and %d", route, got, gotRej, acc, rej)
	}
	fwd := func() float64 { return r.counter("switchyard_pool_shares_forwarded_total", "route", route) }
	verdicts := func() float64 { return r.counter("switchyard_pool_shares_total", "route", route) }
	waitFor(r.t, 5*time.Second, "a verdict on every share of route "+route, func() bool { return fwd() == verdicts() })
	if fwd() == 0 {
		r.t.Errorf("route %s forwarded nothing", route)
	}
}

// TestRoutesByListener: two customers on two listen addresses, each with
// its own pool and account, and one farm-wide backup. Each pool sees only
// its route's miners, under its route's account; when both customers'
// pools go dark the shared backup takes both routes, under its own
// account, without a miner dropped; the books hold per route.
func TestRoutesByListener(t *testing.T) {
	r := routeRig(t, 3, func(c *config.Config) {
		c.Server.WorkerMode = config.WorkerModePerWorker
		c.Routes = []config.Route{
			{Index: 0, Name: "alpha", Listen: config.Strings{"127.0.0.1:0"}, Pools: []string{"p0"}, Backup: config.Strings{"p2"}},
			{Index: 1, Name: "beta", Listen: config.Strings{"127.0.0.2:0"}, Pools: []string{"p1"}, Backup: config.Strings{"p2"}},
		}
	})
	addrs := r.app.MinerAddrs()
	if len(addrs) != 2 || !strings.HasPrefix(addrs[1], "127.0.0.2:") {
		t.Fatalf("listening on %v, want two addresses", addrs)
	}
	fa := r.fleetAt(addrs[0], "a.alice", 4, 4) // per-worker: the pool sees <account>.alice.<i>
	fb := r.fleetAt(addrs[1], "b.bob", 3, 4)
	waitFor(t, 15*time.Second, "both customers mining on their pools", func() bool {
		return r.pools[0].Stats().Accepted >= 20 && r.pools[1].Stats().Accepted >= 20
	})
	for i, want := range map[int]string{0: "acct0.farm.alice.", 1: "acct1.farm.bob."} {
		for w := range r.workersAt(i) {
			if !strings.HasPrefix(w, want) {
				t.Errorf("p%d got a share from worker %q, want only %s*", i, w, want)
			}
		}
	}
	if n := r.pools[2].Stats().Accepted; n != 0 {
		t.Errorf("the backup took %d shares while both customers' pools were live", n)
	}
	if m := r.counter("switchyard_route_miners", "route", "alpha"); m != 4 {
		t.Errorf("route_miners{alpha} = %v, want 4", m)
	}
	st := r.app.Status()
	if ra, ok := routeOf(st, "alpha"); !ok || ra.ActivePool != "p0" || ra.Miners != 4 {
		t.Errorf("status of alpha: %+v", ra)
	}

	r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose})
	r.pools[1].SetFault(sim.Fault{Mode: sim.FaultClose})
	from := r.pools[2].Stats().Accepted
	waitFor(t, 15*time.Second, "the shared backup taking both routes", func() bool {
		ws := r.workersAt(2)
		var a, b bool
		for w := range ws {
			a = a || strings.HasPrefix(w, "acct2.farm.alice.")
			b = b || strings.HasPrefix(w, "acct2.farm.bob.")
		}
		return a && b && r.pools[2].Stats().Accepted >= from+20
	})
	for _, name := range []string{"alpha", "beta"} {
		if ro, _ := routeOf(r.app.Status(), name); ro.ActivePool != "p2" {
			t.Errorf("route %s active on %q, want the backup p2", name, ro.ActivePool)
		}
	}
	fsa, fsb := fa.Stats(), fb.Stats()
	if d := sumMap(fsa.Disconnects) + sumMap(fsb.Disconnects); d != 0 {
		t.Errorf("miners dropped on the failover: %v %v", fsa.Disconnects, fsb.Disconnects)
	}
	r.checkRouteBooks("alpha", fa)
	r.checkRouteBooks("beta", fb)
}

// TestRouteByWorkerName: on one listener, workers matching "gamma.*" go to
// the gamma route's pool, the rest to the catch-all's; with only pattern
// routes on a listener, a worker matching none is refused at authorize.
func TestRouteByWorkerName(t *testing.T) {
	r := routeRig(t, 2, func(c *config.Config) {
		c.Routes = []config.Route{
			{Index: 0, Name: "gamma", Workers: []string{"gamma.*"}, Pools: []string{"p0"}},
			{Index: 1, Name: "rest", Pools: []string{"p1"}},
			{Index: 2, Name: "only", Listen: config.Strings{"127.0.0.3:0"}, Workers: []string{"known-*"}, Pools: []string{"p1"}},
		}
	})
	addrs := r.app.MinerAddrs()
	fg := r.fleetAt(addrs[0], "gamma", 3, 4)
	fo := r.fleetAt(addrs[0], "other", 3, 4)
	waitFor(t, 15*time.Second, "both routes mining", func() bool {
		return r.pools[0].Stats().Accepted >= 15 && r.pools[1].Stats().Accepted >= 15
	})
	if g, o := r.counter("switchyard_route_miners", "route", "gamma"), r.counter("switchyard_route_miners", "route", "rest"); g != 3 || o != 3 {
		t.Errorf("route_miners gamma %v, rest %v; want 3 and 3", g, o)
	}
	if n := r.counter("switchyard_shares_total", "route", "gamma", "result", "accepted"); n == 0 {
		t.Error("no share booked on route gamma")
	}
	c := dialClient(t, addrs[1])
	c.call("mining.subscribe", `[]`)
	if m := c.call("mining.authorize", `["stranger.1","x"]`); m.Error == nil {
		t.Errorf("a worker matching no route was authorized: %s", m.Result)
	}
	if m := c.call("mining.authorize", `["known-7","x"]`); m.Error != nil {
		t.Errorf("a worker matching the route was refused: %s", m.Error)
	}
	if n := r.counter("switchyard_protocol_errors_total", "kind", "no_route"); n != 1 {
		t.Errorf("protocol_errors{no_route} = %v, want 1", n)
	}
	r.checkRouteBooks("gamma", fg)
	r.checkRouteBooks("rest", fo)
}

// splitRig is one route over p0 (weight 70) and p1 (weight 30) of the
// same priority, with p2 as its backup.
func splitRig(t *testing.T, wa, wb int) *rig {
	return newRigOpts(t, 3, nil, func(c *config.Config) {
		c.Failover.Standby = 0
		c.Pools[0].Weight, c.Pools[1].Weight = wa, wb
		c.Pools[2].Priority = 10
		c.Routes = []config.Route{{Index: 0, Name: "split", Pools: []string{"p0", "p1"}, Backup: config.Strings{"p2"}}}
	}, app.WithSplitEvery(200*time.Millisecond))
}

// shareOf is each pool's fraction of the credited work since the marks.
func shareOf(r *rig, from []float64) []float64 {
	out := make([]float64, len(from))
	sum := 0.0
	for i := range from {
		out[i] = r.pools[i].Stats().CreditedWork - from[i]
		sum += out[i]
	}
	for i := range out {
		if sum > 0 {
			out[i] /= sum
		}
	}
	return out
}

func marks(r *rig) []float64 {
	out := make([]float64, len(r.pools))
	for i, p := range r.pools {
		out[i] = p.Stats().CreditedWork
	}
	return out
}

// TestSplit7030: a route splitting its miners 70/30 across two pools of the
// same priority sends each pool about its weight of the credited work,
// measured at the pools; a weighted pool that goes dark gives its share to
// the other (not to the backup) and gets it back once it has been live for
// failback_after; no miner connection drops.
func TestSplit7030(t *testing.T) {
	r := splitRig(t, 70, 30)
	f := r.fleetAt(r.app.MinerAddr(), "rig", 20, 10)
	waitFor(t, 15*time.Second, "both weighted pools mining", func() bool {
		return r.pools[0].Stats().Accepted >= 50 && r.pools[1].Stats().Accepted >= 20
	})
	m := marks(r)
	n0 := r.pools[0].Stats().Accepted + r.pools[1].Stats().Accepted
	waitFor(t, 30*time.Second, "1,000 more shares", func() bool {
		return r.pools[0].Stats().Accepted+r.pools[1].Stats().Accepted >= n0+1000
	})
	got := shareOf(r, m)
	t.Logf("credited at the pools: p0 %.3f, p1 %.3f, p2 %.3f", got[0], got[1], got[2])
	if got[0] < 0.6 || got[0] > 0.8 || got[2] != 0 {
		st, _ := routeOf(r.app.Status(), "split")
		t.Errorf("credited split %.3f/%.3f/%.3f, want about 0.70/0.30 and nothing at the backup; switchyard's view: %+v", got[0], got[1], got[2], st)
	}
	st, _ := routeOf(r.app.Status(), "split")
	if len(st.Split) != 2 || st.Split[0].Target != 0.7 || st.Split[1].Target != 0.3 {
		t.Errorf("status split %+v, want targets 0.7 and 0.3", st.Split)
	}
	if v := r.counter("switchyard_route_split_target_ratio", "route", "split", "pool", "p1"); v != 0.3 {
		t.Errorf("split_target_ratio{p1} = %v, want 0.3", v)
	}

	r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose})
	waitFor(t, 10*time.Second, "p1 taking p0's share", func() bool {
		return r.counter("switchyard_route_split_target_ratio", "route", "split", "pool", "p1") == 1
	})
	m = marks(r)
	time.Sleep(2 * time.Second)
	if got := shareOf(r, m); got[1] < 0.99 {
		t.Errorf("with p0 dark, p1 credited %.3f of the work (backup %.3f), want all", got[1], got[2])
	}
	r.pools[0].SetFault(sim.Fault{})
	waitFor(t, 15*time.Second, "p0 back in the split after failback_after", func() bool {
		return r.counter("switchyard_route_split_target_ratio", "route", "split", "pool", "p0") == 0.7
	})
	m = marks(r)
	time.Sleep(3 * time.Second)
	if got := shareOf(r, m); got[0] < 0.5 {
		t.Errorf("p0 back: credited %.3f/%.3f, want p0 back near 0.7", got[0], got[1])
	}
	fs := f.Stats()
	if d := sumMap(fs.Disconnects); d != 0 {
		t.Errorf("miners dropped: %v", fs.Disconnects)
	}
	if mv := r.counter("switchyard_route_split_moves_total", "route", "split"); mv == 0 {
		t.Error("no miner moved, yet the split changed twice")
	}
	r.checkRouteBooks("split", f)
}

// reloaded returns a copy of the rig's config changed by mutate.
func (r *rig) reloaded(mutate func(c *config.Config)) *config.Config {
	c := *r.cfg
	c.Pools = append([]config.Pool(nil), r.cfg.Pools...)
	c.Routes = append([]config.Route(nil), r.cfg.Routes...)
	mutate(&c)
	if err := c.Validate(); err != nil {
		r.t.Fatal(err)
	}
	return &c
}

// TestReloadSplitAndRoutes: SIGHUP's reload changes the weights (the split
// follows, miners moved with new jobs) and adds a worker-pattern route
// (the miners it matches move to its pool with a new job); no miner
// connection drops, and the books hold per route.
func TestReloadSplitAndRoutes(t *testing.T) {
	r := splitRig(t, 70, 30)
	f := r.fleetAt(r.app.MinerAddr(), "rig", 20, 10)
	waitFor(t, 15*time.Second, "both weighted pools mining", func() bool {
		return r.pools[0].Stats().Accepted >= 50 && r.pools[1].Stats().Accepted >= 20
	})
	moves := r.counter("switchyard_route_split_moves_total", "route", "split")
	cfg := r.reloaded(func(c *config.Config) { c.Pools[0].Weight, c.Pools[1].Weight = 20, 80 })
	if need, err := r.app.Reload(cfg); err != nil || len(need) != 0 {
		t.Fatalf("reload: %v, restart needed for %v", err, need)
	}
	r.cfg = cfg
	waitFor(t, 10*time.Second, "the new weights in force", func() bool {
		return r.counter("switchyard_route_split_target_ratio", "route", "split", "pool", "p1") == 0.8
	})
	m := marks(r)
	time.Sleep(4 * time.Second)
	if got := shareOf(r, m); got[1] < 0.6 {
		t.Errorf("after the reload to 20/80: credited %.3f/%.3f, want p1 near 0.8", got[0], got[1])
	}
	if mv := r.counter("switchyard_route_split_moves_total", "route", "split"); mv <= moves {
		t.Errorf("no miner moved on the new weights (moves %v → %v)", moves, mv)
	}

	// A new route takes the workers rig.1 and rig.1x on the backup pool.
	cfg = r.reloaded(func(c *config.Config) {
		c.Pools[2].Priority = 0
		c.Routes = append(c.Routes, config.Route{Index: 1, Name: "vip", Workers: []string{"rig.1*"}, Pools: []string{"p2"}})
	})
	if need, err := r.app.Reload(cfg); err != nil || len(need) != 0 {
		t.Fatalf("reload: %v, restart needed for %v", err, need)
	}
	r.cfg = cfg
	waitFor(t, 15*time.Second, "the vip miners on p2", func() bool {
		return r.counter("switchyard_route_miners", "route", "vip") == 11 && r.pools[2].Stats().Accepted >= 20
	})
	if n := r.counter("switchyard_route_miners", "route", "split"); n != 9 {
		t.Errorf("route_miners{split} = %v after 11 moved to vip, want 9", n)
	}
	fs := f.Stats()
	if d := sumMap(fs.Disconnects); d != 0 || fs.Up != 20 {
		t.Errorf("miners dropped by the reloads: %v, %d of 20 up", fs.Disconnects, fs.Up)
	}
	if c := r.counter("switchyard_miner_connections_closed_total"); c != 0 {
		t.Errorf("switchyard closed %v miner connections", c)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fs = f.Stats()
	var acc, rej float64
	for _, route := range []string{"split", "vip"} {
		acc += r.counter("switchyard_shares_total", "route", route, "result", "accepted")
		rej += r.counter("switchyard_shares_total", "route", route, "result", "rejected")
	}
	if acc != float64(fs.Accepted) || rej != float64(fs.RejectedTotal()) {
		t.Errorf("routes booked %v accepted, %v rejected; the miners %d and %d", acc, rej, fs.Accepted, fs.RejectedTotal())
	}
	for _, route := range []string{"split", "vip"} {
		fwd := func() float64 { return r.counter("switchyard_pool_shares_forwarded_total", "route", route) }
		verdicts := func() float64 { return r.counter("switchyard_pool_shares_total", "route", route) }
		waitFor(t, 5*time.Second, "a verdict on every share of route "+route, func() bool { return fwd() == verdicts() })
	}
}

// TestSplitWithoutRoutes: without [[route]], pools of one priority with
// weights split the one default route's miners as well.
func TestSplitWithoutRoutes(t *testing.T) {
	r := newRigOpts(t, 2, nil, func(c *config.Config) {
		c.Pools[0].Weight, c.Pools[1].Weight = 1, 1
	}, app.WithSplitEvery(200*time.Millisecond))
	f := r.fleetAt(r.app.MinerAddr(), "rig", 10, 10)
	waitFor(t, 15*time.Second, "both pools mining", func() bool {
		return r.pools[0].Stats().Accepted >= 100 && r.pools[1].Stats().Accepted >= 100
	})
	st, ok := routeOf(r.app.Status(), "default")
	if !ok || len(st.Split) != 2 || st.Split[0].Target != 0.5 {
		t.Errorf("default route's split %+v, want two pools at 0.5", st.Split)
	}
	r.checkRouteBooks("default", f)
}
