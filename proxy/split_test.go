package proxy

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"switchyard/metrics"
	"switchyard/stratum"
	"switchyard/upstream"
)

// simulateSplit runs the split controller's arithmetic (desired, then
// planMoves) over miners of the given rates for ticks of SplitEvery, the
// pools crediting each miner's work with Poisson luck (shares of size
// share), and returns each pool's fraction of the credited work and the
// moves made.
func simulateSplit(t *testing.T, rates, weights []float64, ticks int, share float64, seed uint64) ([]float64, int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	k := len(weights)
	wsum := 0.0
	for _, w := range weights {
		wsum += w
	}
	w := make([]float64, k)
	for i := range w {
		w[i] = weights[i] / wsum
	}
	pool := make([]int, len(rates)) // every miner starts on pool 0
	credited := make([]float64, k)
	total := 0.0
	for _, r := range rates {
		total += r
	}
	dt := (5 * time.Second).Seconds()
	moves := 0
	for tick := range ticks {
		load := make([]float64, k)
		on := make([][]int, k)
		for i, p := range pool {
			load[p] += rates[i]
			on[p] = append(on[p], i)
		}
		sum := 0.0
		for _, c := range credited {
			sum += c
		}
		for _, m := range planMoves(rates, on, load, desired(w, credited, sum, total, time.Duration(tick)*5*time.Second), total) {
			pool[m.i] = m.to
			moves++
		}
		for i, p := range pool {
			credited[p] += poisson(rng, rates[i]*dt/share) * share
		}
	}
	sum := 0.0
	for _, c := range credited {
		sum += c
	}
	for i := range credited {
		credited[i] /= sum
	}
	return credited, moves
}

// poisson draws a Poisson variate of mean mu (normal approximation above 30).
func poisson(rng *rand.Rand, mu float64) float64 {
	if mu > 30 {
		return math.Max(0, math.Round(mu+math.Sqrt(mu)*rng.NormFloat64()))
	}
	l, k, p := math.Exp(-mu), 0.0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// TestSplitConverges: over 10 minutes the credited split is within 2 points
// of 70/30 with 2,000 miners in three classes 10x apart, and within 5 points
// with five miners whose sizes cannot make 70/30 (one big, four small: they
// take turns on the smaller pool), with a share every few seconds per
// miner; the moves stay few.
func TestSplitConverges(t *testing.T) {
	many := make([]float64, 2000)
	for i := range many {
		many[i] = []float64{1, 10, 100}[i%3]
	}
	for _, tc := range []struct {
		name   string
		rates  []float64
		share  float64
		within float64
	}{
		{"2000 miners, three classes", many, 30, 0.02},
		{"5 miners, one big", []float64{4, 1, 1, 1, 1}, 5, 0.05},
		{"5 equal miners", []float64{1, 1, 1, 1, 1}, 5, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				got, moves := simulateSplit(t, tc.rates, []float64{70, 30}, 120, tc.share, seed)
				if d := math.Abs(got[0] - 0.7); d > tc.within {
					t.Errorf("seed %d: credited split %.3f/%.3f, off 70/30 by %.3f (> %.2f)", seed, got[0], got[1], d, tc.within)
				}
				if moves > 120*len(tc.rates)/10+len(tc.rates) {
					t.Errorf("seed %d: %d moves in 120 ticks", seed, moves)
				}
				t.Logf("seed %d: %.4f/%.4f, %d moves", seed, got[0], got[1], moves)
			}
		})
	}
}

// TestSplitFewMinersShortTurns: one miner makes 10/14 of a 70/30 route's
// hashrate, four make the rest. No whole-miner placement is 70/30, so a
// miner takes turns on the other pool; over an hour of exact credit (no
// luck) the turns are short enough that every 10-minute window is within
// a point of 70/30 and no minute falls below 58 % on A. (A minute's
// horizon took one 45-s turn every 25 minutes: minutes at 39 %, 10-minute
// windows 1.8 points off.)
func TestSplitFewMinersShortTurns(t *testing.T) {
	rates := []float64{10, 1, 1, 1, 1}
	w := []float64{0.7, 0.3}
	pool := []int{0, 1, 1, 1, 1} // 71.4/28.6, the nearest whole-miner split
	credited := make([]float64, 2)
	dt := (5 * time.Second).Seconds()
	var minutes []float64
	var a, all float64
	var turns []int // ticks the big miner spent on B, per turn
	for tick := range 12 * 60 {
		load, on := make([]float64, 2), make([][]int, 2)
		for i, p := range pool {
			load[p] += rates[i]
			on[p] = append(on[p], i)
		}
		for _, m := range planMoves(rates, on, load, desired(w, credited, credited[0]+credited[1], 14, time.Duration(tick)*5*time.Second), 14) {
			pool[m.i] = m.to
		}
		if pool[0] == 1 {
			if len(turns) == 0 || turns[len(turns)-1] < 0 {
				turns = append(turns, 0)
			}
			turns[len(turns)-1]++
		} else if len(turns) > 0 && turns[len(turns)-1] > 0 {
			turns = append(turns, -1) // a turn ended
		}
		for i, p := range pool {
			credited[p] += rates[i] * dt
			if p == 0 {
				a += rates[i] * dt
			}
			all += rates[i] * dt
		}
		if tick%12 == 11 {
			minutes = append(minutes, a/all)
			a, all = 0, 0
		}
	}
	n := 0
	for _, tt := range turns {
		if tt > 0 {
			n++
			if tt*5 > 30 {
				t.Errorf("the big miner spent %d s on B in one turn", tt*5)
			}
		}
	}
	if n < 3 {
		t.Errorf("%d turns on B in an hour: the split is held by too few", n)
	}
	for i, f := range minutes {
		if f < 0.58 || f > 0.73 {
			t.Errorf("minute %d: A %.3f", i, f)
		}
	}
	for i := 0; i+10 <= len(minutes); i++ {
		s := 0.0
		for _, f := range minutes[i : i+10] {
			s += f
		}
		if d := math.Abs(s/10 - 0.7); d > 0.01 {
			t.Errorf("minutes %d-%d: A %.4f, off 70/30 by %.4f", i, i+10, s/10, d)
		}
	}
	f := credited[0] / (credited[0] + credited[1])
	t.Logf("an hour: A %.4f; %d turns on B (ticks of 5 s, -1 ends one: %v); minutes %.3f..%.3f", f, n, turns, slices.Min(minutes), slices.Max(minutes))
}

