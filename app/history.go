package app

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Defaults of the hashrate history kept for the status page.
const (
	DefaultHistoryInterval = 10 * time.Second
	DefaultHistoryWindow   = 30 * time.Minute
	// maxHistorySamples bounds the ring whatever interval and window ask for.
	maxHistorySamples = 1024
)

// hashesPerDifficulty is the expected number of hashes behind one share of
// difficulty 1: 2^32.
const hashesPerDifficulty = 4294967296

// History keeps, per pool, the hashrate switchyard forwarded to it over the
// last window, one sample every interval, in a fixed-size ring.
//
// Each sample is derived from a pool's running total of forwarded share
// difficulty (switchyard_forwarded_difficulty_sum_total{pool}): between two
// readings Δt apart, hashrate = Δdifficulty · 2^32 / Δt, in hashes per
// second. A total that is lower than the previous reading (the pool was
// removed and added again, which restarts its counter) or a pool first seen
// in this reading counts from zero: its whole total accrued since the
// previous reading. It is safe for concurrent use.
type History struct {
	mu       sync.Mutex
	interval time.Duration
	window   time.Duration
	ring     []historySample // len(ring) == capacity once full
	next     int             // where the next sample goes once the ring is full
	prevAt   time.Time       // time of the previous reading; zero: none yet
	prev     map[string]float64
}

// historySample is one reading: each pool's hashrate over [from, at].
type historySample struct {
	at    time.Time
	rates []poolRate
}

type poolRate struct {
	pool string
	hs   float64
}

// NewHistory returns a History sampling every interval and keeping window
// of samples (at most 1024 of them, at least 2). Non-positive arguments take
// the defaults, 10s and 30m.
func NewHistory(interval, window time.Duration) *History {
	if interval <= 0 {
		interval = DefaultHistoryInterval
	}
	if window <= 0 {
		window = DefaultHistoryWindow
	}
	return &History{interval: interval, window: window}
}

// Interval is the time between samples.
func (h *History) Interval() time.Duration { return h.interval }

func (h *History) capacity() int {
	n := int(h.window / h.interval)
	return max(2, min(n, maxHistorySamples))
}

// Record takes a reading of every pool's credited difficulty total at now
// and, from the second reading on, appends a sample of hashrates. Totals
// that are negative, NaN or infinite are ignored. A reading at or before the
// previous one (a clock stepped back) only becomes the new baseline.
func (h *History) Record(now time.Time, totals map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := make(map[string]float64, len(totals))
	for pool, v := range totals {
		if v >= 0 && !math.IsInf(v, 1) { // NaN fails v >= 0
			cur[pool] = v
		}
	}
	prevAt, prev := h.prevAt, h.prev
	h.prevAt, h.prev = now, cur
	if prevAt.IsZero() {
		return
	}
	dt := now.Sub(prevAt).Seconds()
	if dt <= 0 {
		return
	}
	s := historySample{at: now, rates: make([]poolRate, 0, len(cur))}
	for pool, v := range cur {
		s.rates = append(s.rates, poolRate{pool: pool, hs: Hashrate(v-baseline(prev, pool, v), dt)})
	}
	sort.Slice(s.rates, func(i, j int) bool { return s.rates[i].pool < s.rates[j].pool })
	if n := h.capacity(); len(h.ring) < n {
		h.ring = append(h.ring, s)
	} else {
		h.ring[h.next] = s
		h.next = (h.next + 1) % n
	}
}

// baseline is the previous total of pool to subtract from v: 0 when the pool
// is new or its counter restarted.
func baseline(prev map[string]float64, pool string, v float64) float64 {
	p, ok := prev[pool]
	if !ok || p > v {
		return 0
	}
	return p
}

// Hashrate converts difficulty accrued over seconds into hashes per second:
// diff · 2^32 / seconds. It is 0 for a non-positive duration.
func Hashrate(diff, seconds float64) float64 {
	if seconds <= 0 || diff <= 0 {
		return 0
	}
	return diff * hashesPerDifficulty / seconds
}

