package proxy

import (
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"switchyard/metrics"
	"switchyard/stratum"
	"switchyard/upstream"
)

// A route is one pool manager's miners: those its listener and worker
// name send to it (Options.Match). Each route has its own pools, and so
// its own job streams on every lane: a feed per (lane, pool). A miner
// follows one feed of its route; the route's split decides which, and
// moving a miner to another pool is a new job from another feed — its
// prefix, and so its extranonce1, stays.
type route struct {
	name      string
	srv       *Server
	perWorker atomic.Bool      // worker_mode = "per-worker"; a reload may change it
	met       *metrics.Metrics // the route's view (route label curried)

	upMu sync.Mutex
	up   Upstream // its pool manager; set once, before miners arrive

	shares  shareCounters
	poolsMu sync.RWMutex
	pools   map[string]*poolCounters

	// set is the pools miners work for, as the pool side last said.
	set atomic.Pointer[servingSet]
	// allDown is set while no pool of the route is live.
	allDown atomic.Bool
	miners  prometheus.Gauge
	count   atomic.Int64 // miners authorized on it and connected
	moves   prometheus.Counter

	switchMu sync.Mutex
	switches map[int]*pendingSwitch // lane -> switch awaiting its first fan-out

	// credit is the pool difficulty each pool credited (accepted), and
	// split the controller's state (split.go).
	creditMu sync.Mutex
	credit   map[string]float64
	split    splitState
}

// servingSet is the route's serving pools (upstream.Sink.Serve).
type servingSet struct {
	shares   []upstream.Share
	total    int
	since    time.Time
	implicit bool // not named by the pool side: the pool that published last
}

// weight returns pool's weight in the set, 0 when it is not serving.
func (ss *servingSet) weight(pool string) int {
	if ss == nil {
		return 0
	}
	for _, sh := range ss.shares {
		if sh.Pool == pool {
			return sh.Weight
		}
	}
	return 0
}

// shareCounters are the miner-side share counters of one route.
type shareCounters struct {
	accepted prometheus.Counter
	rejected [stratum.NumReasons]prometheus.Counter
	lost     [stratum.NumReasons]prometheus.Counter
}

func (c *shareCounters) init(m *metrics.Metrics) {
	c.accepted = m.Shares.WithLabelValues(metrics.ResultAccepted, metrics.ReasonNone)
	for _, r := range stratum.Reasons() {
		c.rejected[r] = m.Shares.WithLabelValues(metrics.ResultRejected, r.String())
		c.lost[r] = m.Shares.WithLabelValues(metrics.ResultLost, r.String())
	}
}

func newRoute(s *Server, o RouteOptions) *route {
	met := s.met.ForRoute(o.Name)
	r := &route{name: o.Name, srv: s, met: met,
		pools: map[string]*poolCounters{}, switches: map[int]*pendingSwitch{}, credit: map[string]float64{},
		miners: met.RouteMiners.WithLabelValues(), moves: met.SplitMoves.WithLabelValues()}
	r.shares.init(met)
	r.perWorker.Store(o.PerWorker)
	return r
}

// join and leave count a miner in and out of the route.
func (r *route) join()  { r.count.Add(1); r.miners.Inc() }
func (r *route) leave() { r.count.Add(-1); r.miners.Dec() }

// RouteMiners returns how many miners are authorized on the route named
// name and connected.
func (s *Server) RouteMiners(name string) int {
	for _, r := range s.routeList() {
		if r.name == name {
			return int(r.count.Load())
		}
	}
	return 0
}

// upstream returns the route's pool manager, or nil.
func (r *route) upstream() Upstream {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	return r.up
}

// pool returns the counters of a pool of the route, creating them on first
// use.
func (r *route) pool(name string) *poolCounters {
	r.poolsMu.RLock()
	pc := r.pools[name]
	r.poolsMu.RUnlock()
	if pc != nil {
		return pc
	}
	r.poolsMu.Lock()
	defer r.poolsMu.Unlock()
	if pc = r.pools[name]; pc != nil {
		return pc
	}
	pc = newPoolCounters(r.met, name)
	r.pools[name] = pc
	return pc
}

// A feed is one pool's job stream on one lane for one route: the current
// job and its generation. Jobs of an older generation are stale for
// miners; when the pool stops serving the route, its feed's generation
// moves on so that shares on its jobs are refused (pool_switched).
type feed struct {
	route   *route
	pool    string
	lane    *lane
	cur     atomic.Pointer[laneJob]
	gen     atomic.Uint64
	serving atomic.Bool
}

// hasWork reports whether the feed serves its route and has a job.
func (f *feed) hasWork() bool { return f.serving.Load() && f.cur.Load() != nil }

