package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/stratum"
	"switchyard/upstream"
)

// A lane is one extranonce space. Each miner of a lane owns a prefix p of
// P bytes as its extranonce1; on every pool, lane k is served by that pool's
// k-th upstream session, whose extranonce1 E is folded into the coinbase
// sent to miners. Moving a miner to another pool is therefore just a new
// job: one from another feed of the lane (see feed), each pool's own.
//
// A feed keeps only its current job; each miner keeps the jobs it was sent
// (see miner.sent), so how many lanes are open never shortens any miner's
// job history.
type lane struct {
	idx     int
	prefixN int // P, bytes
	en2N    int // M, bytes: every miner's extranonce2 size

	mu       sync.Mutex
	next     uint64   // next never-used prefix
	free     []uint32 // prefixes released and out of quarantine
	cooling  []cooling
	capacity uint64
	inUse    int

	seq   *atomic.Uint64 // global job id counter (shared by all lanes)
	feeds atomic.Pointer[[]*feed]
}

// cooling is a released prefix in quarantine: until every feed that was
// serving when it was released has sent a clean job, a new miner given it
// could repeat the old miner's work on the same job, and the pool would
// see duplicates.
type cooling struct {
	prefix uint32
	feeds  []feedGen
}

type feedGen struct {
	f   *feed
	gen uint64
}