// HistoryView is the "history" field of /api/v1/status.
type HistoryView struct {
	// IntervalSeconds is the time between samples.
	IntervalSeconds float64 `json:"interval_seconds"`
	// WindowSeconds is how far back samples are kept.
	WindowSeconds float64 `json:"window_seconds"`
	// Series has one entry per pool: the configured pools in rank order,
	// then any other pool still in the window, by name.
	Series []HistorySeries `json:"series"`
}

// HistorySeries is one pool's hashrate over time.
type HistorySeries struct {
	Pool string `json:"pool"`
	// Points are [unix_seconds, hashes_per_second] pairs, oldest first;
	// each is the average over the interval that ends at unix_seconds.
	Points [][2]float64 `json:"points"`
}

// Snapshot returns the samples as one series per pool; order lists pools to
// put first (the configured ranking).
func (h *History) Snapshot(order []string) HistoryView {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := HistoryView{IntervalSeconds: h.interval.Seconds(), WindowSeconds: h.window.Seconds(), Series: []HistorySeries{}}
	index := make(map[string]int)
	add := func(pool string) int {
		if i, ok := index[pool]; ok {
			return i
		}
		index[pool] = len(v.Series)
		v.Series = append(v.Series, HistorySeries{Pool: pool, Points: [][2]float64{}})
		return index[pool]
	}
	for _, p := range order {
		add(p)
	}
	seen := map[string]bool{}
	var extra []string
	h.each(func(s historySample) {
		for _, r := range s.rates {
			if _, ok := index[r.pool]; !ok && !seen[r.pool] {
				seen[r.pool] = true
				extra = append(extra, r.pool)
			}
		}
	})
	sort.Strings(extra) // pools outside order come after it, by name
	for _, p := range extra {
		add(p)
	}
	h.each(func(s historySample) {
		t := float64(s.at.UnixMilli()) / 1e3
		for _, r := range s.rates {
			i := index[r.pool]
			v.Series[i].Points = append(v.Series[i].Points, [2]float64{t, r.hs})
		}
	})
	return v
}

// each visits the samples oldest first; h.mu must be held.
func (h *History) each(f func(historySample)) {
	n := len(h.ring)
	start := 0
	if n == h.capacity() {
		start = h.next
	}
	for k := 0; k < n; k++ {
		f(h.ring[(start+k)%n])
	}
}

// sumByPool adds up, per "pool" label, the values of the series c holds
// now, keeping only those whose labels pass keep (nil: all). It reads
// without creating series, so a removed pool does not come back.
func sumByPool(c prometheus.Collector, keep func(labels map[string]string) bool) map[string]float64 {
	return sumBy(c, keep, "pool")
}

// routePool is the key sumBy(…, "route", "pool") gives a series.
func routePool(route, pool string) string { return route + "\x00" + pool }

// sumBy is sumByPool keyed by the values of labels (joined by NUL).
func sumBy(c prometheus.Collector, keep func(labels map[string]string) bool, by ...string) map[string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		labels := make(map[string]string, len(d.GetLabel()))
		for _, l := range d.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		var pool string
		ok := true
		for i, k := range by {
			v, has := labels[k]
			ok = ok && has
			if i > 0 {
				pool += "\x00"
			}
			pool += v
		}
		if !ok || (keep != nil && !keep(labels)) {
			continue
		}
		switch {
		case d.GetCounter() != nil:
			out[pool] += d.GetCounter().GetValue()
		case d.GetGauge() != nil:
			out[pool] += d.GetGauge().GetValue()
		}
	}
	return out
}

// Farm totals windows: the hashrate over each is on the status page.
var FarmWindows = []time.Duration{5 * time.Minute, time.Hour, 24 * time.Hour}

// farmStep is the time between the readings FarmHistory keeps: 24 hours
// of them are 1441 readings.
const farmStep = time.Minute

// FarmReading is one reading of the farm's running totals: the difficulty
// the pools credited, and the miners' shares by switchyard's verdict.
type FarmReading struct {
	At                       time.Time
	Credited                 float64
	Accepted, Rejected, Lost float64
}

