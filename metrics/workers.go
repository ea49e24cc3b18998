package metrics

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-worker limits.
const (
	// DefaultWorkerLimit is the Workers limit when NewWorkers is given 0.
	DefaultWorkerLimit = 100000
	// MaxWorkerLabel is the longest worker label, in bytes; longer worker
	// names are cut.
	MaxWorkerLabel = 128
	// OverflowWorker is the worker label shared by workers past the limit.
	OverflowWorker = "_overflow"
)

// Workers holds the per-worker series, registered only when
// [metrics] per_worker is on:
//
//	switchyard_worker_shares_total{worker,result}             accepted and rejected shares
//	switchyard_worker_difficulty_sum_total{worker}            sum of accepted difficulty
//	switchyard_worker_last_share_timestamp_seconds{worker}    Unix time of the last accepted share
//
// Each miner connection takes a *Worker handle with Get when it authorizes
// and gives it back with Forget when it closes; the handle's methods touch no
// map and take no lock. Many connections may share a worker name: the series
// are deleted when the last one leaves. A nil *Workers hands out nil
// handles, whose methods do nothing, so callers need no "enabled" checks.
type Workers struct {
	shares     *prometheus.CounterVec
	difficulty *prometheus.CounterVec
	lastShare  *prometheus.GaugeVec
	limit      int

	mu      sync.Mutex
	workers map[string]*Worker
}

// Worker is the handle of one worker's series. Its methods are safe for
// concurrent use and do nothing on a nil *Worker.
type Worker struct {
	name       string
	refs       int // guarded by Workers.mu
	accepted   prometheus.Counter
	rejected   prometheus.Counter
	difficulty prometheus.Counter
	lastShare  prometheus.Gauge
}

// NewWorkers creates the per-worker collectors and registers them with reg
// (nil: not registered). limit caps the distinct workers with series of
// their own (0: DefaultWorkerLimit); workers past it share the worker label
// OverflowWorker, so a miner cycling through names cannot grow the series
// without bound.
func NewWorkers(reg prometheus.Registerer, limit int) *Workers {
	if limit <= 0 {
		limit = DefaultWorkerLimit
	}
	w := &Workers{
		shares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_worker_shares_total",
			Help: "Shares sent by a worker, by result (accepted, rejected).",
		}, []string{"worker", "result"}),
		difficulty: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_worker_difficulty_sum_total",
			Help: "Sum of the difficulty of a worker's accepted shares; rate() * 2^32 is its hashrate in H/s.",
		}, []string{"worker"}),
		lastShare: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_worker_last_share_timestamp_seconds",
			Help: "Unix time of a worker's last accepted share.",
		}, []string{"worker"}),
		limit:   limit,
		workers: make(map[string]*Worker),
	}
	if reg != nil {
		reg.MustRegister(w.shares, w.difficulty, w.lastShare)
	}
	return w
}

// Get returns the handle of worker's series, creating them if needed, and
// counts one more user of them. Every Get must be paired with a Forget.
// worker may be any bytes a miner sent: it is made valid UTF-8 and cut to
// MaxWorkerLabel bytes.
func (w *Workers) Get(worker string) *Worker {
	if w == nil {
		return nil
	}
	name := workerLabel(worker)
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.workers[name]
	if h == nil {
		if len(w.workers) >= w.limit && name != OverflowWorker {
			name = OverflowWorker
			h = w.workers[name]
		}
		if h == nil {
			h = &Worker{
				name:       name,
				accepted:   w.shares.WithLabelValues(name, ResultAccepted),
				rejected:   w.shares.WithLabelValues(name, ResultRejected),
				difficulty: w.difficulty.WithLabelValues(name),
				lastShare:  w.lastShare.WithLabelValues(name),
			}
			w.workers[name] = h
		}
	}
	h.refs++
	return h
}

// Forget gives back a handle taken by Get. When the last user of a worker's
// series is gone they are deleted, and the handle must not be used again.
// Forget(nil) does nothing.
func (w *Workers) Forget(h *Worker) {
	if w == nil || h == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.workers[h.name] != h {
		return // already forgotten
	}
	if h.refs--; h.refs > 0 {
		return
	}
	delete(w.workers, h.name)
	w.shares.DeleteLabelValues(h.name, ResultAccepted)
	w.shares.DeleteLabelValues(h.name, ResultRejected)
	w.difficulty.DeleteLabelValues(h.name)
	w.lastShare.DeleteLabelValues(h.name)
}

// Len returns the number of workers with series.
func (w *Workers) Len() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.workers)
}

// Name returns the worker label of h's series ("" for nil).
func (h *Worker) Name() string {
	if h == nil {
		return ""
	}
	return h.name
}

// Accepted counts an accepted share of the given difficulty, received at now.
func (h *Worker) Accepted(difficulty float64, now time.Time) {
	if h == nil {
		return
	}
	h.accepted.Inc()
	h.difficulty.Add(difficulty)
	h.lastShare.Set(float64(now.UnixNano()) / 1e9)
}

// Rejected counts a rejected share.
func (h *Worker) Rejected() {
	if h == nil {
		return
	}
	h.rejected.Inc()
}

// workerLabel makes a worker name a valid, bounded label value: label values
// must be UTF-8 (client_golang panics otherwise) and miners send any bytes.
func workerLabel(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) > MaxWorkerLabel {
		s = s[:MaxWorkerLabel]
		for !utf8.ValidString(s) { // do not cut a rune in half
			s = s[:len(s)-1]
		}
	}
	if s == "" {
		return "_empty"
	}
	return s
}
