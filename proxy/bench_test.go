package proxy

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"switchyard/metrics"
	"switchyard/stratum"
	"switchyard/upstream"
)

// benchMiner builds a subscribed, authorized miner on a lane with one job
// of realistic shape (~250-byte coinbase, 12-level branch), outside gnet.
func benchMiner(tb testing.TB, poolDiff float64) (*miner, *laneJob) {
	tb.Helper()
	s := New(Options{Log: zerolog.Nop(), Metrics: metrics.New(prometheus.NewRegistry()), Vardiff: Vardiff{Initial: 1e-12, Min: 1e-12}, MinerExtranonce2Size: 6}, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	n := &stratum.Notify{JobID: "pj1", Version: 0x20000000, NBits: 0x17034219, NTime: uint32(time.Now().Unix())}
	n.Coinb1 = make([]byte, 100)
	n.Coinb2 = make([]byte, 138)
	for i := range n.Coinb1 {
		n.Coinb1[i] = byte(rng.Uint32())
	}
	for i := range n.Coinb2 {
		n.Coinb2[i] = byte(rng.Uint32())
	}
	n.Branch = make([][32]byte, 12)
	for i := range n.Branch {
		for j := range n.Branch[i] {
			n.Branch[i][j] = byte(rng.Uint32())
		}
	}
	if err := n.Validate(); err != nil {
		tb.Fatal(err)
	}
	up := &upstream.Job{Notify: n, Difficulty: poolDiff, Extranonce1: []byte{1, 2, 3, 4}, Extranonce2Size: 8,
		VersionMask: 0x1fffe000, Received: time.Now()}
	sess := upstream.NewSession(upstream.Pool{Name: "bench", URL: "stratum+tcp://127.0.0.1:1", User: "u"}, 0, upstream.Options{Log: zerolog.Nop()}, nopHandler{})
	l := s.lane(0)
	lj, err := l.buildJob(sess, up, true, 1, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f := l.feed(s.routeList()[0], "bench")
	f.serving.Store(true)
	f.publish(lj)
	p, _ := l.allocPrefix()
	m := &miner{srv: s, scratch: &scratch{}, lane: l, route: s.routeList()[0], routed: true, feed: f, prefix: p, en1: prefixBytes(nil, p, 2), en2Size: 6, subscribed: true, authorized: true,
		rollingOK: true, minerMask: 0x1fffe000, mask: 0x1fffe000, vdiff: 1e-12, diff: 1e-12, workers: []worker{{name: "rig.1"}}}
	m.remember(lj, m.diff)
	return m, lj
}

type nopHandler struct{}

func (nopHandler) SessionState(*upstream.Session, upstream.State, upstream.Why) {}
func (nopHandler) SessionJob(*upstream.Session, *upstream.Job)                  {}
func (nopHandler) SessionVerdict(*upstream.Session, *upstream.Verdict)          {}

// BenchmarkSubmitPath measures one mining.submit through the miner side:
// decode, job lookup, full share validation, duplicate check and the
// answer. The pool difficulty is out of reach, so nothing is forwarded.
func BenchmarkSubmitPath(b *testing.B) {
	m, lj := benchMiner(b, 1e15)
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"id":%d,"method":"mining.submit","params":["rig.1","%s","%012x","%08x","%08x","00002000"]}`,
			i, lj.idHex, i, lj.poolJob.Notify.NTime, i*7919)
	}
	out := make([]byte, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(lines) == 0 {
			m.dedup.Reset()
		}
		out = m.handle(out[:0], lines[i%len(lines)])
	}
	if m.accepted+m.rejected == 0 {
		b.Fatal("no share handled")
	}
}

// TestSubmitPathAllocs pins the zero-allocation share path.
func TestSubmitPathAllocs(t *testing.T) {
	m, lj := benchMiner(t, 1e15)
	line := fmt.Appendf(nil, `{"id":1,"method":"mining.submit","params":["rig.1","%s","000000000001","%08x","00000001","00002000"]}`,
		lj.idHex, lj.poolJob.Notify.NTime)
	out := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(200, func() {
		m.dedup.Reset()
		out = m.handle(out[:0], line)
	})
	if m.accepted == 0 {
		t.Fatalf("share not accepted: %s", out)
	}
	if allocs != 0 {
		t.Fatalf("share path allocates %.1f times per submit", allocs)
	}
}

// TestMinerRecordSize: the per-connection records stay in their allocation
// size classes (a miner 896 B, a worker's reconnect record 80 B): at
// 100,000 miners each step of a class is megabytes of RSS. A field that
// must grow them should say so in BENCHMARKS.md's idle measurements.
func TestMinerRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(miner{}); n > 896 {
		t.Errorf("miner record %d B, over the 896-B size class", n)
	}
	if n := unsafe.Sizeof(reconnects{}); n > 80 {
		t.Errorf("reconnect record %d B, over the 80-B size class", n)
	}
}