// FarmHistory keeps a reading of the farm's totals every minute for the
// longest of FarmWindows, in a fixed ring (about 60 KB), to give rates
// over each window: the difference between now and the oldest reading
// inside the window, over the time between them. It is safe for
// concurrent use.
type FarmHistory struct {
	mu   sync.Mutex
	ring []FarmReading // oldest first once rotated from next
	next int
	n    int // capacity
	step time.Duration
}

// NewFarmHistory returns a FarmHistory with one reading per step (<= 0:
// a minute) over the longest FarmWindow.
func NewFarmHistory(step time.Duration) *FarmHistory {
	if step <= 0 {
		step = farmStep
	}
	longest := FarmWindows[len(FarmWindows)-1]
	return &FarmHistory{step: step, n: int(longest/step) + 1}
}

// Record keeps r when a step has passed since the newest reading kept (the
// first reading is always kept); readings at or before the newest are
// ignored.
func (f *FarmHistory) Record(r FarmReading) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if last, ok := f.newest(); ok && r.At.Sub(last.At) < f.step {
		return
	}
	if len(f.ring) < f.n {
		f.ring = append(f.ring, r)
		return
	}
	f.ring[f.next] = r
	f.next = (f.next + 1) % f.n
}

func (f *FarmHistory) newest() (FarmReading, bool) {
	if len(f.ring) == 0 {
		return FarmReading{}, false
	}
	if len(f.ring) < f.n {
		return f.ring[len(f.ring)-1], true
	}
	return f.ring[(f.next+f.n-1)%f.n], true
}

// Base returns the oldest reading no older than window before cur.At:
// what cur is compared with for the rate over window. ok is false when no
// reading is older than cur.
func (f *FarmHistory) Base(cur FarmReading, window time.Duration) (FarmReading, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := cur.At.Add(-window)
	n := len(f.ring)
	start := 0
	if n == f.n {
		start = f.next
	}
	for k := 0; k < n; k++ {
		r := f.ring[(start+k)%n]
		if !r.At.Before(from) && r.At.Before(cur.At) {
			return r, true
		}
	}
	return FarmReading{}, false
}

// WindowRate is the farm's hashrate over one of FarmWindows.
type WindowRate struct {
	WindowSeconds float64 `json:"window_seconds"`
	// CoveredSeconds is the time the rate is measured over: the window, or
	// less while switchyard has run for less.
	CoveredSeconds float64 `json:"covered_seconds"`
	// HashrateHs is the difficulty the pools credited over that time,
	// × 2^32 per second.
	HashrateHs float64 `json:"hashrate_hs"`
	// RejectRatio and LostRatio are the miners' shares over that time that
	// switchyard rejected or lost (no pool could take them), of all the
	// shares they sent; 0 without shares.
	RejectRatio float64 `json:"reject_ratio"`
	LostRatio   float64 `json:"lost_ratio"`
}

// Rates gives the rates over each of FarmWindows up to cur.
func (f *FarmHistory) Rates(cur FarmReading) []WindowRate {
	out := make([]WindowRate, 0, len(FarmWindows))
	for _, w := range FarmWindows {
		r := WindowRate{WindowSeconds: w.Seconds()}
		if b, ok := f.Base(cur, w); ok {
			r.CoveredSeconds = cur.At.Sub(b.At).Seconds()
			r.HashrateHs = Hashrate(cur.Credited-b.Credited, r.CoveredSeconds)
			acc, rej, lost := cur.Accepted-b.Accepted, cur.Rejected-b.Rejected, cur.Lost-b.Lost
			if all := acc + rej + lost; all > 0 {
				r.RejectRatio, r.LostRatio = rej/all, lost/all
			}
		}
		out = append(out, r)
	}
	return out
}

// sumByLabel adds up the values of c's series by the value of label.
func sumByLabel(c prometheus.Collector, label string) map[string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	out := map[string]float64{}
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == label {
				switch {
				case d.GetCounter() != nil:
					out[l.GetValue()] += d.GetCounter().GetValue()
				case d.GetGauge() != nil:
					out[l.GetValue()] += d.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
