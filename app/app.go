// Package app wires switchyard together from a config: metrics, the pool
// manager, the miner-facing proxy and the HTTP endpoints. cmd/switchyard,
// the demo and the integration tests all start switchyard through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"

	"switchyard/config"
	"switchyard/metrics"
	"switchyard/proxy"
	"switchyard/upstream"
)

// App is a running switchyard.
type App struct {
	Proxy    *proxy.Server
	Pools    *upstream.Manager
	Metrics  *metrics.Metrics
	Registry *prometheus.Registry

	log     zerolog.Logger
	started time.Time
	version string
	history *History
	farm    *FarmHistory
	// timeline hears the pool manager's switches; miners answers the
	// miners API and the status page's census.
	timeline *Timeline
	miners   *proxy.MinerIndex

	mu        sync.Mutex
	cfg       *config.Config
	routeRuns []*routeRun
	restCtx   context.Context // lives until Stop's end: pool managers run on it

	stopProxy, stopRest context.CancelFunc
	proxyDone           chan struct{}
	wg                  sync.WaitGroup
	serveErr            error
	stopOnce            sync.Once
	minerAddr, httpAddr string
	httpLn              net.Listener // shared with a process taking over (handover.go)
}

// Option adjusts how Start builds an App.
type Option func(*options)

type options struct {
	splitEvery      time.Duration // WithSplitEvery
	historyInterval time.Duration
	handover        bool       // WithHandover
	inherit         *inherited // Takeover: listeners and lanes of the old process
}

// WithSplitEvery sets how often each route's split is looked at and
// miners moved to hold it (default 5s).
func WithSplitEvery(d time.Duration) Option {
	return func(o *options) { o.splitEvery = d }
}

// WithHistoryInterval sets the time between the hashrate samples kept for
// the status page (default 10s; the window stays 30 minutes, at most 1024
// samples).
func WithHistoryInterval(d time.Duration) Option {
	return func(o *options) { o.historyInterval = d }
}

// Start builds and starts switchyard from cfg. It returns once the miner
// listener (and the HTTP listener, if configured) accept connections. ctx
// bounds the start only: a running App stops with Stop, which drains.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger, version string, opts ...Option) (*App, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if _, err := Pools(cfg); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	met := metrics.New(reg)
	a := &App{Metrics: met, Registry: reg, log: log, started: time.Now(), version: version, cfg: cfg, proxyDone: make(chan struct{}),
		history: NewHistory(o.historyInterval, DefaultHistoryWindow), farm: NewFarmHistory(0), timeline: NewTimeline(0)}

	popts := ProxyOptions(cfg, log, met, version)
	specs, listeners := cfg.RouteSpecs(), cfg.Listeners()
	popts.Listeners = listeners
	popts.Routes, popts.ListenerRoute, popts.Route = routeOptions(specs, listeners)
	popts.SplitEvery = o.splitEvery
	if cfg.Metrics.PerWorker {
		popts.Workers = metrics.NewWorkers(reg, 0)
	}
	a.Proxy = proxy.New(popts, nil)
	groupOf, err := cfg.Metrics.GroupBy.Func()
	if err != nil {
		return nil, fmt.Errorf("metrics.group_by: %w", err)
	}
	a.miners = proxy.NewMinerIndex(a.Proxy.MinerRows, proxy.ProblemRules{Target: cfg.Difficulty.TargetShareInterval.Duration()}, groupOf)
	// The proxy stops first (Stop), the pools only once forwarded shares
	// have their answers.
	rest, stopRest := context.WithCancel(context.WithoutCancel(ctx))
	px, stopProxy := context.WithCancel(rest)
	a.stopProxy, a.stopRest, a.restCtx = stopProxy, stopRest, rest
	for i, spec := range specs {
		rr := a.startRoute(cfg, spec, a.Proxy.Sink(i), rest)
		a.Proxy.SetRouteUpstream(i, rr.mgr)
		a.routeRuns = append(a.routeRuns, rr)
	}
	a.Pools = a.routeRuns[0].mgr
	o.applyHandover(a)
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.sampleHistory(rest) }()
	go func() { defer a.wg.Done(); a.observeMiners(rest) }()
	a.awaitPools(ctx)
	go func() {
		defer close(a.proxyDone)
		if err := a.Proxy.Serve(px); err != nil {
			a.serveErr = err
		}
	}()
	addr, err := a.Proxy.Ready(ctx)
	if err != nil {
		stopRest()
		<-a.proxyDone
		a.wg.Wait()
		return nil, fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err)
	}
	a.minerAddr = addr

	if m := cfg.Metrics; m.Listen != "" {
		ln, err := o.httpListener(m.Listen)
		if err != nil {
			_ = a.Stop()
			return nil, fmt.Errorf("metrics.listen %s: %w", m.Listen, err)
		}
		a.httpAddr, a.httpLn = ln.Addr().String(), ln
		h := metrics.Handler(reg, metrics.HandlerOptions{
			Healthy:           a.live,
			Status:            func() any { return a.Status() },
			Miners:            func() any { return a.Proxy.MinerRows() },
			MinersQuery:       a.MinersQuery,
			BearerToken:       m.BearerToken,
			BasicAuthUser:     m.BasicAuthUser,
			BasicAuthPassword: m.BasicAuthPassword,
		})
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := metrics.Serve(rest, ln, h); err != nil {
				log.Error().Err(err).Msg("metrics server stopped")
			}
		}()
		log.Info().Str("listen", a.httpAddr).Msg("serving /metrics and /api/v1/status")
	}
	return a, nil
}

