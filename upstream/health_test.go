package upstream

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchyard/stratum"
)

func TestStateString(t *testing.T) {
	t.Parallel()
	want := []string{"connecting", "handshaking", "live", "suspect", "down"}
	for i, st := range States() {
		if st.String() != want[i] {
			t.Errorf("%d: %q, want %q", i, st, want[i])
		}
	}
	if got := State(0).String(); got != "state(0)" {
		t.Errorf("State(0) = %q", got)
	}
	if got := State(9).String(); got != "state(9)" {
		t.Errorf("State(9) = %q", got)
	}
}

func TestHealthTick(t *testing.T) {
	t.Parallel()
	tests := []struct {
		floor, submit, job, want time.Duration
	}{
		{3 * time.Second, 3 * time.Second, 120 * time.Second, 250 * time.Millisecond},
		{500 * time.Millisecond, 3 * time.Second, 120 * time.Second, 50 * time.Millisecond}, // the defaults
		{time.Second, time.Second, 120 * time.Second, 100 * time.Millisecond},
		{300 * time.Millisecond, 300 * time.Millisecond, 10 * time.Second, 30 * time.Millisecond},
		{3 * time.Second, 3 * time.Second, 400 * time.Millisecond, 40 * time.Millisecond},
		{time.Millisecond, time.Millisecond, time.Second, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := healthTick(tt.floor, tt.submit, tt.job); got != tt.want {
			t.Errorf("healthTick(%v, %v, %v) = %v, want %v", tt.floor, tt.submit, tt.job, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	const lo, hi = 100 * time.Millisecond, time.Second
	b := newBackoff(lo, hi)
	for round := range 3 {
		base := lo
		for i := range 8 {
			d := b.next()
			if d < base/2 || d > base {
				t.Fatalf("round %d attempt %d: %v, want in [%v, %v]", round, i, d, base/2, base)
			}
			base = min(base*2, hi)
		}
		b.reset()
	}
	if d := b.fail(); d < hi/2 || d > hi {
		t.Errorf("fail() = %v, want in [%v, %v]", d, hi/2, hi)
	}
	if d := b.next(); d < hi/2 {
		t.Errorf("after fail, next() = %v, want the cap", d)
	}
	// Jitter: not all delays equal.
	seen := map[time.Duration]bool{}
	for range 20 {
		b.reset()
		seen[b.next()] = true
	}
	if len(seen) < 2 {
		t.Error("no jitter")
	}
}

func TestRejectWindow(t *testing.T) {
	t.Parallel()
	// Against a naive model: the last size answers, over once full.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 2, 4, 7} {
		var w rejectWindow
		w.init(size)
		var hist []bool
		for step := range 200 {
			rej := rng.IntN(3) == 0
			w.add(rej)
			hist = append(hist, rej)
			last := hist[max(0, len(hist)-size):]
			n := 0
			for _, r := range last {
				if r {
					n++
				}
			}
			want := len(last) == size && float64(n)/float64(size) > 0.5
			if got := w.over(0.5); got != want || w.rejected != n {
				t.Fatalf("size %d step %d: over %v rejected %d, want %v %d", size, step, got, w.rejected, want, n)
			}
		}
	}
	var w rejectWindow
	w.init(2)
	w.add(true)
	w.add(true)
	if !w.over(0.5) {
		t.Fatal("2/2 not over 0.5")
	}
	w.reset()
	if w.n != 0 || w.rejected != 0 || w.over(0) {
		t.Errorf("after reset: %+v", w)
	}
	var off rejectWindow
	off.add(true)
	if off.over(0) {
		t.Error("disabled window reports over")
	}
}

// TestExactlyOneResult drives a session against a pool that answers at
// random — accepted, rejected, never, too late, twice, or by dropping the
// connection — while submits arrive concurrently, and checks every Submit
// that returned nil got exactly one Verdict and no other got any.
func TestExactlyOneResult(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	var rngMu sync.Mutex
	roll := func() int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(100)
	}

	fp := newFakePool(t)
	o := testOptions(t)
	o.SubmitTimeout = 150 * time.Millisecond
	o.BackoffMin, o.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	o.QueueLen = 64
	o.RejectWindow, o.MaxRejectRatio = 20, 0.9
	rec := newRecorder(t)
	s := NewSession(testPool(fp.url()), 0, o, rec)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); s.Run(ctx) }()

	// The pool: serves connection after connection until the test ends.
	poolDone := make(chan struct{})
	var conns atomic.Int32
	go func() {
		defer close(poolDone)
		for {
			var pc *poolConn
			select {
			case pc = <-fp.conns:
			case <-ctx.Done():
				return
			}
			conns.Add(1)
			servePoolRandomly(ctx, pc, roll, 2*o.SubmitTimeout)
		}
	}()

	// Submitters: several goroutines, as gnet loops would be.
	var accepted sync.Map
	var nAccepted, nRefused atomic.Int64
	var wg sync.WaitGroup
	var ticket atomic.Uint64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				sub := testSubmit(ticket.Add(1))
				if err := s.Submit(sub); err == nil {
					accepted.Store(sub.Ticket, true)
					nAccepted.Add(1)
				} else {
					nRefused.Add(1)
				}
				time.Sleep(time.Duration(roll()/10) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * o.SubmitTimeout) // let answers and timeouts land for most
	cancel()                        // and Run resolves the rest
	<-runDone
	<-poolDone

	rec.mu.Lock()
	defer rec.mu.Unlock()
	reasons := map[string]int{}
	for {
		select {
		case r := <-rec.results:
			reasons[r.Reason.String()]++
			continue
		default:
		}
		break
	}
	bad := 0
	accepted.Range(func(k, _ any) bool {
		if n := rec.perTick[k.(uint64)]; n != 1 {
			bad++
			if bad < 10 {
				t.Errorf("ticket %d: %d results", k, n)
			}
		}
		return true
	})
	for tk, n := range rec.perTick {
		if _, ok := accepted.Load(tk); !ok {
			t.Errorf("ticket %d: %d results for a refused Submit", tk, n)
		}
	}
	t.Logf("connections %d, submits accepted %d, refused %d, results %v", conns.Load(), nAccepted.Load(), nRefused.Load(), reasons)
	if nAccepted.Load() < 100 || conns.Load() < 2 || reasons[stratum.ReasonNone.String()] == 0 ||
		reasons[stratum.ReasonPoolRejected.String()] == 0 || reasons[stratum.ReasonSubmitTimeout.String()] == 0 ||
		reasons[stratum.ReasonUpstreamDown.String()] == 0 {
		t.Errorf("the random pool did not exercise every outcome")
	}
}

