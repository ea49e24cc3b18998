package app_test

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"switchyard/config"
	"switchyard/sim"
)

// scrape fetches /metrics over HTTP and parses the text exposition.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// value sums the samples of a family whose labels include want.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return math.NaN()
	}
	var sum float64
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			ok := false
			for _, l := range m.GetLabel() {
				ok = ok || (l.GetName() == want[i] && l.GetValue() == want[i+1])
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestMetricsMatchMinersAndPools scrapes /metrics over HTTP during and after
// a run and checks switchyard's counters against what the simulated miners
// and the pool counted themselves.
func TestMetricsMatchMinersAndPools(t *testing.T) {
	// The books are the point here, not detection: an answer held up by a
	// busy machine (the race step) must not make the only pool suspect.
	r := newRig(t, 1, nil, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(5 * time.Second)
		c.Failover.SubmitTimeoutMin = c.Failover.SubmitTimeout
	})
	const miners = 40
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: miners, User: "rig", VersionRolling: true, MaxSharesPerSecond: 5})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "shares flowing", func() bool { return fleet.Stats().Accepted >= 200 })

	// During the run.
	mid := scrape(t, r.app.HTTPAddr())
	if got := value(mid, "switchyard_miners_connected"); got != miners {
		t.Errorf("miners_connected = %v during the run, want %d", got, miners)
	}
	if got := value(mid, "switchyard_pool_state", "pool", "p0", "state", "live"); got != 1 {
		t.Errorf(`pool_state{p0,live} = %v`, got)
	}
	if got := value(mid, "switchyard_pool_active", "pool", "p0"); got != 1 {
		t.Errorf("pool_active{p0} = %v", got)
	}
	midAccepted := value(mid, "switchyard_shares_total", "result", "accepted")
	for _, path := range []string{"/healthz", "/api/v1/status", "/api/v1/miners"} {
		resp, err := http.Get("http://" + r.app.HTTPAddr() + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		var body any
		if path != "/healthz" {
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
		resp.Body.Close()
		switch path {
		case "/api/v1/status":
			if st := body.(map[string]any); st["active_pool"] != "p0" {
				t.Errorf("status: %v", st)
			}
		case "/api/v1/miners":
			if rows := body.([]any); len(rows) != miners {
				t.Errorf("/api/v1/miners has %d rows, want %d", len(rows), miners)
			}
		}
	}

	// After the run: exact equality.
	if err := fleet.Close(); err != nil {
		t.Fatal(err)
	}
	fs := fleet.Stats()
	waitFor(t, 10*time.Second, "the pool to answer every forwarded share", func() bool {
		m := scrape(t, r.app.HTTPAddr())
		return value(m, "switchyard_pool_shares_total", "pool", "p0") == value(m, "switchyard_pool_shares_forwarded_total", "pool", "p0") &&
			value(m, "switchyard_miners_connected") == 0
	})
	end := scrape(t, r.app.HTTPAddr())
	ps := r.pools[0].Stats()
	checks := []struct {
		name      string
		got, want float64
	}{
		{"shares accepted vs miners' accepted", value(end, "switchyard_shares_total", "result", "accepted"), float64(fs.Accepted)},
		{"shares rejected vs miners' rejected", value(end, "switchyard_shares_total", "result", "rejected"), float64(fs.RejectedTotal())},
		{"forwarded vs pool submits", value(end, "switchyard_pool_shares_forwarded_total", "pool", "p0"), float64(ps.Submits)},
		{"pool verdict accepted vs pool accepted", value(end, "switchyard_pool_shares_total", "pool", "p0", "result", "accepted"), float64(ps.Accepted)},
		{"pool verdict rejected vs pool rejected", value(end, "switchyard_pool_shares_total", "pool", "p0", "result", "rejected"), float64(ps.RejectedTotal())},
		{"connections opened vs miners' dials", value(end, "switchyard_miner_connections_opened_total"), float64(fs.Dials - fs.DialErrors)},
		{"connections closed vs opened", value(end, "switchyard_miner_connections_closed_total"), float64(fs.Dials - fs.DialErrors)},
		{"miners connected after close", value(end, "switchyard_miners_connected"), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: switchyard %v, simulator %v", c.name, c.got, c.want)
		}
	}
	if got, want := value(end, "switchyard_share_difficulty_sum_total"), fs.AcceptedDifficulty; math.Abs(got-want) > 1e-9*want {
		t.Errorf("difficulty sum: switchyard %g, miners %g", got, want)
	}
	if got, want := value(end, "switchyard_forwarded_difficulty_sum_total", "pool", "p0"), ps.AcceptedDifficulty; math.Abs(got-want) > 1e-6*want {
		t.Errorf("forwarded difficulty: switchyard %g, pool credited %g", got, want)
	}
	if midAccepted > float64(fs.Accepted) || midAccepted < 200 {
		t.Errorf("mid-run accepted %v not within [200, %d]", midAccepted, fs.Accepted)
	}
	t.Logf("miners %d, submits %d, accepted %d; pool accepted %d", miners, fs.Submits, fs.Accepted, ps.Accepted)
}