// stale reports why a share on lj, from a miner now following mine,
// cannot count any more: ReasonStale after a newer clean job of its feed,
// ReasonPoolSwitched when its pool no longer serves the route and the
// miner has work from another (until that work reaches it, its shares on
// the old pool's job still go to that pool), ReasonNone while lj is
// current work.
func (f *feed) stale(lj *laneJob, mine *feed) stratum.Reason {
	serving := f.serving.Load()
	switch {
	case lj.gen < f.gen.Load() && serving:
		return stratum.ReasonStale
	case lj.gen < f.gen.Load(), !serving && mine != f:
		return stratum.ReasonPoolSwitched
	}
	return stratum.ReasonNone
}

// Sink returns the pool side's view of route i: the upstream.Sink its pool
// manager calls.
func (s *Server) Sink(i int) upstream.Sink { return s.routeList()[i] }

// SetRouteUpstream connects route i's pool manager; call before Serve.
func (s *Server) SetRouteUpstream(i int, up Upstream) {
	r := s.routeList()[i]
	r.upMu.Lock()
	r.up = up
	r.upMu.Unlock()
}

// Verdict counts a pool's verdict on a forwarded share. Called from
// upstream goroutines.
func (r *route) Verdict(sess *upstream.Session, v *upstream.Verdict) {
	s := r.srv
	s.inflight.Add(-1)
	pool := sess.Pool().Name
	pc := r.pool(pool)
	switch {
	case v.Accepted:
		pc.accepted.Inc()
		pc.credited.Add(v.Difficulty)
		r.creditMu.Lock()
		r.credit[pool] += v.Difficulty
		r.creditMu.Unlock()
		s.met.SubmitLatency.WithLabelValues(pool).Observe(v.RTT.Seconds())
	case v.Reason == stratum.ReasonPoolRejected:
		pc.rejected.Inc()
		s.met.SubmitLatency.WithLabelValues(pool).Observe(v.RTT.Seconds())
		s.log.Debug().Str("route", r.name).Str("pool", pool).Int("code", v.Code).Str("message", v.Message).Msg("pool rejected a share switchyard accepted")
	default:
		pc.lost[v.Reason].Inc()
		if e := s.log.Debug(); e.Enabled() {
			e.Str("route", r.name).Str("pool", pool).Str("reason", v.Reason.String()).Str("pool_job_id", v.JobID).
				Uint32("nonce", v.Nonce).Int("lane", sess.Lane()).Msg("forwarded share lost")
		}
	}
}

// Serve takes the route's serving pools from the pool side: feeds of pools
// that left stop (their jobs turn stale, pool_switched, for each miner as
// it gets work from a serving pool), feeds of pools that joined start
// afresh (their jobs follow), and miners on a feed that stopped move, with
// a new job, to a serving one that has work. The split starts again: its
// measure counts from now.
func (r *route) Serve(shares []upstream.Share) { r.serve(shares, false) }

func (r *route) serve(shares []upstream.Share, implicit bool) {
	s := r.srv
	ss := &servingSet{shares: slices.Clone(shares), since: time.Now(), implicit: implicit}
	for _, sh := range shares {
		ss.total += sh.Weight
	}
	r.set.Store(ss)
	r.allDown.Store(false)
	s.allDownRoutes()
	for _, l := range s.allLanes() {
		for _, sh := range shares {
			l.feed(r, sh.Pool) // exists before its first job
		}
		for _, f := range l.routeFeeds(r) {
			now := ss.weight(f.pool) > 0
			was := f.serving.Load()
			switch {
			case was && !now:
				f.serving.Store(false)
			case !was && now:
				f.cur.Store(nil)
				f.serving.Store(true)
			}
		}
	}
	s.kickSplit() // the split is measured afresh from its first balance
	// A switch to a pool already serving completes with this pass; one to
	// a pool whose work has not come yet completes with its first job;
	// one into a split, with the controller's moves (balance).
	sws := map[int]*pendingSwitch{}
	r.switchMu.Lock()
	for lane, sw := range r.switches {
		if len(shares) == 1 && r.hasWork(s.lane(lane)) {
			sws[lane] = sw
			delete(r.switches, lane)
		}
	}
	r.switchMu.Unlock()
	n := s.loopCount()
	for _, sw := range sws {
		sw.await(n)
	}
	s.eachLoop(func(lp *loop) {
		for m := range lp.miners {
			if m.route == r && m.mining() && (m.feed == nil || !m.feed.serving.Load()) {
				m.rehome(true)
			}
		}
		for _, sw := range sws {
			sw.step()
		}
	})
	if len(shares) > 1 {
		s.log.Info().Str("route", r.name).Int("pools", len(shares)).Msg("split: miners shared by weight")
	}
}