// servePoolRandomly plays the handshake, then answers each submit at
// random, until the connection ends. It drops the connection only once it
// is older than minLife, so that submit timeouts happen too.
func servePoolRandomly(ctx context.Context, pc *poolConn, roll func() int, minLife time.Duration) {
	defer pc.close()
	born := time.Now()
	next := func() (req, bool) {
		select {
		case r := <-pc.in:
			return r, true
		case <-pc.closed:
			return req{}, false
		case <-ctx.Done():
			return req{}, false
		}
	}
	for {
		r, ok := next()
		if !ok {
			return
		}
		switch r.Method {
		case stratum.MethodSubscribe:
			pc.reply(r, subscribeResult("f000000a", 8))
		case stratum.MethodAuthorize:
			pc.reply(r, "true")
			pc.send(setDifficulty("1024"), notifyLine("j1", true))
		case stratum.MethodSubmit:
			switch p := roll(); {
			case p < 55:
				pc.reply(r, "true")
			case p < 75:
				pc.replyErr(r, 23, "Low difficulty share")
			case p < 85: // never answered
			case p < 92: // answered after the timeout
				go func() {
					time.Sleep(200 * time.Millisecond)
					pc.reply(r, "true")
				}()
			case p < 98 || time.Since(born) < minLife: // answered twice
				pc.reply(r, "true")
				pc.reply(r, "false")
			default: // the pool drops the connection
				pc.reply(r, "true")
				return
			}
			if roll() < 5 {
				pc.send(notifyLine(fmt.Sprintf("j%d", roll()), false))
			}
		}
	}
}
