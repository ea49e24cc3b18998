// Package metrics defines switchyard's Prometheus metrics and serves them,
// with health and status endpoints, over HTTP.
//
// New registers every collector into a registry the caller owns (no global
// registry, no promauto), so tests and embedders can build as many as they
// like. Callers increment the exported fields directly; for hot paths, resolve
// a vector's child once (Shares.WithLabelValues(...)) and keep it.
//
// Names follow switchyard_<subsystem>_<what>_<unit>; counters end in _total.
// Labels are bounded sets (pool, result, reason, state, limit, ...), never a
// miner, worker or IP address; per-worker series live apart, in Workers,
// which is only built when enabled.
//
// Share results are "accepted", "rejected" and "lost" (ResultAccepted, ...).
// An accepted share has the empty reason "": in PromQL an empty label is the
// same as no label, so switchyard_shares_total{result="accepted"} reads as
// intended and no made-up reason can collide with a real one.
package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Share results, the values of the "result" label.
const (
	ResultAccepted = "accepted"
	ResultRejected = "rejected"
	ResultLost     = "lost"
)

// DefaultRoute is the route label of a configuration without routes.
const DefaultRoute = "default"

// ReasonNone is the "reason" label of accepted shares.
const ReasonNone = ""

// Pool states, the values of switchyard_pool_state's "state" label.
const (
	StateConnecting  = "connecting"
	StateHandshaking = "handshaking"
	StateLive        = "live"
	StateSuspect     = "suspect"
	StateDown        = "down"
)

// poolStates lists the states SetPoolState keeps a series for.
var poolStates = [...]string{StateConnecting, StateHandshaking, StateLive, StateSuspect, StateDown}

// Limits, the values of switchyard_limit_hits_total's "limit" label: the
// [server] keys whose limit was hit.
const (
	LimitMaxConnections       = "max_connections"
	LimitMaxConnectionsPerIP  = "max_connections_per_ip"
	LimitAuthTimeout          = "auth_timeout"
	LimitMaxSubmitsPerSecond  = "max_submits_per_second"
	LimitMaxPendingWriteBytes = "max_pending_write_bytes"
	LimitMaxLineBytes         = "max_line_bytes"
)

var limits = [...]string{
	LimitMaxConnections, LimitMaxConnectionsPerIP, LimitAuthTimeout,
	LimitMaxSubmitsPerSecond, LimitMaxPendingWriteBytes, LimitMaxLineBytes,
}

// Protocol errors, the values of switchyard_protocol_errors_total's "kind"
// label: miner lines switchyard could not act on.
const (
	ProtocolMalformed     = "malformed"      // not a JSON-RPC object
	ProtocolUnknownMethod = "unknown_method" // a method switchyard does not serve
	ProtocolBadParams     = "bad_params"     // params of the wrong type or shape (submits count as shares rejected{reason="malformed"})
	ProtocolNoRoute       = "no_route"       // a mining.authorize whose worker name matches no route on its listener
)

var protocolErrors = [...]string{ProtocolMalformed, ProtocolUnknownMethod, ProtocolBadParams, ProtocolNoRoute}

// Histogram buckets.
var (
	// submitBuckets spans 1ms (a pool next door) to 10s (past any
	// submit_timeout).
	submitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// failoverBuckets spans 50ms (a hot standby takes over) to 60s.
	failoverBuckets = []float64{.05, .1, .25, .5, 1, 2, 5, 10, 20, 30, 60}
	// difficultyBuckets are powers of 4 from 1 to 4^20 (about 1.1e12):
	// every power-of-two difficulty sits on a bucket edge or halfway.
	difficultyBuckets = prometheus.ExponentialBuckets(1, 4, 21)
)

