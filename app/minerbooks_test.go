package app_test

import (
	"maps"
	"testing"
	"time"

	"switchyard/sim"
)

// TestMinerBooks: /api/v1/miners gives each miner's own accounting,
// submitted = accepted + rejected by reason + lost by reason, as
// switchyard_shares_total counts the same shares.
func TestMinerBooks(t *testing.T) {
	r := newRig(t, 1, nil, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.0")
	n := c.waitJobs(1)
	en2 := make([]byte, c.en2Size)
	ok := c.grind(n, en2, 0, 0)
	if code := c.submit("rig.0", ok); code != 0 {
		t.Fatalf("valid share refused: %d", code)
	}
	if code := c.submit("rig.0", ok); code == 0 {
		t.Fatal("duplicate accepted")
	}
	unknown := ok
	unknown.jobID = "ffffff"
	if code := c.submit("rig.0", unknown); code == 0 {
		t.Fatal("share for an unknown job accepted")
	}
	// No pool: a valid share is answered true and counted lost.
	if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no pool live", func() bool { return r.app.Pools.Active() == "" })
	if code := c.submit("rig.0", c.grind(n, en2, 0, ok.nonce+1)); code != 0 {
		t.Fatalf("share held on the last job refused: %d", code)
	}

	rows := minerRows(t, r.app.HTTPAddr())
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	row := rows[0]
	wantRej := map[string]uint64{"duplicate": 1, "unknown_job": 1}
	wantLost := map[string]uint64{"no_upstream": 1}
	if row.Submitted != 4 || row.Accepted != 1 || row.Rejected != 2 || row.Lost != 1 ||
		!maps.Equal(row.RejectedBy, wantRej) || !maps.Equal(row.LostBy, wantLost) {
		t.Errorf("row: submitted %d, accepted %d, rejected %d %v, lost %d %v; want 4, 1, 2 %v, 1 %v",
			row.Submitted, row.Accepted, row.Rejected, row.RejectedBy, row.Lost, row.LostBy, wantRej, wantLost)
	}
	acc := r.counter("switchyard_shares_total", "result", "accepted")
	rej := r.counter("switchyard_shares_total", "result", "rejected")
	lost := r.counter("switchyard_shares_total", "result", "lost")
	if acc != 1 || rej != 2 || lost != 1 {
		t.Errorf("switchyard_shares_total: accepted %v, rejected %v, lost %v; want 1, 2, 1", acc, rej, lost)
	}
}
