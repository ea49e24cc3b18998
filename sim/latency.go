package sim

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the histogram's precision: 2^subBits linear buckets per power
// of two, so a reported quantile is at most 1/16 (6.25%) above the truth.
const subBits = 4

// numBuckets covers every non-negative int64 nanosecond count.
const numBuckets = (64 - subBits) << subBits

// latencyHist is an HDR-style histogram of durations: fixed memory (about
// 8 KiB), lock-free recording, bounded relative error. The zero value is
// ready to use.
type latencyHist struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 // >= subBits
	return (e-subBits+1)<<subBits | int(v>>(e-subBits)&(1<<subBits-1))
}

// bucketMax returns the largest value that falls in bucket i.
func bucketMax(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	low := (1<<subBits | sub) << (e - subBits)
	return low + 1<<(e-subBits) - 1
}

func (h *latencyHist) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// LatencyStats summarises answer latencies: quantiles are the upper edge of
// their histogram bucket (at most 6.25% high), Max is exact.
type LatencyStats struct {
	Count         uint64
	P50, P90, P99 time.Duration
	Max           time.Duration
}

// String formats l as "p50=… p90=… p99=… max=…".
func (l LatencyStats) String() string {
	return fmt.Sprintf("p50=%s p90=%s p99=%s max=%s", round(l.P50), round(l.P90), round(l.P99), round(l.Max))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func (h *latencyHist) snapshot() LatencyStats {
	var counts [numBuckets]uint64
	var n uint64
	for i := range counts {
		counts[i] = h.counts[i].Load()
		n += counts[i]
	}
	s := LatencyStats{Count: n, Max: time.Duration(h.max.Load())}
	if n == 0 {
		return s
	}
	q := func(f float64) time.Duration {
		rank := uint64(math.Ceil(f * float64(n)))
		var cum uint64
		for i, c := range counts {
			cum += c
			if cum >= rank {
				return min(time.Duration(bucketMax(i)), s.Max)
			}
		}
		return s.Max
	}
	s.P50, s.P90, s.P99 = q(0.50), q(0.90), q(0.99)
	return s
}
