package upstream

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"switchyard/internal/testkit"
	"switchyard/metrics"
	"switchyard/stratum"
)

// fakeSink records what a Manager tells the miner side.
type fakeSink struct {
	mu        sync.Mutex
	published map[string]int // pool name → jobs published
	served    [][]Share      // every Serve, in order
}

func (f *fakeSink) Serve(shares []Share) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served = append(f.served, shares)
}

// lastServe returns the latest Serve.
func (f *fakeSink) lastServe() []Share {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.served) == 0 {
		return nil
	}
	return f.served[len(f.served)-1]
}

func (f *fakeSink) Publish(lane int, s *Session, j *Job, switched bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.published == nil {
		f.published = map[string]int{}
	}
	f.published[s.Pool().Name]++
}
func (f *fakeSink) Verdict(*Session, *Verdict)                             {}
func (f *fakeSink) AllDown()                                               {}
func (f *fakeSink) TimeSwitch(int, string, time.Time, func(time.Duration)) {}

// runManager runs a Manager over pools until the test ends.
func runManager(t *testing.T, pools []Pool, o ManagerOptions) (*Manager, *fakeSink) {
	t.Helper()
	sink := &fakeSink{}
	m := NewManager(pools, o, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("Manager.Run did not return")
		}
	})
	return m, sink
}

// eventually polls cond until it holds, for at most waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, waitFor, what, cond)
}

// serveEvery plays h on every connection to fp until the test ends.
func serveEvery(fp *fakePool, h func(pc *poolConn)) {
	go func() {
		for {
			select {
			case pc := <-fp.conns:
				go h(pc)
			case <-time.After(waitFor):
				return
			}
		}
	}()
}

func statusOf(m *Manager, name string) PoolStatus {
	for _, ps := range m.Status() {
		if ps.Name == name {
			return ps
		}
	}
	return PoolStatus{}
}

func managerOptions(t *testing.T, met *metrics.Metrics) ManagerOptions {
	o := testOptions(t)
	o.MinExtranonce2Size = 4
	// A start grace (DialTimeout + 2×SubmitTimeout) far longer than any
	// wait in these tests: what happens within it is not the grace ending.
	o.DialTimeout = 30 * time.Second
	return ManagerOptions{Session: o, FailbackAfter: time.Minute, Metrics: met,
		Log: zerolog.New(zerolog.NewTestWriter(t)), Tick: 10 * time.Millisecond}
}

// TestStartupSkipsRefusedPool: a better-ranked pool that refused us for
// good (credentials, extranonce2 too small) is not waited for at startup:
// the next pool is taken at once, and Status and
// switchyard_pool_state_reason say why the first is not live. A better
// pool that is merely slow is still waited for.
func TestStartupSkipsRefusedPool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pool   func(pc *poolConn) // how the better-ranked pool answers
		reason string             // its reason; "" it is only slow
	}{
		{"unauthorized", func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 8))
			pc.replyErr(pc.expect(stratum.MethodAuthorize), stratum.CodeUnauthorized, "Unauthorized worker")
		}, CauseUnauthorized.String()},
		{"extranonce2 too small", func(pc *poolConn) {
			pc.reply(pc.expect(stratum.MethodSubscribe), subscribeResult("f000000a", 2))
		}, CauseExtranonce2TooSmall.String()},
		{"slow", func(pc *poolConn) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, second := newFakePool(t), newFakePool(t)
			serveEvery(first, tt.pool)
			met := metrics.New(nil).ForRoute(metrics.DefaultRoute)
			m, sink := runManager(t, []Pool{
				{Name: "first", URL: first.url(), User: "acct.farm1", Password: "x"},
				{Name: "second", URL: second.url(), User: "acct.farm1", Password: "x"},
			}, managerOptions(t, met))
			pc := second.accept()
			pc.handshake(hs{})

			if tt.reason == "" {
				eventually(t, "second pool live", func() bool { return statusOf(m, "second").State == "live" })
				time.Sleep(100 * time.Millisecond) // ten ticks of decide
				if a := m.Active(); a != "" {
					t.Fatalf("active %q within the start grace while the first pool may still come", a)
				}
				return
			}
			eventually(t, "second pool active", func() bool { return m.Active() == "second" })
			ps := statusOf(m, "first")
			if ps.Reason != tt.reason || ps.State == "live" {
				t.Errorf("first pool: state %s reason %q, want reason %q", ps.State, ps.Reason, tt.reason)
			}
			if v := testutil.ToFloat64(met.PoolStateReason.WithLabelValues("first", tt.reason)); v != 1 {
				t.Errorf("switchyard_pool_state_reason{pool=first,reason=%s} = %v, want 1", tt.reason, v)
			}
			if n := testutil.CollectAndCount(met.PoolStateReason); n != 1 {
				t.Errorf("%d state reason series, want 1 (the live pool has none)", n)
			}
			if !m.Settled() {
				t.Error("not settled with one pool refused and the other live")
			}
			eventually(t, "jobs published from the second pool", func() bool {
				sink.mu.Lock()
				defer sink.mu.Unlock()
				return sink.published["second"] > 0 && sink.published["first"] == 0
			})
		})
	}
}

