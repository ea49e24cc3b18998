package proxy

import (
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchyard/stratum"
	"switchyard/upstream"
)

// jobRing is how many recent jobs a lane remembers for share lookups. Jobs
// arrive every ~30 s and blocks every ~10 min, so 32 covers any job a miner
// can still legitimately be working on.
const jobRing = 32

// A lane is one extranonce space. Each miner of a lane owns a prefix p of
// P bytes as its extranonce1; on every pool, lane k is served by that pool's
// k-th upstream session, whose extranonce1 E is folded into the coinbase
// sent to miners. Moving a lane to another pool is therefore just a new job.
type lane struct {
	idx     int
	prefixN int // P, bytes

	mu       sync.Mutex
	next     uint64   // next never-used prefix
	free     []uint32 // prefixes released before the last clean job
	cooling  []uint32 // released since the last clean job (quarantined)
	capacity uint64
	inUse    int

	seq  *atomic.Uint64 // global job id counter (shared by all lanes)
	cur  atomic.Pointer[laneJob]
	ring [jobRing]atomic.Pointer[laneJob]
	// cleanID is the id of the newest job that made earlier ones stale.
	cleanID atomic.Uint64
}

func newLane(idx, prefixN int, seq *atomic.Uint64) *lane {
	return &lane{idx: idx, prefixN: prefixN, capacity: 1 << (8 * prefixN), seq: seq}
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
	l.mu.Lock()
	if worked {
		l.cooling = append(l.cooling, p)
	} else {
		l.free = append(l.free, p)
	}
	l.inUse--
	l.mu.Unlock()
}

// laneJob is one job as a lane's miners see it: the pool job with the
// session's extranonce1 (and padding) folded into coinb1, under a
// switchyard job id. Immutable once published.
type laneJob struct {
	id       uint64
	idHex    string
	sess     *upstream.Session
	pool     string
	up       *upstream.Job
	clean    bool
	received time.Time      // when the pool's notify arrived (for switch timing)
	target   stratum.Target // the pool's share target: shares meeting it are forwarded

	// variants[m] serves miners whose extranonce2 size is m bytes: the
	// pool's extranonce2 is pad(S-P-m) ‖ prefix ‖ miner's extranonce2, and
	// the pad is appended to coinb1 so every miner of a lane with the same m
	// gets the very same notify line.
	variants [stratum.MaxExtranonce2Size + 1]*variant
}

type variant struct {
	job  *stratum.Job
	line []byte // the encoded mining.notify, shared by every miner
	pad  int
}

// minerEn2 is the extranonce2 size a miner gets on a pool whose sessions
// have extranonce2 size s, or 0 when s leaves no room after the prefix.
func minerEn2(s, prefixN int) int {
	if m := s - prefixN; m > 0 {
		return m
	}
	return 0
}

// buildJob turns a pool job into a lane job with a fresh id.
func (l *lane) buildJob(sess *upstream.Session, up *upstream.Job, clean bool) (*laneJob, error) {
	id := l.seq.Add(1)
	lj := &laneJob{
		id:       id,
		idHex:    strconv.FormatUint(id, 16),
		sess:     sess,
		pool:     sess.Pool().Name,
		up:       up,
		clean:    clean,
		received: up.Received,
		target:   stratum.DifficultyTarget(up.Difficulty),
	}
	maxM := minerEn2(up.Extranonce2Size, l.prefixN)
	for m := 1; m <= maxM; m++ {
		pad := up.Extranonce2Size - l.prefixN - m
		n := *up.Notify
		n.JobID = lj.idHex
		n.Clean = clean
		n.Coinb1 = make([]byte, 0, len(up.Notify.Coinb1)+len(up.Extranonce1)+pad)
		n.Coinb1 = append(n.Coinb1, up.Notify.Coinb1...)
		n.Coinb1 = append(n.Coinb1, up.Extranonce1...)
		n.Coinb1 = append(n.Coinb1, make([]byte, pad)...)
		job, err := stratum.NewJob(&n)
		if err != nil {
			return nil, err
		}
		lj.variants[m] = &variant{job: job, line: n.AppendJSON(nil), pad: pad}
	}
	return lj, nil
}

// publish makes lj the lane's current job.
func (l *lane) publish(lj *laneJob) {
	l.ring[lj.id%jobRing].Store(lj)
	if lj.clean {
		l.cleanID.Store(lj.id)
		l.mu.Lock()
		l.free = append(l.free, l.cooling...)
		l.cooling = l.cooling[:0]
		l.mu.Unlock()
	}
	l.cur.Store(lj)
}

// lookup finds a job by the id a miner sent. It returns the job, or a
// reason why the share cannot count: unknown, stale, or pool switched.
func (l *lane) lookup(idHex []byte) (*laneJob, stratum.Reason) {
	id, ok := parseJobID(idHex)
	if !ok {
		return nil, stratum.ReasonUnknownJob
	}
	lj := l.ring[id%jobRing].Load()
	if lj == nil || lj.id != id {
		if id != 0 && id <= l.seq.Load() {
			return nil, stratum.ReasonStale // issued, but long gone
		}
		return nil, stratum.ReasonUnknownJob
	}
	if id < l.cleanID.Load() {
		if cur := l.cur.Load(); cur != nil && cur.sess.Pool().Name != lj.pool {
			return lj, stratum.ReasonPoolSwitched
		}
		return lj, stratum.ReasonStale
	}
	return lj, stratum.ReasonNone
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
