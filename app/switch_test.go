package app_test

import (
	"testing"
	"time"

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
