package upstream

import (
	"slices"
	"testing"
	"time"

	"switchyard/metrics"
)

// TestSplitServing: the weighted pools of the tier being mined serve
// together (Sink.Serve names both, weights as configured) and each gets its
// jobs published; one that goes dark leaves the set at once, with the
// other alone at weight 1, and the backup stays out; it comes back only
// once it has been live for failback_after; unweighted pools are never
// split.
func TestSplitServing(t *testing.T) {
	t.Parallel()
	a, b, c := newFakePool(t), newFakePool(t), newFakePool(t)
	conns := make(chan *poolConn, 8)
	for _, fp := range []*fakePool{a, b, c} {
		serveEvery(fp, func(pc *poolConn) { pc.handshake(hs{}); conns <- pc })
	}
	o := managerOptions(t, metrics.New(nil).ForRoute(metrics.DefaultRoute))
	o.FailbackAfter = 500 * time.Millisecond
	o.Standby = 0
	m, sink := runManager(t, []Pool{
		{Name: "a", URL: a.url(), User: "acct.farm", Password: "x", Tier: 0, Weight: 70},
		{Name: "b", URL: b.url(), User: "acct.farm", Password: "x", Tier: 0, Weight: 30},
		{Name: "c", URL: c.url(), User: "acct.farm", Password: "x", Tier: 1},
	}, o)
	split := []Share{{Pool: "a", Weight: 70}, {Pool: "b", Weight: 30}}
	eventually(t, "a and b splitting 70/30", func() bool { return slices.Equal(sink.lastServe(), split) })
	eventually(t, "jobs of both published", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.published["a"] > 0 && sink.published["b"] > 0 && sink.published["c"] == 0
	})

	var pb *poolConn
	for pc := range conns {
		if pc.c.LocalAddr().String() == b.ln.Addr().String() {
			pb = pc
			break
		}
	}
	b.ln.Close() // b stays dark: no reconnect
	pb.close()
	eventually(t, "a alone once b is dark", func() bool { return slices.Equal(sink.lastServe(), []Share{{Pool: "a", Weight: 1}}) })
	if got := m.Serving(); !slices.Equal(got, []Share{{Pool: "a", Weight: 1}}) {
		t.Fatalf("Serving() = %v", got)
	}
	sink.mu.Lock()
	pc := sink.published["c"]
	sink.mu.Unlock()
	if pc != 0 {
		t.Fatalf("the backup got %d jobs while a was live", pc)
	}
}

// TestSplitRejoinsAfterHold: a weighted pool that went dark and is live
// again rejoins the split only after failback_after.
func TestSplitRejoinsAfterHold(t *testing.T) {
	t.Parallel()
	a, b := newFakePool(t), newFakePool(t)
	serveEvery(a, func(pc *poolConn) { pc.handshake(hs{}) })
	bconns := make(chan *poolConn, 8)
	serveEvery(b, func(pc *poolConn) { pc.handshake(hs{}); bconns <- pc })
	o := managerOptions(t, metrics.New(nil).ForRoute(metrics.DefaultRoute))
	o.FailbackAfter = time.Second
	o.Session.BackoffMin, o.Session.BackoffMax = 50*time.Millisecond, 50*time.Millisecond
	_, sink := runManager(t, []Pool{
		{Name: "a", URL: a.url(), User: "acct.farm", Password: "x", Weight: 1},
		{Name: "b", URL: b.url(), User: "acct.farm", Password: "x", Weight: 1},
	}, o)
	both := []Share{{Pool: "a", Weight: 1}, {Pool: "b", Weight: 1}}
	eventually(t, "a and b splitting", func() bool { return slices.Equal(sink.lastServe(), both) })
	(<-bconns).close() // b reconnects at once (backoff 50ms) and is live again
	eventually(t, "a alone", func() bool { return slices.Equal(sink.lastServe(), []Share{{Pool: "a", Weight: 1}}) })
	left := time.Now()
	eventually(t, "b back in the split", func() bool { return slices.Equal(sink.lastServe(), both) })
	if d := time.Since(left); d < 900*time.Millisecond {
		t.Errorf("b rejoined %v after it went dark, before failback_after (1s)", d)
	}
}