// Metrics holds switchyard's collectors. Each field's comment gives its
// metric name and labels.
type Metrics struct {
	// MinersConnected is switchyard_miners_connected: miner connections open now.
	MinersConnected prometheus.Gauge
	// ConnectionsOpened is switchyard_miner_connections_opened_total.
	ConnectionsOpened prometheus.Counter
	// ConnectionsClosed is switchyard_miner_connections_closed_total{reason}.
	ConnectionsClosed *prometheus.CounterVec

	// Shares is switchyard_shares_total{result,reason}: every share a miner
	// sent, by switchyard's verdict (accepted, rejected) or lost (accepted but
	// its forward to the pool failed). reason is "" for accepted shares.
	Shares *prometheus.CounterVec
	// ShareDifficulty is switchyard_share_difficulty_sum_total: the sum of
	// the difficulty of accepted shares. Hashrate = rate(...) * 2^32 H/s.
	ShareDifficulty prometheus.Counter

	// Forwarded is switchyard_pool_shares_forwarded_total{pool}.
	Forwarded *prometheus.CounterVec
	// ForwardedDifficulty is switchyard_forwarded_difficulty_sum_total{pool}:
	// the sum of the pool difficulty of forwarded shares.
	ForwardedDifficulty *prometheus.CounterVec
	// CreditedDifficulty is switchyard_pool_credited_difficulty_sum_total{pool}:
	// the sum of the pool difficulty of shares the pool accepted, which is
	// what it credits. Credit efficiency is its rate over the rate of
	// ShareDifficulty.
	CreditedDifficulty *prometheus.CounterVec
	// PoolVerdicts is switchyard_pool_shares_total{pool,result,reason}: the
	// pool's answer to forwarded shares (accepted, rejected, or lost with a
	// reason such as submit_timeout or upstream_down).
	PoolVerdicts *prometheus.CounterVec
	// SubmitLatency is switchyard_pool_submit_duration_seconds{pool}: from
	// forwarding a share to the pool's answer.
	SubmitLatency *prometheus.HistogramVec

	// PoolState is switchyard_pool_state{pool,state}: 1 for the pool's
	// current state, 0 for the others. Set it with SetPoolState.
	PoolState *prometheus.GaugeVec
	// ActivePool is switchyard_pool_active{pool}: 1 for the pool miners are
	// working for, 0 for the others. SetActivePool sets it.
	ActivePool *prometheus.GaugeVec
	// PoolLastJob is switchyard_pool_last_job_timestamp_seconds{pool}: Unix
	// time of the pool's latest mining.notify.
	PoolLastJob *prometheus.GaugeVec
	// PoolStateReason is switchyard_pool_state_reason{pool,reason}: 1 for
	// why the pool is not live (a bounded label such as unauthorized,
	// extranonce2_too_small, eof, submit_timeout, dial); no series while it
	// is live. Set it with SetPoolStateReason.
	PoolStateReason *prometheus.GaugeVec
	// PoolReconnects is switchyard_pool_reconnects_total{pool}: connections
	// a pool session made after an earlier connection of the same session
	// had been established. A session's first connection and dials that
	// fail are not counted.
	PoolReconnects *prometheus.CounterVec
	// UpstreamSessions is switchyard_pool_sessions{pool}: sessions open to
	// the pool.
	UpstreamSessions *prometheus.GaugeVec

	// Failovers is switchyard_failovers_total{from,to,reason}: moves of the
	// miners from one pool to another ("" when there was none).
	Failovers *prometheus.CounterVec
	// PoolFalseAlarms is switchyard_pool_false_alarms_total{pool}: times
	// miners left the pool while it was suspect (late shares) and it then
	// answered them in time, never down: a false alarm.
	PoolFalseAlarms *prometheus.CounterVec
	// FailoverDuration is switchyard_failover_duration_seconds: from the
	// active pool going dark to miners having work from the next one.
	// Failbacks are timed apart, in FailbackDuration.
	FailoverDuration prometheus.Histogram
	// FailbackDuration is switchyard_failback_duration_seconds: from the
	// decision to return to a better pool to miners having its work.
	FailbackDuration prometheus.Histogram

	// BlocksFound is switchyard_blocks_found_total{pool}: shares meeting the
	// network target, forwarded to the pool.
	BlocksFound *prometheus.CounterVec
	// VardiffDifficulty is switchyard_miner_difficulty: the difficulty given
	// to a miner, observed at each retarget.
	VardiffDifficulty prometheus.Histogram
	// LimitHits is switchyard_limit_hits_total{limit}: connections refused or
	// closed, and messages dropped, because a [server] limit was hit (see the
	// Limit constants).
	LimitHits *prometheus.CounterVec
	// ProtocolErrors is switchyard_protocol_errors_total{kind}: miner lines
	// answered with a Stratum error (or dropped, for notifications) because
	// they were malformed, named an unknown method or carried bad params
	// (see the Protocol constants). The connection stays open.
	ProtocolErrors *prometheus.CounterVec

	// RouteMiners is switchyard_route_miners{route}: miners authorized on
	// the route and connected.
	RouteMiners *prometheus.GaugeVec
	// SplitTarget is switchyard_route_split_target_ratio{route,pool}: the
	// pool's target fraction of the route's credited work (0 when it is not
	// serving the route).
	SplitTarget *prometheus.GaugeVec
	// SplitMeasured is switchyard_route_split_measured_ratio{route,pool}:
	// its fraction of the route's credited difficulty since the current
	// split began.
	SplitMeasured *prometheus.GaugeVec
	// SplitMoves is switchyard_route_split_moves_total{route}: miners moved
	// between pools to hold the split.
	SplitMoves *prometheus.CounterVec

	// Route is the route this view's route-labelled vectors are curried
	// with (ForRoute); "" for the root Metrics, whose route-labelled
	// vectors take the route as their first label value.
	Route string

	*book // pool states of this view; its mutex serializes SetPoolState, SetPoolStateReason and SetActivePool
}

