package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSetPoolStateReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.SetPoolStateReason("primary", "dial")
	m.SetPoolStateReason("primary", "unauthorized")
	m.SetPoolStateReason("backup", "eof")
	m.SetPoolStateReason("backup", "eof")

	want := `
# HELP switchyard_pool_state_reason 1 for why the pool is not live (unauthorized, extranonce2_too_small, eof, submit_timeout, dial, ...); no series while it is live.
# TYPE switchyard_pool_state_reason gauge
switchyard_pool_state_reason{pool="backup",reason="eof",route="default"} 1
switchyard_pool_state_reason{pool="primary",reason="unauthorized",route="default"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_pool_state_reason"); err != nil {
		t.Error(err)
	}

	m.SetPoolStateReason("backup", "") // live again
	if n := testutil.CollectAndCount(m.PoolStateReason); n != 1 {
		t.Errorf("series after backup went live = %d, want 1", n)
	}
	m.ForgetPool("primary")
	if n := testutil.CollectAndCount(m.PoolStateReason); n != 0 {
		t.Errorf("series after ForgetPool = %d, want 0", n)
	}
	m.SetPoolStateReason("primary", "unauthorized") // back in the configuration
	if v := testutil.ToFloat64(m.PoolStateReason.WithLabelValues("primary", "unauthorized")); v != 1 {
		t.Errorf("primary unauthorized = %v, want 1", v)
	}
}

func TestPoolReconnectsHelp(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg).ForRoute(DefaultRoute)
	m.PoolReconnects.WithLabelValues("p").Inc()
	want := `
# HELP switchyard_pool_reconnects_total Connections to the pool made again by a session after an earlier one of it had been established; first connections and failed dials are not counted.
# TYPE switchyard_pool_reconnects_total counter
switchyard_pool_reconnects_total{pool="p",route="default"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_pool_reconnects_total"); err != nil {
		t.Error(err)
	}
}
