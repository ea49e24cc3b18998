package metrics

import (
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewRegistersEverything(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)

	// Vectors only show once a child exists.
	m.ConnectionsClosed.WithLabelValues("eof")
	m.Forwarded.WithLabelValues("p")
	m.ForwardedDifficulty.WithLabelValues("p")
	m.PoolVerdicts.WithLabelValues("p", ResultAccepted, ReasonNone)
	m.SubmitLatency.WithLabelValues("p")
	m.SetPoolState("p", StateLive)
	m.ActivePool.WithLabelValues("p")
	m.PoolLastJob.WithLabelValues("p")
	m.PoolReconnects.WithLabelValues("p")
	m.UpstreamSessions.WithLabelValues("p")
	m.Failovers.WithLabelValues("a", "b", "eof")
	m.BlocksFound.WithLabelValues("p")
	m.CreditedDifficulty.WithLabelValues("p")
	m.SetPoolStateReason("p", "dial")
	m.PoolFalseAlarms.WithLabelValues("p")
	m.SplitTarget.WithLabelValues("p")
	m.SplitMeasured.WithLabelValues("p")
	// switchyard_route_miners and switchyard_route_split_moves_total come
	// with the route's view.

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"switchyard_miners_connected",
		"switchyard_miner_connections_opened_total",
		"switchyard_miner_connections_closed_total",
		"switchyard_shares_total",
		"switchyard_share_difficulty_sum_total",
		"switchyard_forwarded_difficulty_sum_total",
		"switchyard_pool_shares_forwarded_total",
		"switchyard_pool_shares_total",
		"switchyard_pool_submit_duration_seconds",
		"switchyard_pool_state",
		"switchyard_pool_active",
		"switchyard_pool_last_job_timestamp_seconds",
		"switchyard_pool_reconnects_total",
		"switchyard_failovers_total",
		"switchyard_failover_duration_seconds",
		"switchyard_failback_duration_seconds",
		"switchyard_blocks_found_total",
		"switchyard_miner_difficulty",
		"switchyard_limit_hits_total",
		"switchyard_protocol_errors_total",
		"switchyard_pool_sessions",
		"switchyard_pool_credited_difficulty_sum_total",
		"switchyard_pool_state_reason",
		"switchyard_pool_false_alarms_total",
		"switchyard_route_miners",
		"switchyard_route_split_target_ratio",
		"switchyard_route_split_measured_ratio",
		"switchyard_route_split_moves_total",
	} {
		if !got[name] {
			t.Errorf("%s not registered", name)
		}
		delete(got, name)
	}
	for name := range got {
		t.Errorf("unexpected metric %s", name)
	}

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewNilRegistry(t *testing.T) {
	m := New(nil)
	m.MinersConnected.Inc()
	if v := testutil.ToFloat64(m.MinersConnected); v != 1 {
		t.Errorf("unregistered gauge = %v, want 1", v)
	}
	// Two sets of metrics side by side, as tests build them.
	New(prometheus.NewRegistry())
	New(prometheus.NewRegistry())
}

func TestCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)

	m.ConnectionsOpened.Add(3)
	m.MinersConnected.Add(3)
	m.MinersConnected.Dec()
	m.ConnectionsClosed.WithLabelValues("eof").Inc()
	m.ConnectionsClosed.WithLabelValues("eof").Inc()
	m.Shares.WithLabelValues(ResultAccepted, ReasonNone).Add(5)
	m.Shares.WithLabelValues(ResultRejected, "stale").Inc()
	m.Shares.WithLabelValues(ResultLost, "upstream_down").Inc()
	m.ShareDifficulty.Add(5 * 65536)
	m.Forwarded.WithLabelValues("primary").Add(2)
	m.ForwardedDifficulty.WithLabelValues("primary").Add(2e6)
	m.PoolVerdicts.WithLabelValues("primary", ResultRejected, "pool_rejected").Inc()
	m.LimitHits.WithLabelValues(LimitMaxLineBytes).Inc()
	m.Failovers.WithLabelValues("primary", "backup", "submit_timeout").Inc()
	m.BlocksFound.WithLabelValues("backup").Inc()

	for _, tt := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.ConnectionsOpened, 3},
		{m.MinersConnected, 2},
		{m.ConnectionsClosed.WithLabelValues("eof"), 2},
		{m.Shares.WithLabelValues(ResultAccepted, ""), 5},
		{m.Shares.WithLabelValues(ResultRejected, "stale"), 1},
		{m.Shares.WithLabelValues(ResultLost, "upstream_down"), 1},
		{m.ShareDifficulty, 5 * 65536},
		{m.Forwarded.WithLabelValues("primary"), 2},
		{m.ForwardedDifficulty.WithLabelValues("primary"), 2e6},
		{m.PoolVerdicts.WithLabelValues("primary", ResultRejected, "pool_rejected"), 1},
		{m.LimitHits.WithLabelValues(LimitMaxLineBytes), 1},
		{m.LimitHits.WithLabelValues(LimitAuthTimeout), 0},
		{m.Failovers.WithLabelValues("primary", "backup", "submit_timeout"), 1},
		{m.BlocksFound.WithLabelValues("backup"), 1},
	} {
		if got := testutil.ToFloat64(tt.c); got != tt.want {
			t.Errorf("%v = %v, want %v", tt.c, got, tt.want)
		}
	}

	want := `
# HELP switchyard_shares_total Shares sent by miners, by result (accepted, rejected, lost) and reason ("" for accepted).
# TYPE switchyard_shares_total counter
switchyard_shares_total{reason="",result="accepted",route="default"} 5
switchyard_shares_total{reason="stale",result="rejected",route="default"} 1
switchyard_shares_total{reason="upstream_down",result="lost",route="default"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_shares_total"); err != nil {
		t.Error(err)
	}
}

func TestZeroSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	if n := testutil.CollectAndCount(reg, "switchyard_limit_hits_total"); n != len(limits) {
		t.Errorf("limit series = %d, want %d (one per limit)", n, len(limits))
	}
	if n := testutil.CollectAndCount(reg, "switchyard_protocol_errors_total"); n != len(protocolErrors) {
		t.Errorf("protocol error series = %d, want %d (one per kind)", n, len(protocolErrors))
	}
	// No route is known yet, so no route has series: a made-up one would
	// stay at 0 forever next to the configured routes.
	for _, name := range []string{"switchyard_shares_total", "switchyard_route_miners", "switchyard_route_split_moves_total"} {
		if n := testutil.CollectAndCount(reg, name); n != 0 {
			t.Errorf("%s series before any route = %d, want 0", name, n)
		}
	}

	// Each route's view brings its accepted shares, miners and moves at 0.
	m.ForRoute(DefaultRoute)
	m.ForRoute("alpha")
	want := `
# HELP switchyard_shares_total Shares sent by miners, by result (accepted, rejected, lost) and reason ("" for accepted).
# TYPE switchyard_shares_total counter
switchyard_shares_total{reason="",result="accepted",route="alpha"} 0
switchyard_shares_total{reason="",result="accepted",route="default"} 0
# HELP switchyard_route_miners Miners connected and authorized on the route.
# TYPE switchyard_route_miners gauge
switchyard_route_miners{route="alpha"} 0
switchyard_route_miners{route="default"} 0
# HELP switchyard_route_split_moves_total Miners moved between the route's pools, with a new job, to hold its split.
# TYPE switchyard_route_split_moves_total counter
switchyard_route_split_moves_total{route="alpha"} 0
switchyard_route_split_moves_total{route="default"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"switchyard_shares_total", "switchyard_route_miners", "switchyard_route_split_moves_total"); err != nil {
		t.Error(err)
	}
	// Pool series wait for InitPool: a route does not know its pools yet.
	if n := testutil.CollectAndCount(reg, "switchyard_pool_state"); n != 0 {
		t.Errorf("pool_state series before InitPool = %d, want 0", n)
	}
}

func TestHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.SubmitLatency.WithLabelValues("primary").Observe(0.004)
	m.FailoverDuration.Observe(0.3)
	m.VardiffDifficulty.Observe(65536)

	want := `
# HELP switchyard_failover_duration_seconds Time from the active pool going dark to miners having work from the next one.
# TYPE switchyard_failover_duration_seconds histogram
switchyard_failover_duration_seconds_bucket{le="0.05"} 0
switchyard_failover_duration_seconds_bucket{le="0.1"} 0
switchyard_failover_duration_seconds_bucket{le="0.25"} 0
switchyard_failover_duration_seconds_bucket{le="0.5"} 1
switchyard_failover_duration_seconds_bucket{le="1"} 1
switchyard_failover_duration_seconds_bucket{le="2"} 1
switchyard_failover_duration_seconds_bucket{le="5"} 1
switchyard_failover_duration_seconds_bucket{le="10"} 1
switchyard_failover_duration_seconds_bucket{le="20"} 1
switchyard_failover_duration_seconds_bucket{le="30"} 1
switchyard_failover_duration_seconds_bucket{le="60"} 1
switchyard_failover_duration_seconds_bucket{le="+Inf"} 1
switchyard_failover_duration_seconds_sum 0.3
switchyard_failover_duration_seconds_count 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_failover_duration_seconds"); err != nil {
		t.Error(err)
	}

	if b := submitBuckets; b[0] != 0.001 || b[len(b)-1] != 10 {
		t.Errorf("submit buckets %v, want 1ms..10s", b)
	}
	if b := difficultyBuckets; b[0] != 1 || b[len(b)-1] < 1e12 || b[len(b)-2] >= 1e12 {
		t.Errorf("difficulty buckets %v, want 1..1e12", b)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_miner_difficulty" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 65536 && b.GetCumulativeCount() != 1 {
				t.Errorf("65536 not in the le=65536 bucket")
			}
		}
	}
}

func TestSetPoolState(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.SetPoolState("primary", StateConnecting)
	m.SetPoolState("primary", StateLive)
	m.SetPoolState("backup", StateDown)

	want := `
# HELP switchyard_pool_state 1 for the pool's current state (connecting, handshaking, live, suspect, down), 0 for the others.
# TYPE switchyard_pool_state gauge
switchyard_pool_state{pool="backup",route="default",state="connecting"} 0
switchyard_pool_state{pool="backup",route="default",state="down"} 1
switchyard_pool_state{pool="backup",route="default",state="handshaking"} 0
switchyard_pool_state{pool="backup",route="default",state="live"} 0
switchyard_pool_state{pool="backup",route="default",state="suspect"} 0
switchyard_pool_state{pool="primary",route="default",state="connecting"} 0
switchyard_pool_state{pool="primary",route="default",state="down"} 0
switchyard_pool_state{pool="primary",route="default",state="handshaking"} 0
switchyard_pool_state{pool="primary",route="default",state="live"} 1
switchyard_pool_state{pool="primary",route="default",state="suspect"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_pool_state"); err != nil {
		t.Error(err)
	}

	// A state outside the list is shown while current, then dropped.
	m.SetPoolState("backup", "paused")
	if v := testutil.ToFloat64(m.PoolState.WithLabelValues("backup", "paused")); v != 1 {
		t.Errorf("paused = %v, want 1", v)
	}
	m.SetPoolState("backup", StateLive)
	if n := testutil.CollectAndCount(m.PoolState); n != 10 {
		t.Errorf("pool_state series = %d, want 10 (paused dropped)", n)
	}
}