// book is the pool states a Metrics (or a route's view) has set.
type book struct {
	mu         sync.Mutex
	poolState  map[string]string // pool → state set to 1
	poolReason map[string]string // pool → reason set to 1
	pools      map[string]bool   // pools seen, for SetActivePool
}

func newBook() *book {
	return &book{poolState: map[string]string{}, poolReason: map[string]string{}, pools: map[string]bool{}}
}

// New creates switchyard's collectors and registers them with reg; it panics
// if one is already registered there (a programming error). A nil reg
// leaves them unregistered, for tests that do not look at metrics.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		MinersConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_miners_connected",
			Help: "Miner connections open now.",
		}),
		ConnectionsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_miner_connections_opened_total",
			Help: "Miner connections accepted.",
		}),
		ConnectionsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_miner_connections_closed_total",
			Help: "Miner connections closed, by reason.",
		}, []string{"reason"}),
		Shares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_shares_total",
			Help: `Shares sent by miners, by result (accepted, rejected, lost) and reason ("" for accepted).`,
		}, []string{"route", "result", "reason"}),
		ShareDifficulty: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_share_difficulty_sum_total",
			Help: "Sum of the difficulty of accepted shares; rate() * 2^32 is the hashrate in H/s.",
		}),
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pool_shares_forwarded_total",
			Help: "Shares forwarded to a pool.",
		}, []string{"route", "pool"}),
		ForwardedDifficulty: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_forwarded_difficulty_sum_total",
			Help: "Sum of the pool difficulty of shares forwarded to a pool, whatever its verdict.",
		}, []string{"route", "pool"}),
		CreditedDifficulty: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pool_credited_difficulty_sum_total",
			Help: "Sum of the pool difficulty of forwarded shares the pool accepted: what it credits; rate() * 2^32 is the hashrate it pays for.",
		}, []string{"route", "pool"}),
		PoolVerdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pool_shares_total",
			Help: "Forwarded shares by the pool's verdict (accepted, rejected, lost) and reason.",
		}, []string{"route", "pool", "result", "reason"}),
		SubmitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_pool_submit_duration_seconds",
			Help:    "Time from forwarding a share to the pool's answer.",
			Buckets: submitBuckets,
		}, []string{"pool"}),
		PoolState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pool_state",
			Help: "1 for the pool's current state (connecting, handshaking, live, suspect, down), 0 for the others.",
		}, []string{"route", "pool", "state"}),
		ActivePool: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pool_active",
			Help: "1 for the pool miners are working for, 0 for the others.",
		}, []string{"route", "pool"}),
		PoolLastJob: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pool_last_job_timestamp_seconds",
			Help: "Unix time of the pool's latest job (mining.notify).",
		}, []string{"route", "pool"}),
		PoolStateReason: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pool_state_reason",
			Help: "1 for why the pool is not live (unauthorized, extranonce2_too_small, eof, submit_timeout, dial, ...); no series while it is live.",
		}, []string{"route", "pool", "reason"}),
		PoolReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pool_reconnects_total",
			Help: "Connections to the pool made again by a session after an earlier one of it had been established; first connections and failed dials are not counted.",
		}, []string{"route", "pool"}),
		UpstreamSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_pool_sessions",
			Help: "Sessions open to the pool.",
		}, []string{"route", "pool"}),
		Failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_failovers_total",
			Help: "Moves of the miners from one pool to another, by reason.",
		}, []string{"route", "from", "to", "reason"}),
		PoolFalseAlarms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_pool_false_alarms_total",
			Help: "Times miners left the pool while it was suspect for late shares and it then answered them in time, never down.",
		}, []string{"route", "pool"}),
		FailoverDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_failover_duration_seconds",
			Help:    "Time from the active pool going dark to miners having work from the next one.",
			Buckets: failoverBuckets,
		}),
		FailbackDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_failback_duration_seconds",
			Help:    "Time from deciding to return to a better pool to miners having its work.",
			Buckets: failoverBuckets,
		}),
		BlocksFound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_blocks_found_total",
			Help: "Shares meeting the network target (block candidates), forwarded to the pool.",
		}, []string{"route", "pool"}),
		VardiffDifficulty: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_miner_difficulty",
			Help:    "Difficulty given to miners, observed at each retarget.",
			Buckets: difficultyBuckets,
		}),
		LimitHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_limit_hits_total",
			Help: "Times a [server] limit was hit, by limit.",
		}, []string{"limit"}),
		ProtocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_protocol_errors_total",
			Help: "Miner lines switchyard could not act on, by kind (malformed, unknown_method, bad_params, no_route).",
		}, []string{"kind"}),
		RouteMiners: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_route_miners",
			Help: "Miners connected and authorized on the route.",
		}, []string{"route"}),
		SplitTarget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_route_split_target_ratio",
			Help: "The pool's target fraction of its route's credited work: its weight over the weights of the route's serving pools; 1 for a lone serving pool, 0 when not serving.",
		}, []string{"route", "pool"}),
		SplitMeasured: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_route_split_measured_ratio",
			Help: "The pool's fraction of its route's credited difficulty since the route's current split began.",
		}, []string{"route", "pool"}),
		SplitMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_route_split_moves_total",
			Help: "Miners moved between the route's pools, with a new job, to hold its split.",
		}, []string{"route"}),
		book: newBook(),
	}

	// Series that exist from the start, so that rate() and alerts see a 0
	// before the first event.
	for _, l := range limits {
		m.LimitHits.WithLabelValues(l)
	}
	for _, k := range protocolErrors {
		m.ProtocolErrors.WithLabelValues(k)
	}

	if reg != nil {
		reg.MustRegister(
			m.MinersConnected, m.ConnectionsOpened, m.ConnectionsClosed,
			m.Shares, m.ShareDifficulty,
			m.Forwarded, m.ForwardedDifficulty, m.CreditedDifficulty, m.PoolVerdicts, m.SubmitLatency,
			m.PoolState, m.PoolStateReason, m.ActivePool, m.PoolLastJob, m.PoolReconnects, m.UpstreamSessions,
			m.Failovers, m.PoolFalseAlarms, m.FailoverDuration, m.FailbackDuration,
			m.BlocksFound, m.VardiffDifficulty, m.LimitHits, m.ProtocolErrors,
			m.RouteMiners, m.SplitTarget, m.SplitMeasured, m.SplitMoves,
		)
	}
	return m
}