// hasWork reports whether some serving feed of the route on l has a job.
func (r *route) hasWork(l *lane) bool {
	for _, f := range l.routeFeeds(r) {
		if f.hasWork() {
			return true
		}
	}
	return false
}

// pick chooses a serving feed with work for a miner of the route on lane
// l that has none, by weight: the split controller corrects the choice
// with the miners' measured hashrate. nil when no serving feed has work.
func (r *route) pick(l *lane) *feed {
	ss := r.set.Load()
	if ss == nil {
		return nil
	}
	var (
		cands [8]*feed
		ws    [8]int
		n     int
		total int
	)
	for _, f := range l.routeFeeds(r) {
		if n == len(cands) {
			break
		}
		if w := ss.weight(f.pool); w > 0 && f.hasWork() {
			cands[n], ws[n] = f, w
			total += w
			n++
		}
	}
	if n == 0 {
		return nil
	}
	x := rand.IntN(total)
	for i := 0; i < n; i++ {
		if x < ws[i] {
			return cands[i]
		}
		x -= ws[i]
	}
	return cands[n-1]
}

// Publish makes j, from session sess, the current job of the route's feed
// for sess's pool on lane idx (see Server.Publish).
func (r *route) Publish(idx int, sess *upstream.Session, j *upstream.Job, switched bool) {
	r.srv.publish(r, idx, sess, j, switched)
}

// TimeSwitch arranges for done to be called with the time from since until
// lane idx's miners of the route have work from pool: its next job has
// been written to them, or, when pool joined a split, the controller's
// first balance with pool's work on the lane has moved its miners.
func (r *route) TimeSwitch(idx int, pool string, since time.Time, done func(time.Duration)) {
	r.switchMu.Lock()
	r.switches[idx] = &pendingSwitch{pool: pool, since: since, done: done}
	r.switchMu.Unlock()
}

// takeSwitch removes and returns the pending switch of lane idx to pool,
// if any.
func (r *route) takeSwitch(idx int, pool string) *pendingSwitch {
	r.switchMu.Lock()
	defer r.switchMu.Unlock()
	sw := r.switches[idx]
	if sw == nil || sw.pool != pool {
		return nil
	}
	delete(r.switches, idx)
	return sw
}

// takeSplitSwitches removes and returns the pending switches whose pool
// has work on their lane: into a split, they complete once the balance
// that follows has moved its miners.
func (r *route) takeSplitSwitches() []*pendingSwitch {
	r.switchMu.Lock()
	if len(r.switches) == 0 {
		r.switchMu.Unlock()
		return nil // the controller's usual tick
	}
	pending := maps.Clone(r.switches)
	r.switchMu.Unlock()
	var out []*pendingSwitch
	for idx, sw := range pending {
		if !r.srv.lane(idx).feed(r, sw.pool).hasWork() {
			continue
		}
		r.switchMu.Lock()
		if r.switches[idx] == sw {
			delete(r.switches, idx)
			out = append(out, sw)
		}
		r.switchMu.Unlock()
	}
	return out
}

// AllDown handles "no pool of the route is live": with
// DisconnectWhenDown its miners are closed so ASICs fall back to their own
// backup pools; otherwise they are held on their last job.
func (r *route) AllDown() {
	s := r.srv
	r.allDown.Store(true)
	s.allDownRoutes()
	if !s.opts.DisconnectWhenDown {
		s.log.Warn().Str("route", r.name).Msg("no pool is live: holding miners on their last job")
		return
	}
	s.log.Warn().Str("route", r.name).Msg("no pool is live: disconnecting miners")
	s.eachLoop(func(lp *loop) {
		for m := range lp.miners {
			if m.route == r {
				m.closeReason = CloseAllPoolsDown
				_ = m.c.Close()
			}
		}
	})
}

// routeTable is the routes and how miners are matched to them; replaced
// whole by SetRoutes.
type routeTable struct {
	routes []*route
	lr     []int
	fn     func(listener int, worker string) (int, bool)
	multi  bool // Options.Routes was given: ListenerRoute decides, not "the first route"
}

// routeList returns the routes in force.
func (s *Server) routeList() []*route { return s.table.Load().routes }

