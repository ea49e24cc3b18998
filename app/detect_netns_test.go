package app_test

import (
	"net"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
)

// TestNetnsIdleBlackholeDefaults cuts the namespace's link while no share
// flows, with switchyard's default keepalive (2 s) and user_timeout (4 s):
// the kernel drops the connection about 4 s after the pool's last byte (a
// job or a probe's answer, at most one keepalive before the cut), and
// miners move to p1, none dropped, no submit or job timeout involved. The
// time it takes is logged for BENCHMARKS.md (go test -run
// TestNetnsIdleBlackholeDefaults -count=5 -v ./app/, as root).
func TestNetnsIdleBlackholeDefaults(t *testing.T) {
	nn := setupNetns(t)
	t.Parallel()
	poolAddr := net.JoinHostPort(nn.peerIP, "3333")
	startNetnsPool(t, nn, poolAddr)

	def := config.Default().Failover
	r := newRig(t, 2, nil, func(c *config.Config) {
		c.Pools[0].URL = "stratum+tcp://" + poolAddr
		c.Failover.Keepalive, c.Failover.UserTimeout = def.Keepalive, def.UserTimeout
		c.Failover.JobTimeout = config.Duration(120 * time.Second)
	})
	const n = 20
	fleet := r.startFleet(n, func(c *sim.FleetConfig) { c.Idle = true })
	waitFor(t, 20*time.Second, "idle miners on the pool in the namespace", func() bool {
		return fleet.Stats().Ready == n && r.app.Pools.Active() == "p0"
	})

	tCut := time.Now()
	nn.ip(t, "-n", nn.ns, "link", "set", "dev", nn.nsVeth, "down")
	r.waitActive("p1", 15*time.Second)
	took := time.Since(tCut)
	t.Logf("link cut with no share in flight, keepalive %s, user_timeout %s: miners on p1 %s later",
		def.Keepalive, def.UserTimeout, took.Round(time.Millisecond))
	if low := def.UserTimeout.Duration() - def.Keepalive.Duration() - time.Second; took < low {
		t.Errorf("switched %s after the cut: sooner than user_timeout after the last answered probe", took)
	}
	if got := r.counter("switchyard_failovers_total", "from", "p0", "to", "p1", "reason", "submit_timeout") +
		r.counter("switchyard_failovers_total", "from", "p0", "to", "p1", "reason", "job_timeout"); got != 0 {
		t.Errorf("%v failovers by submit or job timeout: no share was in flight and no job was due", got)
	}
	r.checkConnected(fleet, n)
}