// ForRoute returns a view of m for one route: the same collectors, with
// every route-labelled vector curried with route, so that its callers
// label by pool (and result, state, ...) as if there were no routes. The
// view keeps its own pool states; it registers nothing.
func (m *Metrics) ForRoute(route string) *Metrics {
	l := prometheus.Labels{"route": route}
	v := *m
	v.book = newBook()
	v.Route = route
	v.Shares = m.Shares.MustCurryWith(l)
	v.Forwarded = m.Forwarded.MustCurryWith(l)
	v.ForwardedDifficulty = m.ForwardedDifficulty.MustCurryWith(l)
	v.CreditedDifficulty = m.CreditedDifficulty.MustCurryWith(l)
	v.PoolVerdicts = m.PoolVerdicts.MustCurryWith(l)
	v.PoolState = m.PoolState.MustCurryWith(l)
	v.ActivePool = m.ActivePool.MustCurryWith(l)
	v.PoolLastJob = m.PoolLastJob.MustCurryWith(l)
	v.PoolStateReason = m.PoolStateReason.MustCurryWith(l)
	v.PoolReconnects = m.PoolReconnects.MustCurryWith(l)
	v.UpstreamSessions = m.UpstreamSessions.MustCurryWith(l)
	v.Failovers = m.Failovers.MustCurryWith(l)
	v.PoolFalseAlarms = m.PoolFalseAlarms.MustCurryWith(l)
	v.BlocksFound = m.BlocksFound.MustCurryWith(l)
	v.RouteMiners = m.RouteMiners.MustCurryWith(l)
	v.SplitTarget = m.SplitTarget.MustCurryWith(l)
	v.SplitMeasured = m.SplitMeasured.MustCurryWith(l)
	v.SplitMoves = m.SplitMoves.MustCurryWith(l)
	if route != "" { // "": shares of miners not matched to a route yet, counted only if any
		v.Shares.WithLabelValues(ResultAccepted, ReasonNone)
		v.RouteMiners.WithLabelValues()
		v.SplitMoves.WithLabelValues()
	}
	return &v
}