// feed returns the lane's feed of pool for route r, creating it on first
// use.
func (l *lane) feed(r *route, pool string) *feed {
	if fs := l.feeds.Load(); fs != nil {
		for _, f := range *fs {
			if f.route == r && f.pool == pool {
				return f
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var fs []*feed
	if p := l.feeds.Load(); p != nil {
		fs = *p
	}
	for _, f := range fs {
		if f.route == r && f.pool == pool {
			return f
		}
	}
	f := &feed{route: r, pool: pool, lane: l}
	if r != nil {
		f.serving.Store(r.set.Load().weight(pool) > 0) // a lane opened after the route's Serve
	}
	next := append(slices.Clone(fs), f)
	l.feeds.Store(&next)
	return f
}

// routeFeeds returns the lane's feeds of route r.
func (l *lane) routeFeeds(r *route) []*feed {
	p := l.feeds.Load()
	if p == nil {
		return nil
	}
	var out []*feed
	for _, f := range *p {
		if f.route == r {
			out = append(out, f)
		}
	}
	return out
}

// anyJob returns a current job of the lane, from a serving feed when there
// is one (for status and handover checks).
func (l *lane) anyJob() *laneJob {
	p := l.feeds.Load()
	if p == nil {
		return nil
	}
	var some *laneJob
	for _, f := range *p {
		if lj := f.cur.Load(); lj != nil {
			if f.serving.Load() {
				return lj
			}
			some = lj
		}
	}
	return some
}

func newLane(idx, prefixN, en2N int, seq *atomic.Uint64) *lane {
	return &lane{idx: idx, prefixN: prefixN, en2N: en2N, capacity: 1 << (8 * prefixN), seq: seq}
}

// allocPrefix returns a free prefix, or false when the lane is full.
// Released prefixes are quarantined until the next clean job: a new miner
// with the same prefix on the same job would repeat the old miner's work
// and the pool would see duplicates.
func (l *lane) allocPrefix() (uint32, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		p := l.free[n-1]
		l.free = l.free[:n-1]
		l.inUse++
		return p, true
	}
	if l.next < l.capacity {
		p := uint32(l.next)
		l.next++
		l.inUse++
		return p, true
	}
	return 0, false
}

// releasePrefix gives p back. A prefix that carried shares (worked) is
// quarantined until the next clean job; one that never did is free at once,
// so that connections that subscribe and leave without mining (scanners,
// connect floods) cannot use up the lane and make switchyard open more
// upstream sessions.
func (l *lane) releasePrefix(p uint32, worked bool) {
	var snap []feedGen
	if worked {
		if fs := l.feeds.Load(); fs != nil {
			for _, f := range *fs {
				if f.serving.Load() {
					snap = append(snap, feedGen{f, f.gen.Load()})
				}
			}
		}
	}
	l.mu.Lock()
	if len(snap) > 0 {
		l.cooling = append(l.cooling, cooling{prefix: p, feeds: snap})
	} else {
		l.free = append(l.free, p)
	}
	l.inUse--
	l.mu.Unlock()
}

// thaw frees the quarantined prefixes whose feeds have all sent a clean
// job since, or stopped serving.
func (l *lane) thaw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := l.cooling[:0]
	for _, c := range l.cooling {
		cold := true
		for _, fg := range c.feeds {
			if fg.f.serving.Load() && fg.f.gen.Load() <= fg.gen {
				cold = false
				break
			}
		}
		if cold {
			l.free = append(l.free, c.prefix)
		} else {
			keep = append(keep, c)
		}
	}
	clear(l.cooling[len(keep):])
	l.cooling = keep
}

// laneJob is one job as a lane's miners see it: the pool job with the
// session's extranonce1 and the padding folded into coinb1, under a
// switchyard job id. Immutable once published, but for unsent.
type laneJob struct {
	id       uint64
	idHex    string
	gen      uint64 // the feed's generation it belongs to
	feed     *feed
	sess     *upstream.Session
	pool     string
	poolJob  *upstream.Job  // the pool's job it was built from
	clean    bool           // sent with clean_jobs=true: miners drop the work they have
	stales   bool           // it made every older job stale: a new generation
	roll     uint32         // seconds added to the pool's ntime (see buildJob)
	unsent   atomic.Int32   // event loops that have not written it yet
	received time.Time      // when the pool's notify arrived (for switch timing)
	diff     float64        // the pool's difficulty for it: the most a miner may be given
	target   stratum.Target // the pool's share target: shares meeting it are forwarded

	// The pool's extranonce2 is pad ‖ prefix ‖ miner's extranonce2; the
	// pad (zeros) is appended to coinb1 so every miner of the lane gets the
	// very same notify line.
	job  *stratum.Job
	line []byte // the encoded mining.notify, shared by every miner
	alt  []byte // the same with clean_jobs the other way (see miner.sendJob)
	pad  int
}

// fits reports whether a pool extranonce2 of size s leaves room for the
// prefix and every miner's extranonce2.
func (l *lane) fits(s int) bool { return s >= l.prefixN+l.en2N }

// buildJob turns a pool job into a lane job with a fresh id.
//
// roll is added to the job's ntime: the same pool work re-issued under a
// new id (its difficulty changed) must differ for miners, or a firmware
// that restarts its extranonce2 on every notify (ESP-Miner) would hash
// what it already did. Pools accept an ntime ahead of the job's (ckpool
// by up to 7000 s).
func (l *lane) buildJob(sess *upstream.Session, up *upstream.Job, clean bool, gen uint64, roll uint32) (*laneJob, error) {
	if !l.fits(up.Extranonce2Size) {
		return nil, errTooSmall
	}
	id := l.seq.Add(1)
	lj := &laneJob{
		id:       id,
		idHex:    strconv.FormatUint(id, 16),
		gen:      gen,
		sess:     sess,
		pool:     sess.Pool().Name,
		poolJob:  up,
		clean:    clean,
		received: up.Received,
		diff:     up.Difficulty,
		target:   stratum.DifficultyTarget(up.Difficulty),
		pad:      up.Extranonce2Size - l.prefixN - l.en2N,
		roll:     roll,
	}
	n := *up.Notify
	n.JobID = lj.idHex
	n.Clean = clean
	n.NTime += roll
	n.Coinb1 = make([]byte, 0, len(up.Notify.Coinb1)+len(up.Extranonce1)+lj.pad)
	n.Coinb1 = append(n.Coinb1, up.Notify.Coinb1...)
	n.Coinb1 = append(n.Coinb1, up.Extranonce1...)
	n.Coinb1 = append(n.Coinb1, make([]byte, lj.pad)...)
	job, err := stratum.NewJob(&n)
	if err != nil {
		return nil, err
	}
	lj.job, lj.line = job, n.AppendJSON(nil)
	n.Clean = !clean
	lj.alt = n.AppendJSON(nil)
	return lj, nil
}

// errTooSmall refuses a pool job whose extranonce2 cannot hold the prefix
// and the miners' extranonce2. Sessions refuse such pools at subscribe
// (upstream.Options.MinExtranonce2Size); this is the last guard.
var errTooSmall = errors.New("proxy: pool extranonce2 too small for prefix and miner extranonce2")

// sameWork reports whether two notifies describe the very same work: a
// pool that re-sends its current job (same id and content, clean_jobs
// true, as ckpool does) has not changed anything a miner hashes.
func sameWork(a, b *stratum.Notify) bool {
	if a.JobID != b.JobID || a.PrevHash != b.PrevHash || a.Version != b.Version || a.NBits != b.NBits ||
		a.NTime != b.NTime || !bytes.Equal(a.Coinb1, b.Coinb1) || !bytes.Equal(a.Coinb2, b.Coinb2) || len(a.Branch) != len(b.Branch) {
		return false
	}
	for i := range a.Branch {
		if a.Branch[i] != b.Branch[i] {
			return false
		}
	}
	return true
}

// publish makes lj the feed's current job; one that makes older jobs stale
// starts a new generation and may free quarantined prefixes.
func (f *feed) publish(lj *laneJob) {
	lj.feed = f
	if lj.stales {
		f.gen.Store(lj.gen)
	}
	f.cur.Store(lj)
	if lj.stales {
		f.lane.thaw()
	}
}

// parseJobID reads a switchyard job id (lowercase hex, no leading zeros
// required) without allocating.
func parseJobID(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		x = x<<4 | uint64(d)
	}
	return x, true
}

// prefixBytes writes prefix p as P big-endian bytes into dst.
func prefixBytes(dst []byte, p uint32, n int) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], p)
	return append(dst, b[4-n:]...)
}