// active is the pool the first route mines on.
func (a *App) active() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Pools.Active()
}

// MinerAddr is the address miners connect to.
func (a *App) MinerAddr() string { return a.minerAddr }

// HTTPAddr is the address of /metrics and the API, or "".
func (a *App) HTTPAddr() string { return a.httpAddr }

// Stop drains and shuts down: the miner listener and connections close
// first, then switchyard waits (at most submit_timeout plus a second) for
// the pools' answers to shares already forwarded, then closes the pool
// sessions (anything still unanswered is counted lost, upstream_down).
func (a *App) Stop() error {
	a.stopOnce.Do(func() {
		a.stopProxy()
		<-a.proxyDone
		a.mu.Lock()
		wait := a.cfg.Failover.SubmitTimeout.Duration() + time.Second
		a.mu.Unlock()
		deadline := time.Now().Add(wait)
		for a.Proxy.InFlight() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		a.log.Info().Int64("unanswered", a.Proxy.InFlight()).Msg("miners closed; forwarded shares drained")
		a.stopRest()
		a.wg.Wait()
	})
	return a.serveErr
}

// Reload applies a new configuration without dropping miners: the pool
// list (added, removed, reordered, edited) and the difficulty policy take
// effect at once. Keys that shape listeners or sessions need a restart;
// they are named in the returned list ("server.listen", …) and otherwise
// ignored.
func (a *App) Reload(cfg *config.Config) (needRestart []string, err error) {
	if _, err := Pools(cfg); err != nil {
		return nil, err
	}
	a.mu.Lock()
	old := a.cfg
	a.cfg = cfg
	a.mu.Unlock()
	needRestart = restartKeys(old, cfg)
	a.Proxy.SetVardiff(Vardiff(cfg.Difficulty))
	if old.Metrics.GroupBy != cfg.Metrics.GroupBy {
		if f, err := cfg.Metrics.GroupBy.Func(); err == nil { // Load validated it
			a.miners.SetGroupBy(f)
		}
	}
	needRestart = append(needRestart, a.reloadRoutes(old, cfg)...)
	return needRestart, nil
}