// newTable builds a route table, keeping the routes of old (by name) so
// that their miners, feeds and counters carry on.
func (s *Server) newTable(old *routeTable, ros []RouteOptions, lr []int, fn func(int, string) (int, bool)) *routeTable {
	t := &routeTable{lr: slices.Clone(lr), fn: fn, multi: len(ros) > 0}
	if len(ros) == 0 {
		ros = []RouteOptions{{Name: metrics.DefaultRoute, PerWorker: s.opts.PerWorker}}
	}
	byName := map[string]*route{}
	if old != nil {
		for _, r := range old.routes {
			byName[r.name] = r
		}
	}
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for _, ro := range ros {
		r := byName[ro.Name]
		if r == nil {
			r = s.pending[ro.Name]
			delete(s.pending, ro.Name)
		}
		if r == nil {
			r = newRoute(s, ro)
		}
		r.perWorker.Store(ro.PerWorker)
		t.routes = append(t.routes, r)
	}
	return t
}

func (t *routeTable) listenerRoute(i int) int {
	if !t.multi {
		return 0
	}
	if i < len(t.lr) {
		return t.lr[i]
	}
	return -1
}

func (t *routeTable) match(i int, worker string) (*route, bool) {
	if t.fn == nil {
		if ri := t.listenerRoute(i); ri >= 0 {
			return t.routes[ri], true
		}
		return t.routes[0], true
	}
	ri, ok := t.fn(i, worker)
	if !ok || ri < 0 || ri >= len(t.routes) {
		return nil, false
	}
	return t.routes[ri], true
}

// SetRoutes replaces the routes and how miners are matched to them (see
// Options.Routes, ListenerRoute and Route), at run time: routes are kept
// by name; every miner is matched again by its listener and first worker
// name, and one whose route changed moves to the new route's work with a
// new job (its connection stays). A miner that matches no route stays on
// its old route while that route still exists, and is closed otherwise
// (CloseNoRoute). Connect the pool managers of new routes
// (SetRouteUpstream) before calling it.
func (s *Server) SetRoutes(ros []RouteOptions, lr []int, fn func(listener int, worker string) (int, bool)) {
	old := s.table.Load()
	t := s.newTable(old, ros, lr, fn)
	s.table.Store(t)
	kept := map[*route]bool{}
	for _, r := range t.routes {
		kept[r] = true
	}
	s.eachLoop(func(lp *loop) {
		for m := range lp.miners {
			if !m.routed || len(m.workers) == 0 {
				if m.route != nil && !kept[m.route] {
					m.route = nil
					if ri := t.listenerRoute(m.listener); ri >= 0 {
						m.route = t.routes[ri]
					}
				}
				continue
			}
			r, ok := t.match(m.listener, m.workers[0].name)
			if !ok {
				if !kept[m.route] {
					m.closeReason = CloseNoRoute
					_ = m.c.Close()
				}
				continue
			}
			if r != m.route {
				m.reroute(r)
			}
		}
	})
}

// NewRoute adds a route for SetRoutes to take in: its pool manager can be
// connected (SetRouteUpstream by name) before miners are matched to it.
// It returns the route's Sink.
func (s *Server) NewRoute(ro RouteOptions) upstream.Sink {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for _, r := range s.routeList() {
		if r.name == ro.Name {
			return r
		}
	}
	if r := s.pending[ro.Name]; r != nil {
		return r
	}
	r := newRoute(s, ro)
	if s.pending == nil {
		s.pending = map[string]*route{}
	}
	s.pending[ro.Name] = r
	return r
}

// SetUpstreamOf connects the pool manager of the route named name (one in
// force, or added by NewRoute).
func (s *Server) SetUpstreamOf(name string, up Upstream) {
	var r *route
	for _, x := range s.routeList() {
		if x.name == name {
			r = x
		}
	}
	s.pendingMu.Lock()
	if r == nil {
		r = s.pending[name]
	}
	s.pendingMu.Unlock()
	if r == nil {
		return
	}
	r.upMu.Lock()
	r.up = up
	r.upMu.Unlock()
}

// reroute moves the miner to route r: it counts there, its workers are
// authorized on r's pools, and it gets r's work (clean_jobs only when the
// pool it worked for no longer serves).
func (m *miner) reroute(r *route) {
	m.route.leave()
	m.route = r
	r.join()
	if up := r.upstream(); up != nil && r.perWorker.Load() {
		for i := range m.workers {
			w := &m.workers[i]
			if w.upstream == "" {
				w.upstream = workerSuffix(w.name)
			}
			up.Authorize(m.lane.idx, w.upstream)
		}
	} else if !r.perWorker.Load() {
		for i := range m.workers {
			m.workers[i].upstream, m.workers[i].full, m.workers[i].fullPool = "", "", ""
		}
	}
	clean := m.feed == nil || !m.feed.serving.Load()
	if !m.rehome(clean) {
		m.feed = nil // the route's first job reaches it by the fan-out
	}
}
