package app

import (
	"context"
	"slices"
	"time"

	"switchyard/config"
	"switchyard/proxy"
	"switchyard/upstream"
)

// routeRun is one route running: its spec and its pool manager.
type routeRun struct {
	spec   config.RouteSpec
	mgr    *upstream.Manager
	cancel context.CancelFunc
	done   chan struct{}
}

// RoutePools maps a route's ranked pools to upstream pools, each with the
// tier it belongs to and its weight (see config.RouteSpec.Tiers).
func RoutePools(spec config.RouteSpec) []upstream.Pool {
	var out []upstream.Pool
	for t, tier := range spec.Tiers() {
		for _, p := range tier {
			up := upstreamPool(p)
			up.Tier, up.Weight = t, p.Weight
			out = append(out, up)
		}
	}
	return out
}

// routeOptions maps the routes to the proxy's: each route's options, the
// one route of each listener that has a single catch-all (known before a
// worker name), and the matcher for the others.
func routeOptions(specs []config.RouteSpec, listeners []string) ([]proxy.RouteOptions, []int, func(int, string) (int, bool)) {
	ros := make([]proxy.RouteOptions, len(specs))
	for i, s := range specs {
		ros[i] = proxy.RouteOptions{Name: s.Name, PerWorker: s.WorkerMode == config.WorkerModePerWorker}
	}
	lr := make([]int, len(listeners))
	for li, l := range listeners {
		lr[li] = -1
		n, only := 0, -1
		patterns := false
		for ri, s := range specs {
			if slices.Contains(s.Listen, l) {
				n++
				only = ri
				patterns = patterns || len(s.Workers) > 0
			}
		}
		if n == 1 && !patterns {
			lr[li] = only
		}
	}
	return ros, lr, config.NewRouter(listeners, specs).Match
}

// startRoute builds route spec's pool manager on sink and runs it until
// the App stops or the route is removed.
func (a *App) startRoute(cfg *config.Config, spec config.RouteSpec, sink upstream.Sink, ctx context.Context) *routeRun {
	mopts := ManagerOptions(cfg, a.log, a.Metrics)
	mopts.Route = spec.Name
	mopts.OnSwitch = a.timeline.Record
	rr := &routeRun{spec: spec, mgr: upstream.NewManager(RoutePools(spec), mopts, sink), done: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	rr.cancel = cancel
	a.wg.Add(1)
	go func() { defer a.wg.Done(); defer close(rr.done); rr.mgr.Run(rctx) }()
	return rr
}

// MinerAddrs returns the addresses miners connect to, one per listener
// (config.Listeners order).
func (a *App) MinerAddrs() []string { return a.Proxy.Addrs() }

// routes returns the routes running now.
func (a *App) routes() []*routeRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.routeRuns)
}

// allLive reports whether every route has a live pool.
func (a *App) allLive() bool {
	for _, r := range a.routes() {
		if !r.mgr.Live() {
			return false
		}
	}
	return true
}

// live reports whether some route has a live pool.
func (a *App) live() bool {
	for _, r := range a.routes() {
		if r.mgr.Live() {
			return true
		}
	}
	return false
}

// settled reports whether every route's pools have answered or failed.
func (a *App) settled() bool {
	for _, r := range a.routes() {
		if !r.mgr.Settled() {
			return false
		}
	}
	return true
}

// reloadRoutes applies cfg's routes: a route kept (by name) takes its new
// pool list and weights; a new route gets a pool manager; a removed one
// loses its miners to the routes that now match them and stops once
// their shares are answered. Miners whose route changed move with a new
// job. The listeners cannot change without a restart: that is reported.
func (a *App) reloadRoutes(old, cfg *config.Config) (needRestart []string) {
	if !slices.Equal(old.Listeners(), cfg.Listeners()) {
		return []string{"route.listen"}
	}
	specs := cfg.RouteSpecs()
	listeners := cfg.Listeners()
	byName := map[string]*routeRun{}
	for _, r := range a.routes() {
		byName[r.spec.Name] = r
	}
	ros, lr, match := routeOptions(specs, listeners)
	next := make([]*routeRun, len(specs))
	for i, s := range specs {
		if r := byName[s.Name]; r != nil {
			delete(byName, s.Name)
			r.spec = s
			r.mgr.SetPools(RoutePools(s))
			next[i] = r
			continue
		}
		sink := a.Proxy.NewRoute(ros[i])
		next[i] = a.startRoute(cfg, s, sink, a.restCtx)
		a.Proxy.SetUpstreamOf(s.Name, next[i].mgr)
		a.log.Info().Str("route", s.Name).Msg("route added")
	}
	a.mu.Lock()
	a.routeRuns = next
	if a.Pools != next[0].mgr {
		a.Pools = next[0].mgr
	}
	a.mu.Unlock()
	a.Proxy.SetRoutes(ros, lr, match)
	wait := cfg.Failover.SubmitTimeout.Duration() + time.Second
	for name, r := range byName {
		a.log.Info().Str("route", name).Msg("route removed: its miners moved to the routes that match them")
		time.AfterFunc(wait, r.cancel) // its forwarded shares get their answers first
	}
	return nil
}

// RouteStatus is one route in /api/v1/status.
type RouteStatus struct {
	Name       string            `json:"name"`
	Listen     []string          `json:"listen"`
	Workers    []string          `json:"workers,omitempty"`
	Miners     int               `json:"miners"`
	ActivePool string            `json:"active_pool"`
	AllDown    bool              `json:"all_down"`
	SplitSince time.Time         `json:"split_since,omitzero"`
	Moves      uint64            `json:"moves"`
	Split      []proxy.PoolSplit `json:"split"`
	Pools      []string          `json:"pools"`
}

// routeStatus reports every route.
func (a *App) routeStatus() []RouteStatus {
	splits := map[string]proxy.RouteSplit{}
	for _, s := range a.Proxy.Splits() {
		splits[s.Route] = s
	}
	var out []RouteStatus
	for _, r := range a.routes() {
		sp := splits[r.spec.Name]
		rs := RouteStatus{Name: r.spec.Name, Listen: r.spec.Listen, Workers: r.spec.Workers,
			Miners: a.Proxy.RouteMiners(r.spec.Name), ActivePool: r.mgr.Active(), AllDown: !r.mgr.Live(),
			SplitSince: sp.Since, Moves: sp.Moves, Split: sp.Pools}
		if rs.Split == nil {
			rs.Split = []proxy.PoolSplit{}
			for _, sh := range r.mgr.Serving() {
				rs.Split = append(rs.Split, proxy.PoolSplit{Pool: sh.Pool, Weight: sh.Weight, Target: 1})
			}
		}
		for _, p := range r.spec.Pools {
			rs.Pools = append(rs.Pools, p.Name)
		}
		out = append(out, rs)
	}
	return out
}
