package metrics

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestWorkers(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := NewWorkers(reg, 0)
	now := time.Unix(1700000000, 500000000)

	a := w.Get("farm.rack1")
	a.Accepted(1024, now)
	a.Accepted(2048, now)
	a.Rejected()
	b := w.Get("farm.rack2")
	b.Rejected()

	want := `
# HELP switchyard_worker_difficulty_sum_total Sum of the difficulty of a worker's accepted shares; rate() * 2^32 is its hashrate in H/s.
# TYPE switchyard_worker_difficulty_sum_total counter
switchyard_worker_difficulty_sum_total{worker="farm.rack1"} 3072
switchyard_worker_difficulty_sum_total{worker="farm.rack2"} 0
# HELP switchyard_worker_last_share_timestamp_seconds Unix time of a worker's last accepted share.
# TYPE switchyard_worker_last_share_timestamp_seconds gauge
switchyard_worker_last_share_timestamp_seconds{worker="farm.rack1"} 1.7000000005e+09
switchyard_worker_last_share_timestamp_seconds{worker="farm.rack2"} 0
# HELP switchyard_worker_shares_total Shares sent by a worker, by result (accepted, rejected).
# TYPE switchyard_worker_shares_total counter
switchyard_worker_shares_total{result="accepted",worker="farm.rack1"} 2
switchyard_worker_shares_total{result="accepted",worker="farm.rack2"} 0
switchyard_worker_shares_total{result="rejected",worker="farm.rack1"} 1
switchyard_worker_shares_total{result="rejected",worker="farm.rack2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, _ := testutil.GatherAndLint(reg); len(problems) > 0 {
		t.Errorf("promlint: %v", problems)
	}

	// Two connections with one worker name share series until both leave.
	a2 := w.Get("farm.rack1")
	if a2 != a {
		t.Error("same worker name, different handle")
	}
	w.Forget(a)
	if n := testutil.CollectAndCount(reg, "switchyard_worker_difficulty_sum_total"); n != 2 {
		t.Errorf("after one of two left: %d workers, want 2", n)
	}
	w.Forget(a2)
	w.Forget(a2) // a second Forget of a gone handle does nothing
	if n := testutil.CollectAndCount(reg, "switchyard_worker_difficulty_sum_total"); n != 1 {
		t.Errorf("after both left: %d workers, want 1", n)
	}
	if w.Len() != 1 {
		t.Errorf("Len() = %d, want 1", w.Len())
	}
	w.Forget(b)
	if n := testutil.CollectAndCount(reg); n != 0 {
		t.Errorf("after all left: %d series, want 0", n)
	}
}

func TestWorkersNil(t *testing.T) {
	var w *Workers // per-worker metrics off
	h := w.Get("x")
	h.Accepted(1, time.Now())
	h.Rejected()
	w.Forget(h)
	if h != nil || w.Len() != 0 || h.Name() != "" {
		t.Error("nil Workers should hand out nil handles")
	}
}

func TestWorkersLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := NewWorkers(reg, 2)
	w.Get("a")
	w.Get("b")
	c := w.Get("c")
	d := w.Get("d")
	if c.Name() != OverflowWorker || d != c {
		t.Errorf("past the limit: %q %q, want both %q", c.Name(), d.Name(), OverflowWorker)
	}
	if n := testutil.CollectAndCount(reg, "switchyard_worker_difficulty_sum_total"); n != 3 {
		t.Errorf("%d workers, want 3 (a, b, overflow)", n)
	}
	// Overflow is shared by reference count too.
	w.Forget(c)
	if w.Len() != 3 {
		t.Errorf("Len() = %d after one overflow user left, want 3", w.Len())
	}
}

func TestWorkerLabel(t *testing.T) {
	long := strings.Repeat("é", MaxWorkerLabel) // 2 bytes each
	for _, in := range []string{"farm.rack1", "", "bad\xffbytes", long, "x" + long} {
		got := workerLabel(in)
		if !utf8.ValidString(got) || len(got) > MaxWorkerLabel || got == "" {
			t.Errorf("workerLabel(%q) = %q", in, got)
		}
	}
	if got := workerLabel("farm.rack1"); got != "farm.rack1" {
		t.Errorf("workerLabel kept = %q", got)
	}
	// Label values that are not UTF-8 would make client_golang panic.
	w := NewWorkers(prometheus.NewRegistry(), 0)
	w.Get("\xff\xfe").Accepted(1, time.Now())
}

func TestWorkersConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := NewWorkers(reg, 0)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 100 {
				h := w.Get("w" + string(rune('a'+(i+j)%5)))
				h.Accepted(1, time.Now())
				w.Forget(h)
			}
		})
	}
	wg.Wait()
	if w.Len() != 0 {
		t.Errorf("Len() = %d after every Forget, want 0", w.Len())
	}
}

// BenchmarkWorkerAccepted is the per-share cost with a handle: no label
// lookup, no lock.
func BenchmarkWorkerAccepted(b *testing.B) {
	w := NewWorkers(prometheus.NewRegistry(), 0)
	for i := range 10000 {
		w.Get("worker" + strconv.Itoa(i))
	}
	h := w.Get("hot")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		h.Accepted(65536, now)
	}
}

// BenchmarkScrapeWorkers is one scrape of /metrics with the full operator
// set and 10,000 workers with per-worker series, as Prometheus sees it
// (plain text, no compression): what per_worker = true costs a scrape.
func BenchmarkScrapeWorkers(b *testing.B) {
	for _, n := range []int{0, 10000} {
		b.Run("workers="+strconv.Itoa(n), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			New(reg)
			w := NewWorkers(reg, 0)
			now := time.Now()
			for i := range n {
				h := w.Get("farm.rack" + strconv.Itoa(i/100) + "-" + strconv.Itoa(i%100))
				h.Accepted(65536, now)
				if i%10 == 0 {
					h.Rejected()
				}
			}
			srv := Handler(reg, HandlerOptions{})
			req := httptest.NewRequest("GET", "/metrics", nil)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d", rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}