// TestPlanMovesWholeMiners: with loads already at their targets nothing
// moves; a pool left with everything hands the others the miners that
// bring each closest to its target, the best fitting first.
func TestPlanMovesWholeMiners(t *testing.T) {
	rates := []float64{5, 3, 1, 1}
	on := [][]int{{0, 1, 2, 3}, {}}
	load := []float64{10, 0}
	mv := planMoves(rates, on, load, []float64{7, 3}, 10)
	if len(mv) != 1 || mv[0].i != 1 || mv[0].to != 1 {
		t.Fatalf("moves %v, want the miner of rate 3 to pool 1", mv)
	}
	if again := planMoves(rates, on, load, []float64{7, 3}, 10); len(again) != 0 {
		t.Fatalf("loads at target, yet moves %v", again)
	}
}

// BenchmarkPlanMoves: one controller pass over 100,000 miners in three
// classes: "return" is every miner on one pool and a 70/30 target (a pool
// back from dark), "steady" the split already held. Each op includes
// copying the miners' lists (about 0.1 ms).
func BenchmarkPlanMoves(b *testing.B) {
	const n = 100000
	rates := make([]float64, n)
	total := 0.0
	for i := range rates {
		rates[i] = []float64{1, 10, 100}[i%3]
		total += rates[i]
	}
	want := []float64{0.7 * total, 0.3 * total}
	for _, tc := range []string{"return", "steady"} {
		var on0 [][]int
		var load0 []float64
		on0, load0 = [][]int{nil, nil}, []float64{0, 0}
		for i := range rates {
			p := 0
			if tc == "steady" && i%10 >= 7 {
				p = 1
			}
			on0[p] = append(on0[p], i)
			load0[p] += rates[i]
		}
		b.Run(tc, func(b *testing.B) {
			b.ReportAllocs()
			on := [][]int{make([]int, 0, n), make([]int, 0, n)}
			load := make([]float64, 2)
			moves := 0
			for b.Loop() {
				on[0], on[1] = append(on[0][:0], on0[0]...), append(on[1][:0], on0[1]...)
				copy(load, load0)
				moves = len(planMoves(rates, on, load, want, total))
			}
			b.ReportMetric(float64(moves), "moves")
		})
	}
}

// TestSplitMeasureStartsAtBalance: what the pools credit between a new
// serving set and the controller's first balance for it (before any miner
// moved) is nobody's debt: the measure starts at that balance.
func TestSplitMeasureStartsAtBalance(t *testing.T) {
	s, r := splitTestServer()
	r.Serve([]upstream.Share{{Pool: "a", Weight: 70}, {Pool: "b", Weight: 30}})
	r.creditMu.Lock()
	r.credit["b"] += 100 // b's miners still on it: they move at the balance
	r.creditMu.Unlock()
	r.balance(nil, time.Now())
	for _, p := range s.Splits()[0].Pools {
		if p.Credited != 0 {
			t.Errorf("%s credited %v since the split began, want 0: the gap before the first balance counted", p.Pool, p.Credited)
		}
	}
}

// splitTestServer is a server outside gnet (no event loop: a job's
// fan-out and a balance's moves complete at once) and its route.
func splitTestServer() (*Server, *route) {
	s := New(Options{Log: zerolog.Nop(), Metrics: metrics.New(prometheus.NewRegistry()), MinerExtranonce2Size: 4}, nil)
	return s, s.routeList()[0]
}

// splitTestSession is a pool session that never dials, to publish as.
func splitTestSession(pool string) *upstream.Session {
	return upstream.NewSession(upstream.Pool{Name: pool, URL: "stratum+tcp://127.0.0.1:1", User: "u"}, 0, upstream.Options{Log: zerolog.Nop()}, nopHandler{})
}