func TestSetPoolStateConcurrent(t *testing.T) {
	m := New(prometheus.NewRegistry()).ForRoute(DefaultRoute)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				m.SetPoolState("p", poolStates[(i+j)%len(poolStates)])
			}
		})
	}
	wg.Wait()
	ones := 0
	for _, s := range poolStates {
		ones += int(testutil.ToFloat64(m.PoolState.WithLabelValues("p", s)))
	}
	if ones != 1 {
		t.Errorf("%d states at 1, want exactly 1", ones)
	}
}

func TestActivePoolAndInitPool(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.InitPool("primary")
	m.InitPool("backup")
	m.InitPool("backup")

	if v := testutil.ToFloat64(m.PoolState.WithLabelValues("backup", StateDown)); v != 1 {
		t.Errorf("new pool state down = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(reg, "switchyard_pool_shares_forwarded_total"); n != 2 {
		t.Errorf("forwarded series = %d, want 2 (one per pool)", n)
	}

	m.SetActivePool("primary")
	m.SetActivePool("backup")
	if a, b := testutil.ToFloat64(m.ActivePool.WithLabelValues("primary")), testutil.ToFloat64(m.ActivePool.WithLabelValues("backup")); a != 0 || b != 1 {
		t.Errorf("active primary=%v backup=%v, want 0 1", a, b)
	}
	m.SetActivePool("")
	if b := testutil.ToFloat64(m.ActivePool.WithLabelValues("backup")); b != 0 {
		t.Errorf("active backup = %v after none, want 0", b)
	}

	m.SetPoolState("backup", StateLive)
	m.ForgetPool("backup")
	for _, name := range []string{"switchyard_pool_shares_forwarded_total", "switchyard_pool_state", "switchyard_pool_active"} {
		if n := testutil.CollectAndCount(reg, name); n == 0 {
			t.Errorf("%s: primary's series gone too", name)
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == "pool" && l.GetValue() == "backup" {
					t.Errorf("%s still has pool=backup", mf.GetName())
				}
			}
		}
	}
}

// poolSeries counts, by metric name, the series reg has for pool on route
// ("" for series without a route label).
func poolSeries(t *testing.T, reg prometheus.Gatherer, route, pool string) map[string]int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mm.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if r, ok := l["route"]; l["pool"] == pool && (r == route || !ok && route == "") {
				got[mf.GetName()]++
			}
		}
	}
	return got
}

