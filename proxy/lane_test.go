package proxy

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"switchyard/stratum"
	"switchyard/upstream"
)

func testSession(name string) *upstream.Session {
	return upstream.NewSession(upstream.Pool{Name: name, URL: "stratum+tcp://127.0.0.1:1", User: "u"}, 0, upstream.Options{Log: zerolog.Nop()}, nopHandler{})
}

func testPoolJob(t *testing.T, id string, en2 int, diff float64) *upstream.Job {
	t.Helper()
	n := &stratum.Notify{JobID: id, Coinb1: []byte{1, 2, 3}, Coinb2: []byte{4, 5}, Version: 0x20000000, NBits: 0x17034219, NTime: 1700000000, Clean: true}
	return &upstream.Job{Notify: n, Difficulty: diff, Extranonce1: []byte{0xa, 0xb, 0xc, 0xd}, Extranonce2Size: en2, VersionMask: 0x1fffe000, Received: time.Now()}
}

// TestLanePrefixes: prefixes are unique while in use; one that carried
// shares is quarantined until a job makes older ones stale (a new miner
// with it would repeat the old one's work); one that never did is free at
// once; a full lane says so.
func TestLanePrefixes(t *testing.T) {
	var seq atomic.Uint64
	l := newLane(0, 1, 2, &seq) // 256 prefixes
	seen := map[uint32]bool{}
	for i := 0; i < 256; i++ {
		p, ok := l.allocPrefix()
		if !ok || seen[p] {
			t.Fatalf("prefix %d: %d ok=%v (seen %v)", i, p, ok, seen[p])
		}
		seen[p] = true
	}
	if _, ok := l.allocPrefix(); ok {
		t.Fatal("a full lane gave out a 257th prefix")
	}
	l.releasePrefix(7, false)
	if p, ok := l.allocPrefix(); !ok || p != 7 {
		t.Fatalf("an idle prefix was not free at once: %d %v", p, ok)
	}
	s := testSession("p")
	f := l.feed(&route{}, "p")
	f.serving.Store(true)
	l.releasePrefix(9, true)
	if _, ok := l.allocPrefix(); ok {
		t.Fatal("a prefix that carried shares was reused before a clean job")
	}
	lj, err := l.buildJob(s, testPoolJob(t, "a", 4, 1), false, f.gen.Load(), 0)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(lj) // does not make older jobs stale: still quarantined
	if _, ok := l.allocPrefix(); ok {
		t.Fatal("a prefix was freed by a job that kept older ones valid")
	}
	lj, _ = l.buildJob(s, testPoolJob(t, "b", 4, 1), true, f.gen.Load()+1, 0)
	lj.stales = true
	f.publish(lj)
	if p, ok := l.allocPrefix(); !ok || p != 9 {
		t.Fatalf("the quarantined prefix was not freed by a job that made older ones stale: %d %v", p, ok)
	}
}

// TestLaneJobLayout: the miner's coinb1 is the pool's coinb1, the
// session's extranonce1 and the zero pad, so that the pool's extranonce2
// is pad ‖ prefix ‖ the miner's; a pool without room is refused.
func TestLaneJobLayout(t *testing.T) {
	var seq atomic.Uint64
	l := newLane(0, 2, 2, &seq)
	s := testSession("p")
	lj, err := l.buildJob(s, testPoolJob(t, "a", 8, 0.5), true, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lj.pad != 4 || lj.diff != 0.5 || lj.idHex != "1" {
		t.Fatalf("pad %d diff %g id %s", lj.pad, lj.diff, lj.idHex)
	}
	var n stratum.Notify
	var m stratum.Message
	if err := m.Decode(lj.line[:len(lj.line)-1]); err != nil {
		t.Fatal(err)
	}
	if err := n.Decode(m.Params); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 3, 0xa, 0xb, 0xc, 0xd, 0, 0, 0, 0}
	if string(n.Coinb1) != string(want) || n.JobID != "1" || !n.Clean {
		t.Fatalf("notify coinb1 %x id %s clean %v, want %x 1 true", n.Coinb1, n.JobID, n.Clean, want)
	}
	if _, err := l.buildJob(s, testPoolJob(t, "b", 3, 1), true, 1, 0); err == nil {
		t.Fatal("a pool extranonce2 of 3 bytes was taken for prefix 2 + miner 2")
	}
	if rolled, _ := l.buildJob(s, testPoolJob(t, "a", 8, 0.5), true, 1, 2); rolled.job.NTime != 1700000002 {
		t.Fatalf("rolled ntime %d, want 1700000002", rolled.job.NTime)
	}
}

// TestLaneStale: a job of an older generation of its feed is stale, and
// called pool_switched once its pool stopped serving; a job of another
// pool's feed stays valid while both serve (a split).
func TestLaneStale(t *testing.T) {
	var seq atomic.Uint64
	l := newLane(0, 2, 2, &seq)
	r := &route{}
	fa, fb := l.feed(r, "a"), l.feed(r, "b")
	fa.serving.Store(true)
	fb.serving.Store(true)
	a, b := testSession("a"), testSession("b")
	j1, _ := l.buildJob(a, testPoolJob(t, "1", 8, 1), true, 1, 0)
	j1.stales = true
	fa.publish(j1)
	j2, _ := l.buildJob(a, testPoolJob(t, "2", 8, 1), false, 1, 0)
	fa.publish(j2)
	if r := fa.stale(j1, fa); r != stratum.ReasonNone {
		t.Fatalf("job of the current generation: %v", r)
	}
	j3, _ := l.buildJob(a, testPoolJob(t, "3", 8, 1), true, 2, 0)
	j3.stales = true
	fa.publish(j3)
	if r := fa.stale(j1, fa); r != stratum.ReasonStale {
		t.Fatalf("job of an older generation: %v, want stale", r)
	}
	j4, _ := l.buildJob(b, testPoolJob(t, "x", 8, 1), true, 1, 0)
	j4.stales = true
	fb.publish(j4)
	if r := fa.stale(j3, fa); r != stratum.ReasonNone {
		t.Fatalf("job of a pool still serving beside another: %v", r)
	}
	fa.serving.Store(false)
	if r := fa.stale(j3, fa); r != stratum.ReasonNone {
		t.Fatalf("job of a pool that left, from a miner with no other work yet: %v, want none", r)
	}
	if r := fa.stale(j3, fb); r != stratum.ReasonPoolSwitched {
		t.Fatalf("job of the pool a miner left for another: %v, want pool_switched", r)
	}
	if fa == l.feed(r, "a") == false || l.feed(&route{}, "a") == fa {
		t.Fatal("feeds are one per route and pool")
	}
}

func TestSameWork(t *testing.T) {
	a := testPoolJob(t, "a", 8, 1).Notify
	b := *a
	b.Coinb2 = append([]byte(nil), a.Coinb2...)
	b.Clean = !a.Clean // clean_jobs is not work
	if !sameWork(a, &b) {
		t.Fatal("same job, clean flag aside, not the same work")
	}
	for name, change := range map[string]func(n *stratum.Notify){
		"id":     func(n *stratum.Notify) { n.JobID = "z" },
		"ntime":  func(n *stratum.Notify) { n.NTime++ },
		"coinb2": func(n *stratum.Notify) { n.Coinb2 = []byte{9} },
		"prev":   func(n *stratum.Notify) { n.PrevHash[3] = 1 },
		"branch": func(n *stratum.Notify) { n.Branch = [][32]byte{{1}} },
	} {
		c := *a
		change(&c)
		if sameWork(a, &c) {
			t.Errorf("a different %s is the same work", name)
		}
	}
}