// Status is the body of /api/v1/status.
type Status struct {
	Version       string        `json:"version"`
	UptimeSeconds float64       `json:"uptime_seconds"`
	ActivePool    string        `json:"active_pool"`
	Pools         []PoolStatus  `json:"pools"`
	Miners        proxy.Summary `json:"miners"`
	// CreditedDifficulty is what the pools accepted, each share at the
	// pool's difficulty, and MinerDifficulty the difficulty of the shares
	// switchyard accepted from miners, both since start. Their ratio,
	// CreditEfficiency, is about 1 on a healthy farm; outages (lost shares)
	// and pool rejects lower it. Absent before any share.
	CreditedDifficulty float64  `json:"credited_difficulty"`
	MinerDifficulty    float64  `json:"miner_difficulty"`
	CreditEfficiency   *float64 `json:"credit_efficiency,omitempty"`
	// History is the hashrate credited by each pool over the last 30
	// minutes (see History).
	History HistoryView `json:"history"`
	// AllDown is set while no pool is live: miners have no work.
	AllDown bool `json:"all_down"`
	// Farm is the farm at a glance: hashrate, reject and lost ratios over
	// 5 minutes, an hour and a day, and miners mining or idle.
	Farm FarmStatus `json:"farm"`
	// Failback is set while a pool ranked above the active one is live
	// and waits out failback_after before miners return to it.
	Failback *FailbackStatus `json:"failback,omitempty"`
	// Timeline is the latest switches between pools, newest first.
	Timeline []TimelineEvent `json:"timeline"`
	// Routes are the routes, each with its pools and its split.
	Routes []RouteStatus `json:"routes"`
}

// FarmStatus is the "farm" field of /api/v1/status.
type FarmStatus struct {
	// Windows are 5 min, 1 h and 24 h (FarmWindows).
	Windows []WindowRate `json:"windows"`
	// Miners counts the connected miners: mining (a share within 3 × their
	// target interval), idle (the others) and problem miners.
	Miners proxy.Census `json:"miners"`
}

// FailbackStatus is a healed pool waiting to take the miners back.
type FailbackStatus struct {
	Pool      string    `json:"pool"`
	LiveSince time.Time `json:"live_since"`
	// AfterSeconds is failback_after; RemainingSeconds what is left of it.
	// A pool that went dark again soon after an earlier failback waits
	// twice as long for each time (up to 16 ×), which is not shown here.
	AfterSeconds     float64 `json:"after_seconds"`
	RemainingSeconds float64 `json:"remaining_seconds"`
}

// PoolStatus is one pool in /api/v1/status: its state from the pool
// manager and its share counters since start.
type PoolStatus struct {
	// Route is the route whose pool this is (a pool in several routes is
	// listed once for each).
	Route string `json:"route"`
	upstream.PoolStatus
	// Forwarded counts shares sent to the pool; Accepted, Rejected and Lost
	// count the pool's verdicts on them (lost: no answer, or the pool went
	// away first).
	Forwarded float64 `json:"forwarded"`
	Accepted  float64 `json:"accepted"`
	Rejected  float64 `json:"rejected"`
	Lost      float64 `json:"lost"`
	// Credited is the sum of the pool difficulty of the shares it accepted.
	Credited float64 `json:"credited_difficulty"`
	// HashrateHs is the newest history sample for the pool, in H/s.
	HashrateHs float64 `json:"hashrate_hs"`
}