func TestRouteViewsKeepTheirOwnPools(t *testing.T) {
	reg := prometheus.NewRegistry()
	root := New(reg)
	a, b := root.ForRoute("a"), root.ForRoute("b")
	if a.Route != "a" || b.Route != "b" || root.Route != "" {
		t.Fatalf("routes root=%q a=%q b=%q", root.Route, a.Route, b.Route)
	}
	for _, p := range []string{"shared", "a-main"} {
		a.InitPool(p)
	}
	for _, p := range []string{"shared", "b-main"} {
		b.InitPool(p)
	}
	for _, m := range []*Metrics{a, b} {
		m.Forwarded.WithLabelValues("shared").Add(3)
		m.PoolVerdicts.WithLabelValues("shared", ResultLost, "submit_timeout").Inc()
		m.SplitTarget.WithLabelValues("shared").Set(0.5)
		m.SplitMeasured.WithLabelValues("shared").Set(0.5)
		m.PoolFalseAlarms.WithLabelValues("shared").Inc()
	}
	a.SubmitLatency.WithLabelValues("shared").Observe(0.01) // one histogram for the pool, whatever the route

	// Each route's state of the shared pool is its own: setting one does
	// not zero the other's.
	b.SetPoolState("shared", StateSuspect)
	a.SetPoolState("shared", StateLive)
	a.SetPoolState("shared", StateDown)
	b.SetPoolStateReason("shared", "submit_timeout")
	a.SetPoolStateReason("shared", "eof")
	a.SetPoolStateReason("shared", "")
	for _, tt := range []struct {
		route, state string
		want         float64
	}{
		{"a", StateDown, 1}, {"a", StateLive, 0}, {"a", StateSuspect, 0},
		{"b", StateSuspect, 1}, {"b", StateLive, 0}, {"b", StateDown, 0},
	} {
		if v := testutil.ToFloat64(root.PoolState.WithLabelValues(tt.route, "shared", tt.state)); v != tt.want {
			t.Errorf("route %s shared %s = %v, want %v", tt.route, tt.state, v, tt.want)
		}
	}
	want := `
# HELP switchyard_pool_state_reason 1 for why the pool is not live (unauthorized, extranonce2_too_small, eof, submit_timeout, dial, ...); no series while it is live.
# TYPE switchyard_pool_state_reason gauge
switchyard_pool_state_reason{pool="shared",reason="submit_timeout",route="b"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_pool_state_reason"); err != nil {
		t.Error(err)
	}

	// The active pool is per route, and a route marks only its own pools.
	a.SetActivePool("shared")
	b.SetActivePool("b-main")
	want = `
# HELP switchyard_pool_active 1 for the pool miners are working for, 0 for the others.
# TYPE switchyard_pool_active gauge
switchyard_pool_active{pool="a-main",route="a"} 0
switchyard_pool_active{pool="b-main",route="b"} 1
switchyard_pool_active{pool="shared",route="a"} 1
switchyard_pool_active{pool="shared",route="b"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_pool_active"); err != nil {
		t.Error(err)
	}

	// Forgetting the shared pool on route a leaves route b's series of it,
	// and the pool's histogram, which b still uses.
	before := poolSeries(t, reg, "b", "shared")
	a.ForgetPool("shared")
	if got := poolSeries(t, reg, "a", "shared"); len(got) != 0 {
		t.Errorf("route a still has pool=shared series: %v", got)
	}
	if got := poolSeries(t, reg, "b", "shared"); !reflect.DeepEqual(got, before) {
		t.Errorf("route b's pool=shared series after a forgot it = %v, want %v", got, before)
	}
	if n := poolSeries(t, reg, "", "shared")["switchyard_pool_submit_duration_seconds"]; n != 1 {
		t.Errorf("submit duration series of shared = %d while route b has it, want 1", n)
	}
	if v := testutil.ToFloat64(b.Forwarded.WithLabelValues("shared")); v != 3 {
		t.Errorf("route b forwarded to shared = %v, want 3", v)
	}
	for _, p := range []string{"a-main", "b-main"} {
		if n := testutil.ToFloat64(root.PoolState.WithLabelValues(map[string]string{"a-main": "a", "b-main": "b"}[p], p, StateDown)); n != 1 {
			t.Errorf("%s down = %v after forgetting shared, want 1", p, n)
		}
	}
	// Route a no longer counts the shared pool among its own.
	a.SetActivePool("a-main")
	if got := poolSeries(t, reg, "a", "shared"); len(got) != 0 {
		t.Errorf("SetActivePool brought back route a's pool=shared series: %v", got)
	}

	// Once no route has the pool, nothing of it is left.
	b.ForgetPool("shared")
	for _, route := range []string{"", "a", "b"} {
		if got := poolSeries(t, reg, route, "shared"); len(got) != 0 {
			t.Errorf("route %q still has pool=shared series after both forgot it: %v", route, got)
		}
	}

	// The root Metrics forgets a pool on every route.
	a.InitPool("x")
	b.InitPool("x")
	root.ForgetPool("x")
	for _, route := range []string{"", "a", "b"} {
		if got := poolSeries(t, reg, route, "x"); len(got) != 0 {
			t.Errorf("route %q still has pool=x series after the root forgot it: %v", route, got)
		}
	}
	if n := testutil.ToFloat64(root.ActivePool.WithLabelValues("b", "b-main")); n != 1 {
		t.Errorf("route b active b-main = %v after the root forgot x, want 1", n)
	}
}