// splitTestJob is a pool job with id.
func splitTestJob(id string) *upstream.Job {
	n := &stratum.Notify{JobID: id, Version: 0x20000000, NBits: 0x17034219, NTime: uint32(time.Now().Unix()),
		Coinb1: make([]byte, 60), Coinb2: make([]byte, 40)}
	return &upstream.Job{Notify: n, Difficulty: 1, Extranonce1: []byte{1, 2, 3, 4}, Extranonce2Size: 8, Received: time.Now()}
}

// TestSplitSwitchCompletesWithMoves: a switch is complete when the miners
// have the new pool's work. A failover to a pool alone: at its first job,
// not at a job the old pool sends meanwhile. A failback that brings a
// pool into a split is complete once the controller's balance with that pool's work
// has moved its miners, not when the pool that still serves sends a job,
// nor at the joining pool's first job (which reaches no miner until
// some move to it).
func TestSplitSwitchCompletesWithMoves(t *testing.T) {
	_, r := splitTestServer()
	a, b := splitTestSession("a"), splitTestSession("b")
	done := 0
	// A failover from a to b: complete with b's first job, not with a
	// job a sends meanwhile.
	r.Serve([]upstream.Share{{Pool: "a", Weight: 70}})
	r.Publish(0, a, splitTestJob("a0"), true)
	r.TimeSwitch(0, "b", time.Now(), func(time.Duration) { done++ })
	r.Serve([]upstream.Share{{Pool: "b", Weight: 30}}) // a dark: b alone
	r.Publish(0, a, splitTestJob("a00"), false)
	if done != 0 {
		t.Fatal("the failover to b completed with a job of a")
	}
	r.Publish(0, b, splitTestJob("b1"), true)
	if done != 1 {
		t.Fatalf("the failover to b completed %d times at b's first job, want once", done)
	}

	done = 0
	r.TimeSwitch(0, "a", time.Now(), func(time.Duration) { done++ }) // a's failback
	r.Serve([]upstream.Share{{Pool: "a", Weight: 70}, {Pool: "b", Weight: 30}})
	if done != 0 {
		t.Fatal("the failback into the split completed when the split was named, before a had work")
	}
	r.Publish(0, b, splitTestJob("b2"), false)
	if done != 0 {
		t.Fatal("the failback to a completed with a job of b")
	}
	r.balance(nil, time.Now())
	if done != 0 {
		t.Fatal("the failback to a completed at a balance before a had work on the lane")
	}
	r.Publish(0, a, splitTestJob("a1"), true)
	if done != 0 {
		t.Fatal("the failback to a completed at a's first job, before any miner moved to it")
	}
	r.balance(nil, time.Now())
	if done != 1 {
		t.Fatalf("after the balance with a's work: switch completed %d times, want once", done)
	}
	r.balance(nil, time.Now())
	if done != 1 {
		t.Fatalf("switch completed %d times, want once", done)
	}
}

// TestSplitMeasureWaitsForWork: a pool named in the split but without work
// yet (its first job is slow to come) takes no miner, so what the others
// credit meanwhile is not its debt: the measure starts once every pool of
// the split has work. (A debt of that wait, repaid over the horizon, had a
// slow pool's turn overshoot its weight.)
func TestSplitMeasureWaitsForWork(t *testing.T) {
	s, r := splitTestServer()
	a, b := splitTestSession("a"), splitTestSession("b")
	r.Serve([]upstream.Share{{Pool: "a", Weight: 30}, {Pool: "b", Weight: 70}})
	r.Publish(0, a, splitTestJob("a1"), true)
	for range 3 { // a alone has work: its miners credit it
		r.balance(nil, time.Now())
		r.creditMu.Lock()
		r.credit["a"] += 100
		r.creditMu.Unlock()
	}
	r.Publish(0, b, splitTestJob("b1"), true)
	r.balance(nil, time.Now())
	for _, p := range s.Splits()[0].Pools {
		if p.Credited != 0 {
			t.Errorf("%s credited %v since the split began, want 0: the wait for b's first job counted", p.Pool, p.Credited)
		}
	}
}

// TestDesiredIgnoresHashrateScale: the work a pool is owed is weighed
// against the route's own credited rate, so the split the controller aims
// at does not depend on how well the miners' hashrates are measured yet
// (a new miner's measure starts at its vardiff prior, often far below its
// real rate): a total five times too small asks for the same fractions.
func TestDesiredIgnoresHashrateScale(t *testing.T) {
	w, credited := []float64{0.7, 0.3}, []float64{75, 25}
	right := desired(w, credited, 100, 10, 10*time.Second)
	low := desired(w, credited, 100, 2, 10*time.Second)
	for i := range w {
		if a, b := right[i]/10, low[i]/2; math.Abs(a-b) > 1e-9 {
			t.Errorf("pool %d: wants %.4f of the route with the hashrate right, %.4f with it 5x low", i, a, b)
		}
	}
	if f := right[1] / 10; f <= 0.3 || f >= 0.7 {
		t.Errorf("pool 1, owed work, wants %.4f of the route: want more than its 0.3, not everything", f)
	}
}