// Status reports the running state.
func (a *App) Status() Status {
	m := a.Metrics
	forwarded := sumBy(m.Forwarded, nil, "route", "pool")
	verdicts := map[string]map[string]float64{}
	for _, r := range []string{metrics.ResultAccepted, metrics.ResultRejected, metrics.ResultLost} {
		verdicts[r] = sumBy(m.PoolVerdicts, func(l map[string]string) bool { return l["result"] == r }, "route", "pool")
	}
	credited := sumBy(m.CreditedDifficulty, nil, "route", "pool")
	var ps []upstream.PoolStatus
	var route []string
	for _, r := range a.routes() {
		for _, p := range r.mgr.Status() {
			ps = append(ps, p)
			route = append(route, r.spec.Name)
		}
	}
	order := make([]string, len(ps))
	for i, p := range ps {
		order[i] = p.Name
	}
	history := a.history.Snapshot(order)
	latest := map[string]float64{}
	for _, s := range history.Series {
		if n := len(s.Points); n > 0 {
			latest[s.Pool] = s.Points[n-1][1]
		}
	}
	pools := make([]PoolStatus, 0, len(ps))
	for i, p := range ps {
		k := routePool(route[i], p.Name)
		pools = append(pools, PoolStatus{
			Route:      route[i],
			PoolStatus: p,
			Forwarded:  forwarded[k],
			Accepted:   verdicts[metrics.ResultAccepted][k],
			Rejected:   verdicts[metrics.ResultRejected][k],
			Lost:       verdicts[metrics.ResultLost][k],
			Credited:   credited[k],
			HashrateHs: latest[p.Name],
		})
	}
	now := time.Now()
	st := Status{
		AllDown:  !a.live(),
		Routes:   a.routeStatus(),
		Timeline: a.timeline.Events(),
		Farm: FarmStatus{
			Windows: a.farm.Rates(a.farmReading(now)),
			Miners:  a.miners.Census(now),
		},
		Version:         a.version,
		UptimeSeconds:   time.Since(a.started).Seconds(),
		ActivePool:      a.active(),
		Pools:           pools,
		Miners:          a.Proxy.Summary(),
		MinerDifficulty: counterValue(m.ShareDifficulty),
		History:         history,
	}
	for _, c := range credited {
		st.CreditedDifficulty += c
	}
	if st.MinerDifficulty > 0 {
		e := st.CreditedDifficulty / st.MinerDifficulty
		st.CreditEfficiency = &e
	}
	a.mu.Lock()
	after := a.cfg.Failover.FailbackAfter.Duration()
	a.mu.Unlock()
	st.Failback = failbackOf(a.Pools.Status(), after, now)
	return st
}

// failbackOf finds the best-ranked live pool above the active one: the one
// miners return to once it has been live for after.
func failbackOf(ps []upstream.PoolStatus, after time.Duration, now time.Time) *FailbackStatus {
	for _, p := range ps {
		if p.Active {
			return nil // every pool above it is not live
		}
		if p.State == upstream.StateLive.String() && !p.LiveSince.IsZero() {
			left := after - now.Sub(p.LiveSince)
			return &FailbackStatus{Pool: p.Name, LiveSince: p.LiveSince, AfterSeconds: after.Seconds(),
				RemainingSeconds: max(0, left.Seconds())}
		}
	}
	return nil
}

// MinersQuery answers /api/v1/miners with a query string (see
// proxy.ParseMinerQuery): one page of miners, grouped, problems first.
func (a *App) MinersQuery(v url.Values) (any, error) {
	q, err := proxy.ParseMinerQuery(v)
	if err != nil {
		return nil, err
	}
	return a.miners.Query(q, time.Now()), nil
}

// farmReading reads the farm's running totals now.
func (a *App) farmReading(now time.Time) FarmReading {
	r := FarmReading{At: now}
	for _, c := range sumByPool(a.Metrics.CreditedDifficulty, nil) {
		r.Credited += c
	}
	by := sumByLabel(a.Metrics.Shares, "result")
	r.Accepted, r.Rejected, r.Lost = by[metrics.ResultAccepted], by[metrics.ResultRejected], by[metrics.ResultLost]
	return r
}

// observeMiners has the miner index track reconnects every few seconds
// until ctx is done.
func (a *App) observeMiners(ctx context.Context) {
	every := min(5*time.Second, a.history.Interval())
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.miners.Observe(now)
		}
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// sampleHistory reads every pool's credited difficulty into the hashrate
// history once per interval until ctx is done.
func (a *App) sampleHistory(ctx context.Context) {
	t := time.NewTicker(a.history.Interval())
	defer t.Stop()
	a.history.Record(time.Now(), sumByPool(a.Metrics.CreditedDifficulty, nil))
	a.farm.Record(a.farmReading(time.Now()))
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.history.Record(now, sumByPool(a.Metrics.CreditedDifficulty, nil))
			a.farm.Record(a.farmReading(now))
		}
	}
}

// Pools maps the config's ranked [[pool]] tables to upstream pools.
func Pools(cfg *config.Config) ([]upstream.Pool, error) {
	var out []upstream.Pool
	for _, p := range cfg.Pools {
		out = append(out, upstreamPool(p))
	}
	if len(out) == 0 {
		return nil, errors.New("no [[pool]] configured")
	}
	return out, nil
}

