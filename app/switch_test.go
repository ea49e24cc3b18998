package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"switchyard/app"
	"switchyard/config"
	"switchyard/sim"
	"switchyard/stratum"
)

// A share for the old pool's job that arrives after a switch is refused as
// stale (code 21) and counted with reason pool_switched, never forwarded to
// the new pool; the miner keeps its connection and mines on the new job.
func TestShareAfterSwitchIsPoolSwitched(t *testing.T) {
	r := newRig(t, 2, nil, func(c *config.Config) { c.Server.Extranonce1Size = 2 })
	r.waitActive("p0", 5*time.Second)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	old := c.waitJobs(1)
	late := c.grind(old, []byte{0, 1}, 0, 0)

	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	r.waitActive("p1", 10*time.Second)
	fresh := c.waitJobs(2)
	if !fresh.Clean {
		t.Fatalf("first job after the switch has clean_jobs=false")
	}

	if code := c.submit("rig.1", late); code != stratum.CodeJobNotFound {
		t.Fatalf("share for the old pool's job: code %d, want %d", code, stratum.CodeJobNotFound)
	}
	if got := r.counter("switchyard_shares_total", "result", "rejected", "reason", "pool_switched"); got != 1 {
		t.Errorf("pool_switched rejections: %v, want 1", got)
	}
	if got := r.counter("switchyard_shares_total", "result", "rejected", "reason", "stale"); got != 0 {
		t.Errorf("stale rejections: %v, want 0 (the job was not superseded by a block)", got)
	}

	// The same connection mines on at the backup.
	if code := c.submit("rig.1", c.grind(fresh, []byte{0, 2}, 0, 0)); code != 0 {
		t.Fatalf("share for the backup's job: code %d", code)
	}
	waitFor(t, 5*time.Second, "the backup's verdict", func() bool { return r.pools[1].Stats().Accepted == 1 })
	if got := r.pools[1].Stats().Submits; got != 1 {
		t.Errorf("backup received %d submits, want 1 (the late share must not be forwarded)", got)
	}
}

// Miners are sized for the smallest extranonce2 of the pools being
// connected, even when a backup answers more slowly than the primary:
// switchyard accepts miners only once those pools have each sent a job
// (or failed), so a later failover needs no reconnect.
func TestMinersSizedForSlowBackup(t *testing.T) {
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	var pools []*sim.Pool
	for i, en2 := range []int{8, 4} {
		p, err := sim.StartPool(sim.PoolConfig{Difficulty: testDiff, Extranonce1Size: 4, Extranonce2Size: en2, JobInterval: time.Hour, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		if i == 1 { // the backup answers everything 400 ms late
			if err := p.SetFault(sim.Fault{Mode: sim.FaultSlow, Delay: 400 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		}
		pools = append(pools, p)
	}
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Extranonce1Size = 2
	cfg.Difficulty.Initial, cfg.Difficulty.Min, cfg.Difficulty.Max = testDiff, testDiff, testDiff
	cfg.Failover.DialTimeout = config.Duration(2 * time.Second)
	cfg.Failover.SubmitTimeout = config.Duration(2 * time.Second)
	cfg.Failover.Standby = 1
	cfg.Metrics.Listen = ""
	for i, p := range pools {
		cfg.Pools = append(cfg.Pools, config.Pool{Index: i, Name: fmt.Sprintf("p%d", i), URL: "stratum+tcp://" + p.Addr(), User: "acct", Password: "x"})
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(context.Background(), cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })

	t0 := time.Now()
	c := dialClient(t, a.MinerAddr())
	c.handshake("rig.1")
	t.Logf("handshake done after %v, en2 %d", time.Since(t0), c.en2Size)
	if c.en2Size != 4-2 {
		t.Fatalf("miner extranonce2 size %d, want %d (the backup's 4 bytes less the 2-byte prefix)", c.en2Size, 4-2)
	}
}
