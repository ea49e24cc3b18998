package app_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/internal/race"
	"switchyard/sim"
)

// The real-world matrix: pools that behave like ckpool, public-pool,
// miningcore and NiceHash (sim/profile.go) and miners that behave like
// cgminer, ESP-Miner, Braiins OS and cpuminer (sim/firmware.go), through
// switchyard over real TCP, across an event: start, failover, failback,
// a reload adding a smaller pool, the pool lowering its difficulty. Every
// cell checks what a farm is paid for:
//
//   - credit efficiency: the work the pools credited over the work the
//     miners did (both Σ difficulty × 2^32; shares lost in an outage
//     left out) is at least 0.99. switchyard's miners would sit at 4x the
//     pool's difficulty; only the cap keeps the pools paying for it all;
//   - no duplicate caused by switchyard, at the pools or at switchyard;
//   - no miner disconnected;
//   - every share switchyard accepted outside an outage was forwarded, so
//     every block candidate reached a pool (the pools see some);
//   - the books add up (closeAndAccount).
//
// go test runs a few cells; MATRIX=full runs them all (see BENCHMARKS.md),
// MATRIX=ckpool/cgminer/failover one.

var matrixEvents = []string{"start", "failover", "failback", "reload-smaller", "pool-lowers"}

type matrixCell struct{ profile, firmware, event string }

func (c matrixCell) String() string {
	fw := c.firmware
	if fw == "" {
		fw = "stratumsim"
	}
	return c.profile + "/" + fw + "/" + c.event
}

// matrixCells is the full matrix, or a diagonal through it that still
// covers every profile, firmware and event once or more.
func matrixCells() []matrixCell {
	profiles := sim.Profiles()
	firmwares := append([]string{""}, sim.Firmwares()...)
	var cells []matrixCell
	if m := os.Getenv("MATRIX"); strings.Count(m, "/") == 2 { // one cell: profile/firmware/event
		f := strings.Split(m, "/")
		if f[1] == "stratumsim" {
			f[1] = ""
		}
		return []matrixCell{{f[0], f[1], f[2]}}
	}
	if os.Getenv("MATRIX") == "full" {
		for _, p := range profiles {
			for _, f := range firmwares {
				for _, e := range matrixEvents {
					cells = append(cells, matrixCell{p, f, e})
				}
			}
		}
		return cells
	}
	n := max(len(profiles), len(firmwares), len(matrixEvents))
	for i := range n {
		cells = append(cells, matrixCell{profiles[i%len(profiles)], firmwares[i%len(firmwares)], matrixEvents[i%len(matrixEvents)]})
	}
	return cells
}

func TestRealWorldMatrix(t *testing.T) {
	for _, cell := range matrixCells() {
		t.Run(strings.ReplaceAll(cell.String(), "/", "_"), func(t *testing.T) {
			t.Parallel() // each cell has its own pools, switchyard and fleet
			runCell(t, cell)
		})
	}
}