// upstreamPool maps one [[pool]] table to how to reach the pool.
func upstreamPool(p config.Pool) upstream.Pool {
	return upstream.Pool{
		Name:          p.Name,
		URL:           p.URL,
		User:          p.User,
		Password:      p.Password,
		Bind:          p.Bind,
		Interface:     p.Interface,
		SOCKS5:        p.SOCKS5,
		TLSSkipVerify: p.TLSSkipVerify,
		TLSCAFile:     p.TLSCAFile,
		TLSPinSHA256:  p.TLSPinSHA256,
	}
}

// ManagerOptions maps [failover] to the pool manager's options.
func ManagerOptions(cfg *config.Config, log zerolog.Logger, met *metrics.Metrics) upstream.ManagerOptions {
	f := cfg.Failover
	return upstream.ManagerOptions{
		Session: upstream.Options{
			DialTimeout:      f.DialTimeout.Duration(),
			SubmitTimeout:    f.SubmitTimeout.Duration(),
			SubmitTimeoutMin: f.SubmitTimeoutMin.Duration(),
			JobTimeout:       f.JobTimeout.Duration(),
			Keepalive:        f.Keepalive.Duration(),
			UserTimeout:      f.UserTimeout.Duration(),
			BackoffMin:       f.BackoffMin.Duration(),
			BackoffMax:       f.BackoffMax.Duration(),
			VersionMask:      upstream.DefaultVersionMask,
			// A pool must hold switchyard's prefix and every miner's
			// fixed extranonce2.
			MinExtranonce2Size: cfg.Server.MinPoolExtranonce2Size,
			MaxRejectRatio:     f.MaxRejectRatio,
			RejectWindow:       f.RejectWindow,
			Log:                log,
		},
		FailbackAfter: f.FailbackAfter.Duration(),
		Standby:       f.Standby,
		Metrics:       met,
		Log:           log,
	}
}

// Vardiff maps [difficulty] to the proxy's difficulty policy.
func Vardiff(d config.Difficulty) proxy.Vardiff {
	return proxy.Vardiff{Initial: d.Initial, Min: d.Min, Max: d.Max,
		Target: d.TargetShareInterval.Duration(), Retarget: d.RetargetInterval.Duration()}
}

// ProxyOptions maps the config to the proxy's options.
func ProxyOptions(cfg *config.Config, log zerolog.Logger, met *metrics.Metrics, version string) proxy.Options {
	s := cfg.Server
	return proxy.Options{
		Listen:               s.Listen,
		EventLoops:           s.EventLoops,
		MaxConnections:       s.MaxConnections,
		MaxConnectionsPerIP:  s.MaxConnectionsPerIP,
		MaxLineBytes:         s.MaxLineBytes,
		AuthTimeout:          s.AuthTimeout.Duration(),
		MaxSubmitsPerSecond:  s.MaxSubmitsPerSecond,
		MaxPendingWriteBytes: s.MaxPendingWriteBytes,
		PrefixBytes:          s.Extranonce1Size,
		MinerExtranonce2Size: s.MinerExtranonce2Size(),
		PerWorker:            s.WorkerMode == config.WorkerModePerWorker,
		DisconnectWhenDown:   cfg.Failover.WhenAllDown == config.WhenAllDownDisconnect,
		ProxyProtocol:        s.ProxyProtocol,
		Vardiff:              Vardiff(cfg.Difficulty),
		Log:                  log,
		Metrics:              met,
		Version:              version,
	}
}

// awaitPools holds the miner listener back until the pools being connected
// have each sent a job or failed (bounded by the manager's startup grace,
// a few seconds), so miners start on the best pool that answered rather
// than on a backup they leave a moment later.
func (a *App) awaitPools(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !a.settled() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	if d := time.Since(start); d > time.Second {
		a.log.Info().Dur("waited", d).Msg("pools answered or failed: accepting miners")
	}
}