// TestReconnectsCounted: switchyard_pool_reconnects_total counts a
// session's connections after its first one was established, not that
// first connection and not dials that fail.
func TestReconnectsCounted(t *testing.T) {
	t.Parallel()
	good := newFakePool(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dark := "stratum+tcp://" + ln.Addr().String()
	ln.Close() // nothing listens: every dial is refused
	met := metrics.New(nil).ForRoute(metrics.DefaultRoute)
	o := managerOptions(t, met)
	o.Standby = 1 // keep dialing the dark pool after the good one is active
	m, _ := runManager(t, []Pool{
		{Name: "good", URL: good.url(), User: "acct.farm1", Password: "x"},
		{Name: "dark", URL: dark, User: "acct.farm1", Password: "x"},
	}, o)
	reconnects := func(pool string) float64 {
		return testutil.ToFloat64(met.PoolReconnects.WithLabelValues(pool))
	}

	pc := good.accept()
	pc.handshake(hs{})
	eventually(t, "good pool active", func() bool { return m.Active() == "good" })
	if n := reconnects("good"); n != 0 {
		t.Errorf("reconnects after the first connection = %v, want 0", n)
	}
	pc.close()
	pc = good.accept()
	pc.handshake(hs{jobID: "j2"})
	eventually(t, "good pool live again", func() bool { return statusOf(m, "good").State == "live" })
	if n := reconnects("good"); n != 1 {
		t.Errorf("reconnects after one reconnection = %v, want 1", n)
	}

	// The dark pool has been refused a dial every BackoffMax or sooner
	// since the start: several failures, no reconnect.
	eventually(t, "dark pool failing its dials", func() bool {
		return statusOf(m, "dark").Reason == "dial" && statusOf(m, "dark").Detail != ""
	})
	time.Sleep(3 * o.Session.BackoffMax)
	if n := reconnects("dark"); n != 0 {
		t.Errorf("reconnects of a pool never connected = %v, want 0", n)
	}
	if v := testutil.ToFloat64(met.PoolStateReason.WithLabelValues("dark", "dial")); v != 1 {
		t.Errorf("switchyard_pool_state_reason{pool=dark,reason=dial} = %v, want 1", v)
	}
}

func TestReasonLabel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		CauseUnauthorized.String():        "unauthorized",
		CauseExtranonce2TooSmall.String(): "extranonce2_too_small",
		CauseHandshakeTimeout.String():    "handshake_timeout",
		CauseRead.String():                "read_error",
		CauseReconnect.String():           "reconnect",
		"failback":                        "failback",
		"suspect":                         "suspect",
		"dial: connection refused":        "error", // a label never carries a detail
		"anything else":                   "error",
	} {
		if got := reasonLabel(in); got != want {
			t.Errorf("reasonLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
