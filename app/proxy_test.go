package app_test

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/race"
	"switchyard/sim"
	"switchyard/stratum"
)

// TestFleetThroughProxy: a fleet shares a handful of upstream sessions; every
// share switchyard accepts reaches the pool and is accepted there, and the
// pool sees a distinct extranonce2 prefix for every miner.
func TestFleetThroughProxy(t *testing.T) {
	miners := 1000
	if race.Enabled || testing.Short() {
		miners = 300
	}
	// The books are the point here, not detection: a pool answer held up
	// by a busy machine (other packages' tests share its two cores) must
	// not make the only pool suspect.
	r := newRig(t, 1, nil, func(c *config.Config) {
		c.Failover.SubmitTimeout = config.Duration(5 * time.Second)
		c.Failover.SubmitTimeoutMin = c.Failover.SubmitTimeout
	})
	fleetLedger := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := sim.StartFleet(ctx, sim.FleetConfig{
		Addr:               r.app.MinerAddr(),
		Miners:             miners,
		User:               "rig",
		VersionRolling:     true,
		MaxSharesPerSecond: 1,
		RampUp:             time.Second,
		Ledger:             fleetLedger,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Shares come at random (on a busy machine the hashing, not the rate
	// cap, sets the pace), so wait for each miner, not for a total. Three
	// each: at this difficulty shares are found in the first few hundred
	// nonces, so two miners with the same prefix in two lanes now and then
	// send the same (ntime, nonce, extranonce2), a key the join below must
	// skip; a miner with one share can lose its only key to that.
	waitFor(t, 60*time.Second, "every miner to have 3 shares accepted", func() bool {
		if fleet.Stats().Accepted < uint64(3*miners) {
			return false
		}
		n := map[string]int{}
		for _, e := range fleetLedger.entries(t) {
			if e.Result == sim.ResultAccepted {
				n[e.Worker]++
			}
		}
		for _, c := range n {
			if c < 3 {
				return false
			}
		}
		return len(n) == miners
	})
	dropped := sumMap(fleet.Stats().Disconnects)
	if err := fleet.Close(); err != nil {
		t.Fatal(err)
	}
	fs := fleet.Stats()
	waitFor(t, 10*time.Second, "the pool to answer every forwarded share", func() bool {
		return r.counter("switchyard_pool_shares_total", "pool", "p0") == r.counter("switchyard_pool_shares_forwarded_total", "pool", "p0")
	})
	ps := r.pools[0].Stats()

	if fs.RejectedTotal() != 0 || fs.Lost != 0 || dropped != 0 {
		t.Errorf("miners saw rejects %v, lost %d, %d disconnects", fs.Rejected, fs.Lost, dropped)
	}
	if got := r.counter("switchyard_shares_total", "result", "accepted"); got != float64(fs.Accepted) {
		t.Errorf("switchyard accepted %v shares, miners saw %d accepted", got, fs.Accepted)
	}
	fwd := r.counter("switchyard_pool_shares_forwarded_total", "pool", "p0")
	if fwd != float64(fs.Accepted) || ps.Submits != fs.Accepted || ps.Accepted != fs.Accepted || ps.RejectedTotal() != 0 {
		t.Errorf("accepted by switchyard %d, forwarded %v, pool got %d and accepted %d (rejected %v)",
			fs.Accepted, fwd, ps.Submits, ps.Accepted, ps.Rejected)
	}
	// 256 prefixes per lane with extranonce1_size = 1: a handful of sessions.
	wantLanes := (miners + 255) / 256
	if got := r.app.Proxy.LaneCount(); got != wantLanes {
		t.Errorf("lanes = %d, want %d", got, wantLanes)
	}
	if ps.Connections != uint64(wantLanes) {
		t.Errorf("pool saw %d connections, want one per lane (%d)", ps.Connections, wantLanes)
	}

	// Join the pool's ledger to the miners' by (ntime, nonce, prefix,
	// miner's extranonce2): the pool's extranonce2 is prefix ‖ miner's.
	// Keys two miners share (same prefix in two lanes, same nonce) are
	// ambiguous and skipped.
	type key struct{ ntime, nonce, prefix, en2 string }
	worker := map[key]string{}
	for _, e := range fleetLedger.entries(t) {
		k := key{e.NTime, e.Nonce, e.Extranonce1, e.Extranonce2}
		if w, ok := worker[k]; ok && w != e.Worker {
			worker[k] = "?"
			continue
		}
		worker[k] = e.Worker
	}
	prefixOwner := map[string]string{} // session en1 + prefix -> worker
	workerPrefix := map[string]string{}
	for _, e := range r.ledgers[0].entries(t) {
		en2, _ := hex.DecodeString(e.Extranonce2)
		if len(en2) != 4 {
			t.Fatalf("pool saw extranonce2 %s", e.Extranonce2)
		}
		w, ok := worker[key{e.NTime, e.Nonce, hex.EncodeToString(en2[:1]), hex.EncodeToString(en2[1:])}]
		if !ok {
			t.Fatalf("pool share %+v matches no miner share", e)
		}
		if w == "?" {
			continue
		}
		p := e.Extranonce1 + "/" + hex.EncodeToString(en2[:1])
		if o, ok := prefixOwner[p]; ok && o != w {
			t.Fatalf("prefix %s used by %s and %s", p, o, w)
		}
		if q, ok := workerPrefix[w]; ok && q != p {
			t.Fatalf("worker %s changed prefix %s -> %s", w, q, p)
		}
		prefixOwner[p], workerPrefix[w] = w, p
	}
	if len(workerPrefix) != miners {
		t.Errorf("%d distinct miners reached the pool, want %d", len(workerPrefix), miners)
	}
}

func sumMap(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestInvalidSharesStayLocal: every kind of bad share is refused by
// switchyard with the right code and never reaches the pool.
func TestInvalidSharesStayLocal(t *testing.T) {
	r := newRig(t, 1, nil, func(c *config.Config) { c.Server.Extranonce1Size = 2 })
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	if len(c.en1) != 2 || c.en2Size != 2 || c.mask != 0x1fffe000 {
		t.Fatalf("en1 %x en2 size %d mask %08x", c.en1, c.en2Size, c.mask)
	}
	job := c.waitJobs(1)
	if c.diff != testDiff {
		t.Fatalf("difficulty %g before the first job, want %g", c.diff, testDiff)
	}
	good := c.grind(job, []byte{0, 1}, 0x00002000, 0)
	spare := c.grind(job, []byte{0, 2}, 0, 0)

	tests := []struct {
		name string
		s    share
		code int
	}{
		{"valid", good, 0},
		{"duplicate", good, stratum.CodeDuplicate},
		{"short extranonce2", share{job.JobID, []byte{1}, good.ntime, good.nonce, good.version, true}, stratum.CodeOther},
		{"long extranonce2", share{job.JobID, []byte{1, 2, 3}, good.ntime, good.nonce, good.version, true}, stratum.CodeOther},
		{"version bits outside mask", share{job.JobID, good.en2, good.ntime, good.nonce, 0x00000001, true}, stratum.CodeOther},
		{"ntime before job", share{job.JobID, good.en2, good.ntime - 1, good.nonce, good.version, true}, stratum.CodeOther},
		{"ntime far ahead", share{job.JobID, good.en2, good.ntime + 8000, good.nonce, good.version, true}, stratum.CodeOther},
		{"unknown job", share{"ffffff", good.en2, good.ntime, good.nonce, good.version, true}, stratum.CodeJobNotFound},
		{"wrong nonce", c.failing(job, good), stratum.CodeLowDifficulty},
	}
	for _, tt := range tests {
		if got := c.submit("rig.1", tt.s); got != tt.code {
			t.Errorf("%s: code %d, want %d", tt.name, got, tt.code)
		}
	}

	// The pool answers the valid share before a new block makes it stale
	// there too.
	waitFor(t, 5*time.Second, "the valid share's answer", func() bool {
		return r.counter("switchyard_pool_shares_total", "pool", "p0", "result", "accepted") == 1
	})

	// A clean job makes the old one stale.
	r.pools[0].PushJob(true)
	c.waitJobs(2)
	if got := c.submit("rig.1", spare); got != stratum.CodeJobNotFound {
		t.Errorf("stale job: code %d, want %d", got, stratum.CodeJobNotFound)
	}

	// Before subscribe and authorize.
	c2 := dialClient(t, r.app.MinerAddr())
	m := c2.call(stratum.MethodSubmit, good.params("rig.2"))
	if code, _ := stratum.ErrorParam(m.Error); code != stratum.CodeNotSubscribed {
		t.Errorf("submit before subscribe: %s", m.Error)
	}
	c2.call(stratum.MethodSubscribe, `[]`)
	m = c2.call(stratum.MethodSubmit, good.params("rig.2"))
	if code, _ := stratum.ErrorParam(m.Error); code != stratum.CodeUnauthorized {
		t.Errorf("submit before authorize: %s", m.Error)
	}

	if ps := r.pools[0].Stats(); ps.Submits != 1 || ps.Accepted != 1 {
		t.Errorf("pool received %d shares (%d accepted), want only the valid one", ps.Submits, ps.Accepted)
	}
	for reason, want := range map[stratum.Reason]float64{
		stratum.ReasonDuplicate: 1, stratum.ReasonBadExtranonce2: 2, stratum.ReasonBadVersion: 1, stratum.ReasonBadNTime: 2,
		stratum.ReasonUnknownJob: 1, stratum.ReasonLowDifficulty: 1, stratum.ReasonStale: 1,
		stratum.ReasonNotSubscribed: 1, stratum.ReasonNotAuthorized: 1,
	} {
		if got := r.counter("switchyard_shares_total", "result", "rejected", "reason", reason.String()); got != want {
			t.Errorf("rejected{reason=%s} = %v, want %v", reason, got, want)
		}
	}
}

// failing returns good with the first later nonce that does not meet the
// difficulty.
func (c *client) failing(n *stratum.Notify, good share) share {
	job, err := stratum.NewJob(n)
	if err != nil {
		c.t.Fatal(err)
	}
	var res stratum.Result
	for nonce := good.nonce + 1; nonce != good.nonce+1<<16; nonce++ {
		sh := stratum.Share{Extranonce1: c.en1, Extranonce2: good.en2, NTime: good.ntime, Nonce: nonce, VersionBits: good.version, HasVersion: true}
		if job.Check(&sh, stratum.CheckParams{Extranonce2Size: c.en2Size, VersionMask: c.mask, Difficulty: c.diff}, &res) != nil {
			bad := good
			bad.nonce = nonce
			return bad
		}
	}
	c.t.Fatal("every nonce meets the difficulty: share validation is broken")
	return share{}
}

// Per-worker series credit each share to the worker named in its submit,
// whether accepted or rejected, when one connection carries several workers.
func TestPerWorkerSeries(t *testing.T) {
	r := newRig(t, 1, nil, func(c *config.Config) {
		c.Metrics.PerWorker = true
		c.Server.Extranonce1Size = 2
	})
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.a")
	if m := c.call(stratum.MethodAuthorize, `["rig.b","x"]`); !stratum.IsTrue(m.Result) {
		t.Fatalf("second authorize: %s %s", m.Result, m.Error)
	}
	job := c.waitJobs(1)
	good := c.grind(job, []byte{0, 1}, 0, 0)
	if code := c.submit("rig.b", good); code != 0 {
		t.Fatalf("valid share for rig.b: code %d", code)
	}
	if code := c.submit("rig.b", good); code != stratum.CodeDuplicate {
		t.Fatalf("duplicate for rig.b: code %d", code)
	}
	for i := 0; i < 2; i++ {
		if code := c.submit("rig.a", c.failing(job, good)); code != stratum.CodeLowDifficulty {
			t.Fatalf("low-difficulty share for rig.a: code %d", code)
		}
	}
	for _, tc := range []struct {
		worker, result string
		want           float64
	}{
		{"rig.a", "accepted", 0}, {"rig.a", "rejected", 2},
		{"rig.b", "accepted", 1}, {"rig.b", "rejected", 1},
	} {
		if got := r.counter("switchyard_worker_shares_total", "worker", tc.worker, "result", tc.result); got != tc.want {
			t.Errorf("worker %s %s: %v, want %v", tc.worker, tc.result, got, tc.want)
		}
	}
}
