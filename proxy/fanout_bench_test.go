package proxy

import (
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// sinkConn is a gnet.Conn that counts what is written to it and holds no
// backlog; any other method panics (the fan-out must not need them).
type sinkConn struct {
	gnet.Conn
	bytes int
}

func (c *sinkConn) Write(b []byte) (int, error) { c.bytes += len(b); return len(b), nil }
func (c *sinkConn) OutboundBuffered() int       { return 0 }
func (c *sinkConn) Close() error                { return nil }

// fanoutLoop puts n mining miners on a feed of a loop, writing to sink.
func fanoutLoop(tb testing.TB, n int) (*loop, *feed, *laneJob, *sinkConn) {
	tb.Helper()
	m0, lj := benchMiner(tb, 1e15)
	lp := &loop{miners: map[*miner]struct{}{}, out: make([]byte, 0, 4096)}
	sink := &sinkConn{}
	for range n {
		p, ok := m0.lane.allocPrefix()
		if !ok {
			tb.Fatal("lane full")
		}
		m := &miner{srv: m0.srv, c: sink, loop: lp, lane: m0.lane, route: m0.route, routed: true, feed: m0.feed, prefix: p, en1: prefixBytes(nil, p, 2), en2Size: 6,
			subscribed: true, authorized: true, vdiff: 1e-12, diff: 1e-12}
		lp.miners[m] = struct{}{}
	}
	return lp, m0.feed, lj, sink
}

// BenchmarkFanout measures one job written to 1,000 miners of an event
// loop: the work on the loop besides the write system calls themselves.
// ns/miner is the per-miner cost.
func BenchmarkFanout(b *testing.B) {
	const miners = 1000
	lp, l, lj, sink := fanoutLoop(b, miners)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if lp.fanOut(l, lj) != miners {
			b.Fatal("not every miner reached")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/miners, "ns/miner")
	b.SetBytes(int64(sink.bytes / b.N))
}

// TestFanoutAllocs pins the allocation-free fan-out: the notify line is
// encoded once per job, never per miner.
func TestFanoutAllocs(t *testing.T) {
	lp, l, lj, _ := fanoutLoop(t, 100)
	allocs := testing.AllocsPerRun(50, func() { lp.fanOut(l, lj) })
	if allocs != 0 {
		t.Fatalf("fan-out to 100 miners allocates %.1f times", allocs)
	}
}
