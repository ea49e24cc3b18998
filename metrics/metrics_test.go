package metrics

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewRegistersEverything(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)

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
	m := New(reg)

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
switchyard_shares_total{reason="",result="accepted"} 5
switchyard_shares_total{reason="stale",result="rejected"} 1
switchyard_shares_total{reason="upstream_down",result="lost"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_shares_total"); err != nil {
		t.Error(err)
	}
}

func TestZeroSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	if n := testutil.CollectAndCount(reg, "switchyard_limit_hits_total"); n != len(limits) {
		t.Errorf("limit series = %d, want %d (one per limit)", n, len(limits))
	}
	if n := testutil.CollectAndCount(reg, "switchyard_shares_total"); n != 1 {
		t.Errorf("share series = %d, want 1 (accepted)", n)
	}
}

func TestHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
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
	m := New(reg)
	m.SetPoolState("primary", StateConnecting)
	m.SetPoolState("primary", StateLive)
	m.SetPoolState("backup", StateDown)

	want := `
# HELP switchyard_pool_state 1 for the pool's current state (connecting, handshaking, live, suspect, down), 0 for the others.
# TYPE switchyard_pool_state gauge
switchyard_pool_state{pool="backup",state="connecting"} 0
switchyard_pool_state{pool="backup",state="down"} 1
switchyard_pool_state{pool="backup",state="handshaking"} 0
switchyard_pool_state{pool="backup",state="live"} 0
switchyard_pool_state{pool="backup",state="suspect"} 0
switchyard_pool_state{pool="primary",state="connecting"} 0
switchyard_pool_state{pool="primary",state="down"} 0
switchyard_pool_state{pool="primary",state="handshaking"} 0
switchyard_pool_state{pool="primary",state="live"} 1
switchyard_pool_state{pool="primary",state="suspect"} 0
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
	m := New(prometheus.NewRegistry())
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
	m := New(reg)
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