// InitPool creates pool's series at zero (state down, not active, no
// shares), so that dashboards and alerts see every configured pool before
// its first event. Calling it again is harmless.
func (m *Metrics) InitPool(pool string) {
	m.Forwarded.WithLabelValues(pool)
	m.ForwardedDifficulty.WithLabelValues(pool)
	m.CreditedDifficulty.WithLabelValues(pool)
	m.PoolVerdicts.WithLabelValues(pool, ResultAccepted, ReasonNone)
	m.SubmitLatency.WithLabelValues(pool)
	m.PoolLastJob.WithLabelValues(pool)
	m.PoolReconnects.WithLabelValues(pool)
	m.UpstreamSessions.WithLabelValues(pool)
	m.BlocksFound.WithLabelValues(pool)

	m.mu.Lock()
	defer m.mu.Unlock()
	m.pools[pool] = true
	m.ActivePool.WithLabelValues(pool)
	if _, ok := m.poolState[pool]; !ok {
		m.setPoolState(pool, StateDown)
	}
}

// SetPoolState sets switchyard_pool_state to 1 for pool's state and to 0 for
// the other states (StateConnecting, StateHandshaking, StateLive,
// StateSuspect, StateDown). Safe for concurrent use.
func (m *Metrics) SetPoolState(pool, state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pools[pool] = true
	m.setPoolState(pool, state)
}

