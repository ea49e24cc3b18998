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
		pool, ok := labels["pool"]
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