func runCell(t *testing.T, cell matrixCell) {
	const d = testDiff
	miners, shares := 6, 40 // shares per phase at the pool
	if race.Enabled {
		miners, shares = 4, 20
	}
	// The pool's extranonce2 sizes differ (ckpool 8, public-pool and
	// miningcore 4, NiceHash 3): switchyard's prefix and miner size must
	// leave room in the smallest.
	prefix, minPool := 2, 4
	if cell.profile == sim.ProfileNiceHash {
		prefix, minPool = 1, 3
	}
	r := newRig(t, 2, func(i int, c *sim.PoolConfig) {
		c.Profile = cell.profile
		c.Extranonce1Size, c.Extranonce2Size = 0, 0 // the profile's
		c.Difficulty = d
		c.Vardiff = sim.Vardiff{Off: true}
		c.NetworkDifficulty = 4 * d
		if cell.event == "reload-smaller" && i == 0 {
			c.Extranonce2Size = minPool // added later, the smallest that fits
		}
	}, func(c *config.Config) {
		c.Server.Extranonce1Size, c.Server.MinPoolExtranonce2Size = prefix, minPool
		// Left alone, miners would sit at 4x the pool's difficulty: the cap
		// is what keeps every share credited.
		c.Difficulty.Initial, c.Difficulty.Min, c.Difficulty.Max = 4*d, 4*d, 4*d
		if cell.event == "reload-smaller" {
			c.Pools = c.Pools[1:]
			c.Pools[0].Index = 0
			c.Failover.Standby = 0
		}
	})
	first := 0
	if cell.event == "reload-smaller" {
		first = 1
		r.waitActive("p1", 10*time.Second)
	}
	f := r.startFleet(miners, func(c *sim.FleetConfig) {
		c.Firmware = cell.firmware
		c.MaxSharesPerSecond = 4
	})
	r.waitMining(f, first, miners)
	mine := func(i int) {
		from := r.pools[i].Stats().Accepted
		waitFor(t, 30*time.Second, fmt.Sprintf("%d more shares at p%d", shares, i), func() bool {
			return r.pools[i].Stats().Accepted >= from+uint64(shares)
		})
	}
	mine(first)
	outage := false
	var windowWork, windowCredit float64 // a change window left out of the efficiency
	switch cell.event {
	case "failover", "failback":
		outage = true
		if err := r.pools[0].SetFault(sim.Fault{Mode: sim.FaultClose}); err != nil {
			t.Fatal(err)
		}
		r.waitActive("p1", 10*time.Second)
		mine(1)
		if cell.event == "failback" {
			if err := r.pools[0].SetFault(sim.Fault{}); err != nil {
				t.Fatal(err)
			}
			r.waitActive("p0", 20*time.Second)
			mine(0)
		}
	case "reload-smaller":
		cfg := *r.cfg
		cfg.Pools = []config.Pool{
			{Index: 0, Name: "p0", URL: "stratum+tcp://" + r.pools[0].Addr(), User: "acct0.farm", Password: "x"},
			{Index: 1, Name: "p1", URL: "stratum+tcp://" + r.pools[1].Addr(), User: "acct1.farm", Password: "x"},
		}
		if _, err := r.app.Reload(&cfg); err != nil {
			t.Fatal(err)
		}
		r.waitActive("p0", 20*time.Second)
		mine(0)
	case "pool-lowers":
		// The change itself is a window like an outage: a share in flight
		// when the pool lowers its difficulty is credited at the new one
		// by pools that apply it at once (public-pool, miningcore). It is
		// measured apart; the cell's efficiency is the work around it.
		w0, c0 := f.Stats().AcceptedWork, poolsCredited(r)
		if _, err := r.pools[0].SetDifficulty(d / 4); err != nil {
			t.Fatal(err)
		}
		r.pools[0].PushJob(false) // the difficulty's next job
		waitFor(t, 5*time.Second, "miners lowered with the pool", func() bool {
			rows := minerRows(t, r.app.HTTPAddr())
			for _, row := range rows {
				if row.Difficulty > d/4 {
					return false
				}
			}
			return len(rows) == miners
		})
		mine(0)
		w1, c1 := f.Stats().AcceptedWork, poolsCredited(r)
		windowWork, windowCredit = w1-w0, c1-c0
		t.Logf("%s: the change window: miners' work %.4g, credited %.4g (%.4f)", cell, windowWork, windowCredit, windowCredit/windowWork)
		mine(0)
		mine(0)
	}
	r.checkConnected(f, miners)
	r.closeAndAccount(f, accountOpts{})

	fs := f.Stats()
	var credited float64
	var dups, blocks uint64
	for _, p := range r.pools {
		ps := p.Stats()
		credited += ps.CreditedWork
		dups += ps.Duplicates
		blocks += ps.Blocks
	}
	lost := r.counter("switchyard_shares_total", "result", "lost") + r.counter("switchyard_pool_shares_total", "result", "lost")
	work := fs.AcceptedWork - lost*d*math.Exp2(32) - windowWork // outage losses and the change window left out
	credited -= windowCredit
	eff := credited / work
	t.Logf("%s: miners' work %.4g, pools credited %.4g: efficiency %.4f (%v shares lost in outages); duplicates %d at the pools, %d at switchyard; %d block candidates at the pools",
		cell, work, credited, eff, lost, dups, fs.Duplicates, blocks)
	if eff < 0.99 || eff > 1.01 {
		t.Errorf("credit efficiency %.4f, want 0.99..1.01: the pools credited %.4g of %.4g", eff, credited, work)
	}
	if !outage && lost != 0 {
		t.Errorf("%v shares lost without an outage", lost)
	}
	if dups != 0 || fs.Duplicates != 0 {
		t.Errorf("duplicates: %d at the pools, %d answered by switchyard", dups, fs.Duplicates)
	}
	acc := r.counter("switchyard_shares_total", "result", "accepted")
	if fwd := r.counter("switchyard_pool_shares_forwarded_total"); fwd != acc {
		t.Errorf("switchyard accepted %v shares and forwarded %v: with miners at the pool's difficulty every one goes, block candidates with them", acc, fwd)
	}
	if blocks == 0 {
		t.Error("no block candidate reached a pool: the run proves nothing about them")
	}
	if st := r.app.Status(); st.CreditEfficiency == nil || *st.CreditEfficiency < 0.9 {
		t.Errorf("/api/v1/status credit_efficiency = %v", st.CreditEfficiency)
	}
}

// poolsCredited is the work every pool of the rig credited so far.
func poolsCredited(r *rig) float64 {
	var c float64
	for _, p := range r.pools {
		c += p.Stats().CreditedWork
	}
	return c
}
