package proxy

import (
	"cmp"
	"context"
	"math"
	"slices"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// The split: a route whose tier of pools shares its miners by weight
// (upstream.Sink.Serve names them) holds that split on what the pools
// credit — the pool difficulty of the shares each accepted — by moving
// whole miners between the pools' feeds with a new job, never a
// reconnect. Every SplitEvery the controller (splitLoop) reads each
// miner's measured hashrate on its loop, works out the hashrate each pool
// should get next (its weight's part, plus a correction for the work it
// is owed or was overpaid since the split began, repaid over
// splitHorizon), and moves the fewest miners that bring the pools' loads
// closest to it. When whole miners cannot reach the weights (five miners
// and a 70/30 split), the correction builds up until a miner moves, and
// back: each miner spends part of the time on each pool, and the split
// holds on average.
//
// A moved miner gets the new pool's current job with clean_jobs=false:
// the work in hand stays valid at the pool that issued it, whose session
// still takes its shares, so a move flushes nothing; the cost is one
// notify (and set_difficulty when the pools' difficulties differ).

// splitHorizon is how long the controller takes to repay a pool the work
// it is owed. Long enough that the luck of a few shares does not move
// miners (2,000 miners: about as many moves as at a minute); short
// enough that when whole miners cannot make the weights the turns a miner
// takes on the other pool are short and frequent: with a miner making
// 71 % of a 70/30 route, a turn of about 15 s every 8 minutes where a
// minute's horizon took one of 45 s every 25 minutes (the turn's length
// and the time between turns scale with the horizon).
const splitHorizon = 20 * time.Second

// splitDeadband is the error in the pools' loads, as a fraction of the
// route's hashrate, below which no miner moves.
const splitDeadband = 0.01

// estWindow is how long a miner's hashrate is measured over (two windows,
// the newest one growing: 5 to 10 minutes once connected that long).
const estWindow = 5 * time.Minute

// splitState is a route's split as the controller keeps it: from when the
// serving set last changed, what each pool had credited then (the
// measure starts there), and the latest view for the status.
type splitState struct {
	set   *servingSet // the serving set the measure is for
	ready bool        // every pool of set had work when the measure began
	since time.Time
	base  map[string]float64
	view  RouteSplit
}

// restartSplit starts measuring the split afresh for serving set ss, at
// the first balance after the set changed (so that what the pools
// credited before the miners moved is not owed to anyone). Pools no
// longer serving read 0. Called with r.creditMu held.
func (r *route) restartSplit(ss *servingSet, now time.Time) {
	r.split.set, r.split.since = ss, now
	r.split.base = make(map[string]float64, len(r.credit))
	for p, c := range r.credit {
		r.split.base[p] = c
		if ss.weight(p) == 0 {
			r.met.SplitMeasured.WithLabelValues(p).Set(0)
		}
	}
}

// splitHasWork reports whether every pool of ss has a job on some lane.
func (r *route) splitHasWork(ss *servingSet) bool {
	if len(ss.shares) < 2 {
		return true
	}
	lanes := r.srv.allLanes()
	for _, sh := range ss.shares {
		if !slices.ContainsFunc(lanes, func(l *lane) bool { return l.feed(r, sh.Pool).hasWork() }) {
			return false
		}
	}
	return true
}

// kickSplit has the controller balance at once (after Serve).
func (s *Server) kickSplit() {
	select {
	case s.splitNow <- struct{}{}:
	default:
	}
}

// RouteSplit is one route's split as last measured: the serving pools,
// their targets and measured shares of the credited work since Since.
type RouteSplit struct {
	Route  string      `json:"route"`
	Miners int         `json:"miners"`
	Moves  uint64      `json:"moves"`
	Since  time.Time   `json:"split_since,omitzero"`
	Pools  []PoolSplit `json:"split"`
}

// PoolSplit is one serving pool of a route's split.
type PoolSplit struct {
	Pool     string  `json:"pool"`
	Weight   int     `json:"weight"`
	Target   float64 `json:"target"`
	Measured float64 `json:"measured"`
	// Credited is the pool difficulty it accepted since the split began.
	Credited float64 `json:"credited_difficulty"`
	// Miners and HashrateHs are the miners following it now and their
	// measured hashrate.
	Miners     int     `json:"miners"`
	HashrateHs float64 `json:"hashrate_hs"`
}

// Splits returns every route's split as last measured (at most SplitEvery
// old).
func (s *Server) Splits() []RouteSplit {
	out := make([]RouteSplit, len(s.routeList()))
	for i, r := range s.routeList() {
		r.creditMu.Lock()
		v := r.split.view
		v.Pools = slices.Clone(v.Pools)
		r.creditMu.Unlock()
		v.Route = r.name
		out[i] = v
	}
	return out
}

// minerLoad is a miner as the controller sees it: read on its loop, used
// elsewhere only to name it when a move goes back to that loop.
type minerLoad struct {
	m    *miner
	lp   *loop
	lane *lane
	feed *feed
	rate float64 // difficulty per second
}

// splitLoop runs the split controller every SplitEvery until ctx is done.
func (s *Server) splitLoop(ctx context.Context) {
	s.every(ctx, s.opts.SplitEvery, s.splitNow, func(now time.Time) { s.splitTick(ctx, now) })
}

// splitTick reads every routed miner's load on its loop, then balances
// each route.
func (s *Server) splitTick(ctx context.Context, now time.Time) {
	byRoute, complete := s.loads(ctx, now)
	if !complete {
		// A loop too busy to answer hides its miners: moves planned
		// without them would aim at the wrong loads. Next tick.
		s.splitSkips++
		e := s.log.Debug()
		if s.splitSkips%12 == 3 { // the third in a row, then once a minute
			e = s.log.Warn()
		}
		e.Int("ticks", s.splitSkips).Msg("split: an event loop did not report its miners within 1s; no moves this tick")
		return
	}
	s.splitSkips = 0
	for _, r := range s.routeList() {
		r.balance(byRoute[r], now)
	}
}

// loads collects the miners following a serving feed, per route, from
// every loop (at most a second's wait for a busy loop); complete is false
// when some loop did not answer in time.
func (s *Server) loads(ctx context.Context, now time.Time) (by map[*route][]minerLoad, complete bool) {
	s.loopsMu.Lock()
	n := len(s.loops)
	s.loopsMu.Unlock()
	ch := make(chan []minerLoad, n+1)
	s.eachLoop(func(lp *loop) {
		var out []minerLoad
		for m := range lp.miners {
			if m.routed && m.mining() && m.feed != nil && m.closeReason == closeNone {
				out = append(out, minerLoad{m: m, lp: lp, lane: m.lane, feed: m.feed, rate: m.rate(now)})
			}
		}
		ch <- out
	})
	by = map[*route][]minerLoad{}
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	for i := 0; i < n; i++ {
		select {
		case ls := <-ch:
			for _, l := range ls {
				by[l.feed.route] = append(by[l.feed.route], l)
			}
		case <-wait.C:
			return by, false
		case <-ctx.Done():
			return by, false
		}
	}
	return by, true
}

// rate is the miner's measured hashrate in difficulty per second: the
// difficulty it had accepted over the last 5 to 10 minutes, with one share
// at its current difficulty per target interval as a prior, so a new
// miner counts at what vardiff expects of it. Called on its loop.
func (m *miner) rate(now time.Time) float64 {
	if m.est.t1.IsZero() {
		m.est.t0, m.est.t1 = m.vdStartOrNow(now), now
		m.est.w0, m.est.w1 = m.diffSum, m.diffSum
	}
	if now.Sub(m.est.t1) >= estWindow {
		m.est.t0, m.est.w0 = m.est.t1, m.est.w1
		m.est.t1, m.est.w1 = now, m.diffSum
	}
	target := m.srv.vardiff().Target.Seconds()
	dt := now.Sub(m.est.t0).Seconds()
	return (m.diffSum - m.est.w0 + m.diff) / (dt + target)
}

// vdStartOrNow is when the miner started mining, or now.
func (m *miner) vdStartOrNow(now time.Time) time.Time {
	if m.vdStart.IsZero() {
		return now
	}
	return m.vdStart
}

// hashEst is a miner's hashrate measure (see miner.rate).
type hashEst struct {
	t0, t1 time.Time
	w0, w1 float64
}

// balance moves miners of the route between its serving pools to hold the
// split, and records the view for the status. Runs on the controller.
func (r *route) balance(miners []minerLoad, now time.Time) {
	ss := r.set.Load()
	if ss == nil {
		return
	}
	k := len(ss.shares)
	idx := make(map[string]int, k)
	for i, sh := range ss.shares {
		idx[sh.Pool] = i
	}
	load := make([]float64, k)
	count := make([]int, k)
	on := make([][]int, k) // miners per pool, by index into miners
	total := 0.0
	for i, ml := range miners {
		p, ok := idx[ml.feed.pool]
		if !ok || !ml.feed.serving.Load() {
			continue
		}
		load[p] += ml.rate
		count[p]++
		on[p] = append(on[p], i)
		total += ml.rate
	}
	ready := r.splitHasWork(ss)
	r.creditMu.Lock()
	if r.split.set != ss || !r.split.ready {
		// Until every pool of the set has work, one without takes no
		// miner: what the others credit meanwhile is nobody's debt.
		r.restartSplit(ss, now)
		r.split.ready = ready
	}
	credited := make([]float64, k)
	sum := 0.0
	for i, sh := range ss.shares {
		credited[i] = r.credit[sh.Pool] - r.split.base[sh.Pool]
		sum += credited[i]
	}
	since := r.split.since
	r.creditMu.Unlock()

	w := make([]float64, k)
	for i, sh := range ss.shares {
		if ss.total > 0 {
			w[i] = float64(sh.Weight) / float64(ss.total)
		}
	}
	// Switches into the split whose pool has work complete once this
	// balance's moves are made.
	var sws []*pendingSwitch
	if k > 1 {
		sws = r.takeSplitSwitches()
	}
	moves := 0
	if k > 1 && total > 0 {
		want := desired(w, credited, sum, total, now.Sub(since))
		moves = r.rebalance(miners, on, load, want, total, sws)
	} else {
		awaitAll(sws, 0)
	}

	view := RouteSplit{Since: since, Moves: 0}
	for i, sh := range ss.shares {
		ps := PoolSplit{Pool: sh.Pool, Weight: sh.Weight, Target: w[i], Credited: credited[i],
			Miners: count[i], HashrateHs: load[i] * hashesPerDiff}
		if sum > 0 {
			ps.Measured = credited[i] / sum
		}
		view.Pools = append(view.Pools, ps)
		view.Miners += count[i]
		r.met.SplitMeasured.WithLabelValues(sh.Pool).Set(ps.Measured)
	}
	r.creditMu.Lock()
	view.Moves = r.split.view.Moves + uint64(moves)
	r.split.view = view
	r.creditMu.Unlock()
}

// hashesPerDiff is the hashes one share of difficulty 1 stands for.
const hashesPerDiff = 1 << 32

// desired is the hashrate each pool should get next: its weight's part of
// total, plus the work it is owed since the split began (its weight's
// part of all credited work, less what it credited) repaid over
// splitHorizon; never below 0, and summing to total. The work owed is
// counted in the route's own credited rate over elapsed (sum/elapsed),
// not in total: total comes from the miners' measured hashrates, which
// start low (a new miner's measure begins with its vardiff prior), and a
// debt weighed against too small a total would move too many miners.
func desired(w, credited []float64, sum, total float64, elapsed time.Duration) []float64 {
	want := make([]float64, len(w))
	s := 0.0
	for i := range w {
		frac := w[i] // the share it is owed on top, as a fraction of the route's rate
		if sum > 0 && elapsed > 0 {
			frac += (w[i] - credited[i]/sum) * elapsed.Seconds() / splitHorizon.Seconds()
		}
		want[i] = math.Max(0, total*frac)
		s += want[i]
	}
	if s <= 0 {
		copy(want, w)
		s = 1
	}
	for i := range want {
		want[i] *= total / s
	}
	return want
}

// move is one planned move: miner i (an index into the loads) to pool to.
type move struct {
	i  int
	to int
}

// planMoves picks miners to move from pools above their desired load to
// pools below it, until the error is within the dead band or no move
// lowers it. From the pool furthest above its load to the one furthest
// below, it first moves, largest first, every miner that fits in what both
// are off (each such move lowers the error by twice its rate: a pool back
// from dark gets its share in one pass); then, one at a time, the single
// move that lowers the error most, so that a miner too big to fit still
// moves when that helps (five miners on a 70/30 split). rates are the
// miners' hashrates, on[p] the miners on pool p; load and on are updated
// as miners move. It costs O(miners) per pass, a few passes per call.
func planMoves(rates []float64, on [][]int, load, want []float64, total float64) []move {
	var mv []move
	band := splitDeadband * total
	sorted := make([]bool, len(on))
	for pass := 0; pass < 4*len(load)*len(load)+fineMoves; pass++ {
		errSum := 0.0
		from, to := -1, -1
		for p := range load {
			d := load[p] - want[p]
			errSum += math.Abs(d)
			if d > 0 && (from < 0 || d > load[from]-want[from]) {
				from = p
			}
			if d < 0 && (to < 0 || d < load[to]-want[to]) {
				to = p
			}
		}
		if errSum <= band || from < 0 || to < 0 {
			break
		}
		e, g := load[from]-want[from], want[to]-load[to]
		if !sorted[from] {
			slices.SortFunc(on[from], func(a, b int) int { return cmp.Compare(rates[b], rates[a]) })
			sorted[from] = true
		}
		// Whole miners that fit.
		fit := math.Min(e, g)
		keep, n := on[from][:0], len(mv)
		for _, i := range on[from] {
			if h := rates[i]; fit > band/8 && h <= fit {
				fit -= h
				load[from] -= h
				load[to] += h
				on[to] = append(on[to], i)
				mv = append(mv, move{i: i, to: to})
				continue
			}
			keep = append(keep, i)
		}
		on[from] = keep
		if len(mv) > n {
			sorted[to] = false
			continue
		}
		// The best single move: moving h lowers |e-h|+|g-h| below e+g by
		// gain; of equal gains the smallest miner moves.
		best, bestGain := -1, 0.0
		for j, i := range on[from] {
			h := rates[i]
			gain := e + g - math.Abs(e-h) - math.Abs(g-h)
			if gain > bestGain || gain == bestGain && best >= 0 && h < rates[on[from][best]] {
				best, bestGain = j, gain
			}
		}
		if best < 0 || bestGain <= band/4 {
			break
		}
		i := on[from][best]
		on[from] = append(on[from][:best], on[from][best+1:]...)
		on[to] = append(on[to], i)
		sorted[to] = false
		load[from] -= rates[i]
		load[to] += rates[i]
		mv = append(mv, move{i: i, to: to})
	}
	return mv
}

// fineMoves bounds the single moves planMoves makes in one call.
const fineMoves = 64

// awaitAll readies sws to complete after n steps (stepAll), or now when n
// is 0.
func awaitAll(sws []*pendingSwitch, n int) {
	for _, sw := range sws {
		sw.await(int32(n))
	}
}

// stepAll is one step towards completing sws.
func stepAll(sws []*pendingSwitch) {
	for _, sw := range sws {
		sw.step()
	}
}

// rebalance plans the moves (planMoves) and has each miner's loop carry
// them out; it returns how many it planned. The switches sws complete once
// every loop has made its moves.
func (r *route) rebalance(miners []minerLoad, on [][]int, load, want []float64, total float64, sws []*pendingSwitch) int {
	rates := make([]float64, len(miners))
	for i, ml := range miners {
		rates[i] = ml.rate
	}
	mv := planMoves(rates, on, load, want, total)
	if len(mv) == 0 {
		awaitAll(sws, 0)
		return 0
	}
	ss := r.set.Load()
	byLoop := map[*loop][]move{}
	for _, m := range mv {
		byLoop[miners[m.i].lp] = append(byLoop[miners[m.i].lp], m)
	}
	awaitAll(sws, len(byLoop))
	for lp, ms := range byLoop {
		lp, ms := lp, ms
		err := lp.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer stepAll(sws)
			for _, m := range ms {
				ml := miners[m.i]
				if _, ok := lp.miners[ml.m]; !ok || ml.m.feed != ml.feed {
					continue // gone, or moved meanwhile
				}
				f := ml.lane.feed(r, ss.shares[m.to].Pool)
				if !f.hasWork() {
					continue
				}
				ml.m.moveTo(f, false)
				r.moves.Inc()
			}
			return nil
		}))
		if err != nil {
			stepAll(sws)
			if !r.srv.draining.Load() {
				r.srv.log.Warn().Err(err).Msg("event loop refused work")
			}
		}
	}
	return len(mv)
}
