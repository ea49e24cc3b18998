package sim

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 1000, 123456789, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d", v, i)
		}
		if hi := bucketMax(i); v > hi || (i > 0 && v <= bucketMax(i-1)) {
			t.Fatalf("%d in bucket %d: (%d, %d]", v, i, bucketMax(i-1), hi)
		}
	}
}

func TestLatencyQuantiles(t *testing.T) {
	var h latencyHist
	vals := make([]time.Duration, 10000)
	for i := range vals {
		vals[i] = time.Duration(rand.Int64N(int64(50 * time.Millisecond)))
		h.record(vals[i])
	}
	slices.Sort(vals)
	s := h.snapshot()
	if s.Count != 10000 || s.Max != vals[len(vals)-1] {
		t.Fatalf("count %d max %s", s.Count, s.Max)
	}
	for _, q := range []struct {
		got  time.Duration
		rank int
	}{{s.P50, 5000}, {s.P90, 9000}, {s.P99, 9900}} {
		exact := vals[q.rank-1]
		if q.got < exact || float64(q.got) > float64(exact)*1.0625+1 {
			t.Errorf("quantile %s, exact %s", q.got, exact)
		}
	}
	var empty latencyHist
	if s := empty.snapshot(); s.Count != 0 || s.P99 != 0 {
		t.Fatalf("empty %+v", s)
	}
}
