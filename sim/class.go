package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
)

// MinerClass is a group of a fleet's miners that share a work rate and a
// worker-name prefix: a farm's S19s beside its S9s, or one customer's
// machines beside another's. A zero field takes the fleet's value.
//
// With a fixed difficulty a rate-capped miner's hashrate is its cap times
// the difficulty times 2^32, so classes whose MaxSharesPerSecond are 10×
// apart are hashrate classes 10× apart.
type MinerClass struct {
	Miners             int     // miners in the class (0 is allowed: an empty class)
	MaxSharesPerSecond float64 // per-miner cap; 0: FleetConfig.MaxSharesPerSecond
	User               string  // worker-name prefix; "": FleetConfig.User
}

// ClassStats is one class's share of a fleet's counters, in the order of
// FleetConfig.Classes. Work and AcceptedWork are as in FleetStats.
type ClassStats struct {
	User               string  `json:"user"`
	MaxSharesPerSecond float64 `json:"max_shares_per_second"`
	Miners             int     `json:"miners"`
	Ready              int64   `json:"ready"` // subscribed and authorized now
	Submits            uint64  `json:"submits"`
	Accepted           uint64  `json:"accepted"`
	Rejected           uint64  `json:"rejected"` // Σ over every label
	Lost               uint64  `json:"lost"`
	Work               float64 `json:"work"`
	AcceptedWork       float64 `json:"accepted_work"`
}

// classCounters counts one class's shares. Every miner has one (a fleet
// without Classes has a single one, not reported), so the counting is
// unconditional.
type classCounters struct {
	ready                             atomic.Int64
	submits, accepted, rejected, lost atomic.Uint64
	work, acceptedWork                atomicFloat
}

func (c *classCounters) submitted(diff float64) {
	c.submits.Add(1)
	c.work.Add(diff * hashesPerDifficulty)
}

func (c *classCounters) answered(diff float64, accepted bool) {
	if accepted {
		c.accepted.Add(1)
		c.acceptedWork.Add(diff * hashesPerDifficulty)
	} else {
		c.rejected.Add(1)
	}
}

// minerSpec is what one miner of a fleet is given.
type minerSpec struct {
	worker string
	rate   float64 // shares per second at most; 0: no cap
	class  int     // index into FleetConfig.Classes; 0 without classes
}

// checkClasses validates c.Classes and returns the number of miners they
// add up to (c.Miners without classes).
func (c *FleetConfig) checkClasses() (int, error) {
	if len(c.Classes) == 0 {
		return c.Miners, nil
	}
	var errs []error
	n := 0
	for i, k := range c.Classes {
		if k.Miners < 0 || k.MaxSharesPerSecond < 0 {
			errs = append(errs, fmt.Errorf("sim: class %d: miners and rate must not be negative", i))
		}
		n += max(k.Miners, 0)
	}
	switch {
	case n == 0:
		errs = append(errs, errors.New("sim: the classes have no miners"))
	case c.Miners != 0 && c.Miners != n:
		errs = append(errs, fmt.Errorf("sim: %d miners, but the classes add up to %d (leave Miners 0 with Classes)", c.Miners, n))
	}
	return n, errors.Join(errs...)
}

// layout returns every miner's worker name, rate and class, by index. A
// class's miners have consecutive indices, class 0 first. Worker names are
// prefix.<n>, n counting from 0 for each prefix across the classes that
// share it, so names are unique and a class with a prefix of its own
// counts from 0 ("alpha.0", "alpha.1", "beta.0").
func (c *FleetConfig) layout() []minerSpec {
	if len(c.Classes) == 0 {
		out := make([]minerSpec, c.Miners)
		for i := range out {
			out[i] = minerSpec{worker: c.User + "." + strconv.Itoa(i), rate: c.MaxSharesPerSecond}
		}
		return out
	}
	var out []minerSpec
	next := map[string]int{}
	for ci, k := range c.Classes {
		user, rate := k.User, k.MaxSharesPerSecond
		if user == "" {
			user = c.User
		}
		if rate == 0 {
			rate = c.MaxSharesPerSecond
		}
		for range k.Miners {
			out = append(out, minerSpec{worker: user + "." + strconv.Itoa(next[user]), rate: rate, class: ci})
			next[user]++
		}
	}
	return out
}

// dialOrder returns the turn of each miner index in the ramp-up: index
// order, or a permutation drawn from seed when it is not 0.
func dialOrder(n int, seed uint64) []int {
	turn := make([]int, n)
	for i := range turn {
		turn[i] = i
	}
	if seed != 0 {
		rng := rand.New(rand.NewPCG(seed, seed^0xd1a1))
		rng.Shuffle(n, func(i, j int) { turn[i], turn[j] = turn[j], turn[i] })
	}
	return turn
}

// classStats returns the classes' counters, nil for a fleet without
// Classes.
func (f *Fleet) classStats() []ClassStats {
	if len(f.cfg.Classes) == 0 {
		return nil
	}
	out := make([]ClassStats, len(f.cfg.Classes))
	for i, k := range f.cfg.Classes {
		c := &f.classes[i]
		user, rate := k.User, k.MaxSharesPerSecond
		if user == "" {
			user = f.cfg.User
		}
		if rate == 0 {
			rate = f.cfg.MaxSharesPerSecond
		}
		out[i] = ClassStats{
			User: user, MaxSharesPerSecond: rate, Miners: k.Miners,
			Ready:        c.ready.Load(),
			Submits:      c.submits.Load(),
			Accepted:     c.accepted.Load(),
			Rejected:     c.rejected.Load(),
			Lost:         c.lost.Load(),
			Work:         c.work.Load(),
			AcceptedWork: c.acceptedWork.Load(),
		}
	}
	return out
}