func (m *Metrics) setPoolState(pool, state string) {
	for _, s := range poolStates {
		if s != state {
			m.PoolState.WithLabelValues(pool, s).Set(0)
		}
	}
	if prev, ok := m.poolState[pool]; ok && prev != state && !isPoolState(prev) {
		m.PoolState.DeleteLabelValues(pool, prev) // not a listed state: drop rather than keep a 0
	}
	m.PoolState.WithLabelValues(pool, state).Set(1)
	m.poolState[pool] = state
}

// SetPoolStateReason sets switchyard_pool_state_reason to 1 for pool's
// reason and removes its previous reason's series; "" (the pool is live)
// removes them all. reason must come from a bounded set. Safe for
// concurrent use.
func (m *Metrics) SetPoolStateReason(pool, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, ok := m.poolReason[pool]
	if ok && prev == reason {
		return
	}
	if ok {
		m.PoolStateReason.DeleteLabelValues(pool, prev)
		delete(m.poolReason, pool)
	}
	if reason != "" {
		m.PoolStateReason.WithLabelValues(pool, reason).Set(1)
		m.poolReason[pool] = reason
	}
}

func isPoolState(s string) bool {
	for _, p := range poolStates {
		if p == s {
			return true
		}
	}
	return false
}

// SetActivePool sets switchyard_pool_active to 1 for pool and to 0 for every
// other pool seen by InitPool, SetPoolState or SetActivePool; "" marks none
// active. Safe for concurrent use.
func (m *Metrics) SetActivePool(pool string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pool != "" {
		m.pools[pool] = true
	}
	for p := range m.pools {
		v := 0.0
		if p == pool {
			v = 1
		}
		m.ActivePool.WithLabelValues(p).Set(v)
	}
}

// ForgetPool deletes the series labeled with pool, for a pool removed from
// the configuration: on a route's view (ForRoute) only that route's series,
// on the root Metrics every route's. The pool's
// switchyard_pool_submit_duration_seconds, which has no route label, goes
// with the last route's series of the pool. Failovers from or to it are
// kept: they are history.
func (m *Metrics) ForgetPool(pool string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := prometheus.Labels{"pool": pool}
	vecs := []interface {
		prometheus.Collector
		Delete(prometheus.Labels) bool
		DeletePartialMatch(prometheus.Labels) int
	}{
		m.Forwarded, m.ForwardedDifficulty, m.CreditedDifficulty, m.PoolVerdicts,
		m.PoolState, m.PoolStateReason, m.ActivePool, m.PoolLastJob, m.PoolReconnects, m.UpstreamSessions,
		m.PoolFalseAlarms, m.BlocksFound, m.SplitTarget, m.SplitMeasured,
	}
	// A view's vectors are curried with its route (so currying again fails),
	// and DeletePartialMatch ignores curried labels: on a view it would
	// delete every route's series of pool. A view deletes its own series one
	// by one, by their labels less the curried route.
	_, err := m.Forwarded.CurryWith(prometheus.Labels{"route": ""})
	view := err != nil
	otherRoutes := false
	for _, v := range vecs {
		if !view {
			v.DeletePartialMatch(l)
			continue
		}
		ch := make(chan prometheus.Metric)
		go func() { v.Collect(ch); close(ch) }()
		var mine []prometheus.Labels
		for s := range ch {
			var d dto.Metric
			if s.Write(&d) != nil {
				continue
			}
			ls := prometheus.Labels{}
			for _, p := range d.GetLabel() {
				ls[p.GetName()] = p.GetValue()
			}
			switch {
			case ls["pool"] != pool:
			case ls["route"] != m.Route:
				otherRoutes = true
			default:
				delete(ls, "route")
				mine = append(mine, ls)
			}
		}
		for _, ls := range mine { // after Collect, which holds the vector's lock
			v.Delete(ls)
		}
	}
	if !otherRoutes {
		m.SubmitLatency.DeletePartialMatch(l)
	}
	delete(m.pools, pool)
	delete(m.poolState, pool)
	delete(m.poolReason, pool)
}
