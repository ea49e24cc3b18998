package proxy

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"

	"switchyard/metrics"
	"switchyard/stratum"
	"switchyard/upstream"
)

// versionMaskOffered is the version-rolling mask switchyard offers miners
// when the pool has not (yet) said what it allows: the BIP320 general
// purpose bits every major pool grants.
const versionMaskOffered uint32 = 0x1fffe000

// miner is one miner connection. It belongs to its event loop: every field
// is read and written only on that loop's goroutine.
type miner struct {
	srv    *Server
	c      gnet.Conn
	loop   *loop
	id     uint64
	ip     string
	remote string

	connected   time.Time
	closeReason string

	subscribed bool
	authorized bool
	userAgent  string
	lane       *lane
	prefix     uint32
	en1        []byte // the prefix as bytes: the miner's extranonce1
	en2Size    int
	en2Sub     bool // sent mining.extranonce.subscribe

	rollingAsked bool
	minerMask    uint32
	mask         uint32 // agreed version-rolling mask (0: none)

	workers  []worker
	cur      *worker // the worker of the submit being handled, for rejects
	diffSent bool
	diff     float64
	prevDiff float64
	// diffFrom is the first job id sent at diff; shares for older jobs are
	// checked against min(prevDiff, diff), as the miner may still be working
	// on them at the difficulty they were sent with.
	diffFrom uint64
	minReq   float64 // minimum-difficulty the miner asked for (0: none)
	lastJob  *laneJob

	vdStart  time.Time
	vdShares int

	rateSec   int64
	rateCount int

	dedup    stratum.Dedup
	dedupJob uint64 // clean job id the dedup set belongs to

	accepted  uint64 // valid shares, answered true (lost ones included)
	rejected  uint64
	books     minerBooks
	diffSum   float64
	lastShare time.Time

	*scratch // the loop's: decoding space for the line being handled
}

// scratch holds what handling one line decodes into. Lines are handled one
// at a time on an event loop and nothing here outlives handle, so each loop
// has one scratch for all its miners: 720 bytes less per connection.
type scratch struct {
	msg   stratum.Message
	sub   stratum.Submit
	share stratum.Share
	res   stratum.Result
}

// worker is an authorized worker name and the name its shares carry
// upstream.
type worker struct {
	name     string
	upstream string          // per-worker mode: the suffix appended to the pool user
	series   *metrics.Worker // per-worker metrics; nil when off
	// full is "<pool user>.<upstream>" for pool fullPool, cached so the
	// share path does not build strings.
	full, fullPool string
}

func (m *miner) mining() bool { return m.subscribed && m.authorized }

func (m *miner) workerName() string {
	if len(m.workers) == 0 {
		return ""
	}
	return m.workers[0].name
}

var submitName = []byte(stratum.MethodSubmit)

// handle processes one line and appends any answer to out.
func (m *miner) handle(out, line []byte) []byte {
	if len(bytes.TrimSpace(line)) == 0 {
		return out
	}
	if err := m.msg.Decode(line); err != nil {
		m.srv.ctr.protocol.malformed.Inc()
		if bytes.Contains(line, submitName) {
			// Perhaps a share: counted as a malformed one, so that no
			// share vanishes uncounted.
			m.rejected++
			m.books.reject(stratum.ReasonMalformed)
			m.srv.ctr.shares.rejected[stratum.ReasonMalformed].Inc()
		}
		return stratum.AppendError(out, nil, stratum.CodeOther, "Malformed JSON-RPC")
	}
	msg := &m.msg
	if msg.IsResponse() {
		return out // answers to client.get_version etc.: nothing to do
	}
	id := msg.IDOrNull()
	switch string(msg.Method) {
	case stratum.MethodSubmit:
		return m.submit(out, id)
	case stratum.MethodSubscribe:
		return m.subscribe(out, id)
	case stratum.MethodAuthorize:
		return m.authorize(out, id)
	case stratum.MethodConfigure:
		return m.configure(out, id)
	case stratum.MethodSuggestDifficulty:
		d, err := stratum.ParseDifficulty(msg.Params)
		if err != nil {
			m.srv.ctr.protocol.badParams.Inc()
			return stratum.AppendError(out, id, stratum.CodeOther, "Invalid difficulty")
		}
		out = m.suggest(out, d)
		if isNullID(id) {
			return out
		}
		return stratum.AppendResult(out, id, true)
	case stratum.MethodExtranonceSubscribe:
		m.en2Sub = true
		return stratum.AppendResult(out, id, true)
	case stratum.MethodGetVersion:
		return stratum.AppendResultRaw(out, id, []byte(`"switchyard/`+m.srv.opts.Version+`"`))
	default:
		m.srv.ctr.protocol.unknownMethod.Inc()
		if isNullID(id) {
			return out // an unknown notification needs no answer
		}
		return stratum.AppendError(out, id, stratum.CodeOther, "Unknown method")
	}
}

func isNullID(id []byte) bool { return string(id) == "null" }

func (m *miner) subscribe(out, id []byte) []byte {
	sub := stratum.ParseSubscribe(m.msg.Params)
	if !m.subscribed {
		l, p := m.srv.laneFor()
		m.lane, m.prefix = l, p
		m.en1 = prefixBytes(nil, p, m.srv.opts.PrefixBytes)
		// Size the miner for the smallest pool so that failing over never
		// needs mining.set_extranonce.
		s := int(m.srv.lastEn2.Load())
		if m.srv.up != nil && m.srv.up.Extranonce2Size() > 0 {
			s = m.srv.up.Extranonce2Size()
		}
		m.en2Size = minerEn2(s, m.srv.opts.PrefixBytes)
		if m.en2Size == 0 {
			m.en2Size = 1
		}
		m.userAgent = sub.UserAgent
		m.subscribed = true
	}
	out = stratum.AppendSubscribeResult(out, id, hex.EncodeToString(m.en1), m.en1, m.en2Size)
	if m.authorized {
		out = m.startMining(out)
	}
	return out
}

func (m *miner) authorize(out, id []byte) []byte {
	user, _, err := stratum.ParseAuthorize(m.msg.Params)
	if err != nil {
		m.srv.ctr.protocol.badParams.Inc()
		return stratum.AppendError(out, id, stratum.CodeOther, "Invalid authorize params")
	}
	if len(m.workers) >= maxWorkersPerConn {
		return stratum.AppendError(out, id, stratum.CodeUnauthorized, "Too many workers")
	}
	w := worker{name: user}
	known := false
	for _, x := range m.workers {
		known = known || x.name == user
	}
	if !known {
		if m.srv.opts.PerWorker {
			w.upstream = workerSuffix(user)
		}
		w.series = m.srv.opts.Workers.Get(user)
		m.workers = append(m.workers, w)
	}
	first := !m.authorized
	m.authorized = true
	out = stratum.AppendResult(out, id, true)
	if first {
		m.srv.log.Info().Str("remote", m.remote).Str("worker", user).Str("agent", m.userAgent).Msg("miner authorized")
	}
	if m.srv.opts.PerWorker && !known && m.lane != nil && m.srv.up != nil {
		m.srv.up.Authorize(m.lane.idx, w.upstream)
	}
	if first && m.subscribed {
		out = m.startMining(out)
	}
	return out
}

// maxWorkersPerConn bounds mining.authorize calls per connection.
const maxWorkersPerConn = 64

// workerSuffix is the part of a miner's worker name that is appended to the
// pool user in per-worker mode: what follows the first '.', or the whole
// name when it has none.
func workerSuffix(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 && i+1 < len(name) {
		return name[i+1:]
	}
	return name
}

// startMining sends the difficulty and the current job right after the
// miner is both subscribed and authorized.
func (m *miner) startMining(out []byte) []byte {
	if m.srv.opts.PerWorker && m.srv.up != nil {
		for _, w := range m.workers {
			m.srv.up.Authorize(m.lane.idx, w.upstream)
		}
	}
	m.vdStart = time.Now()
	if lj := m.lane.cur.Load(); lj != nil {
		out = m.appendJob(out, lj)
	}
	return out
}

func (m *miner) configure(out, id []byte) []byte {
	req, err := stratum.ParseConfigure(m.msg.Params)
	if err != nil {
		m.srv.ctr.protocol.badParams.Inc()
		return stratum.AppendError(out, id, stratum.CodeOther, "Invalid configure params")
	}
	var res stratum.ConfigureResult
	if req.VersionRolling {
		m.rollingAsked = true
		m.minerMask = req.VersionMask
		m.mask = stratum.NegotiateMask(req.VersionMask, m.poolMask())
		res.VersionRolling = m.mask != 0
		res.VersionMask = m.mask
	}
	if req.MinimumDifficulty {
		res.MinimumDifficulty = true
		if req.MinDifficulty > 0 {
			m.minReq = req.MinDifficulty
			if f := m.floor(m.srv.vardiff()); m.diff < f {
				out = m.setDiff(out, f)
			}
		}
	}
	res.SubscribeExtranonce = req.SubscribeExtranonce
	if req.SubscribeExtranonce {
		m.en2Sub = true
	}
	return stratum.AppendConfigureResult(out, id, &req, res)
}

// poolMask is the version-rolling mask of the pool currently serving the
// miner's lane, or the BIP320 default before any pool was reached.
func (m *miner) poolMask() uint32 {
	if m.lane != nil {
		if lj := m.lane.cur.Load(); lj != nil {
			return lj.up.VersionMask
		}
	}
	return versionMaskOffered
}

// floor is the lowest difficulty the miner may get: the configured minimum,
// raised by the minimum-difficulty extension, never above the maximum.
func (m *miner) floor(vd *Vardiff) float64 {
	return clamp(max(vd.Min, m.minReq), vd.Min, vd.Max)
}

// suggest honours mining.suggest_difficulty within [floor, max].
func (m *miner) suggest(out []byte, d float64) []byte {
	vd := m.srv.vardiff()
	d = clamp(d, m.floor(vd), vd.Max)
	if !m.diffSent {
		m.diff, m.prevDiff = d, d
		return out
	}
	return m.setDiff(out, d)
}

// setDiff changes the miner's difficulty and re-sends the current job so
// the new difficulty applies at once.
func (m *miner) setDiff(out []byte, d float64) []byte {
	if d == m.diff {
		return out
	}
	m.prevDiff, m.diff = m.diff, d
	m.srv.met.VardiffDifficulty.Observe(d)
	if !m.diffSent {
		m.prevDiff = d
		return out
	}
	out = stratum.AppendSetDifficulty(out, d)
	if lj := m.lastJob; lj != nil && m.mining() {
		m.diffFrom = lj.id + 1
		if v := lj.variants[m.en2Size]; v != nil {
			out = append(out, v.line...)
		}
	}
	return out
}

// appendJob appends what the miner needs to work on lj: its difficulty
// (before the first job), an extranonce change or reconnect when the pool's
// extranonce2 no longer fits, and the job line itself.
func (m *miner) appendJob(out []byte, lj *laneJob) []byte {
	if !m.diffSent {
		out = stratum.AppendSetDifficulty(out, m.diff)
		m.diffSent = true
		m.diffFrom = lj.id
	}
	v := lj.variants[m.en2Size]
	if v == nil {
		// The new pool's extranonce2 is smaller than this miner's.
		newSize := minerEn2(lj.up.Extranonce2Size, m.srv.opts.PrefixBytes)
		if !m.en2Sub || newSize == 0 {
			m.closeReason = "extranonce_reconnect"
			out = stratum.AppendReconnect(out, "", 0, 0)
			return out
		}
		m.en2Size = newSize
		out = stratum.AppendSetExtranonce(out, m.en1, m.en2Size)
		v = lj.variants[m.en2Size]
	}
	if m.mask != 0 && lj.up.VersionMask&m.mask != m.mask && m.rollingAsked {
		// The new pool allows fewer bits: tell the miner (BIP310).
		m.mask = stratum.NegotiateMask(m.minerMask, lj.up.VersionMask)
		out = stratum.AppendSetVersionMask(out, m.mask)
	}
	m.lastJob = lj
	return append(out, v.line...)
}

// sendJob writes lj to the miner from a fan-out on its loop.
func (m *miner) sendJob(lj *laneJob) {
	if m.closeReason != "" {
		return // closing (gnet closes asynchronously): write and count nothing more
	}
	lp := m.loop
	out := m.appendJob(lp.out[:0], lj)
	_, _ = m.c.Write(out)
	lp.out = out[:0]
	if m.closeReason != "" || !m.checkBacklog() {
		_ = m.c.Close()
	}
}

// checkBacklog closes miners that stopped reading: false when the
// connection must close.
func (m *miner) checkBacklog() bool {
	if m.closeReason != "" {
		return false // closing already, and counted once
	}
	if m.c.OutboundBuffered() > m.srv.opts.MaxPendingWriteBytes {
		m.srv.ctr.limit(limitPendingWrite)
		m.closeReason = "slow_reader"
		return false
	}
	return true
}

// sweep runs once a second on the miner's loop: the authorize deadline and
// vardiff for miners whose shares stopped.
func (m *miner) sweep(now time.Time) {
	if m.closeReason != "" {
		return // already closing
	}
	if !m.mining() {
		if now.Sub(m.connected) > m.srv.opts.AuthTimeout {
			m.srv.ctr.limit(limitAuthTimeout)
			m.closeReason = "auth_timeout"
			_ = m.c.Close()
		}
		return
	}
	if m.diffSent && now.Sub(m.vdStart) >= m.srv.vardiff().Retarget {
		m.retarget(now)
	}
}

// retarget applies vardiff over the window since vdStart and writes the
// new difficulty, if any.
func (m *miner) retarget(now time.Time) {
	vd := m.srv.vardiff()
	d := stratum.Retarget(m.diff, m.vdShares, now.Sub(m.vdStart), vd.Target, m.floor(vd), vd.Max)
	m.vdStart, m.vdShares = now, 0
	if d == m.diff {
		return
	}
	lp := m.loop
	out := m.setDiff(lp.out[:0], d)
	if len(out) > 0 {
		_, _ = m.c.Write(out)
	}
	lp.out = out[:0]
}

// submit validates a share, answers it, and forwards it when it meets the
// pool's difficulty.
func (m *miner) submit(out, id []byte) []byte {
	ctr := &m.srv.ctr
	if !m.subscribed {
		return m.reject(out, id, stratum.ReasonNotSubscribed)
	}
	if !m.authorized {
		return m.reject(out, id, stratum.ReasonNotAuthorized)
	}
	if max := m.srv.opts.MaxSubmitsPerSecond; max > 0 {
		now := time.Now().Unix()
		if now != m.rateSec {
			m.rateSec, m.rateCount = now, 0
		}
		if m.rateCount++; m.rateCount > max {
			ctr.limit(limitSubmitRate)
			return m.reject(out, id, stratum.ReasonRateLimited)
		}
	}
	sub := &m.sub
	if err := sub.Decode(m.msg.Params); err != nil {
		return m.reject(out, id, stratum.ReasonMalformed)
	}
	w := m.findWorker(sub.Worker)
	if w == nil {
		return m.reject(out, id, stratum.ReasonNotAuthorized)
	}
	m.cur = w
	defer func() { m.cur = nil }()
	lj, why := m.lane.lookup(sub.JobID)
	if why != stratum.ReasonNone {
		return m.reject(out, id, why)
	}
	v := lj.variants[m.en2Size]
	if v == nil {
		return m.reject(out, id, stratum.ReasonBadExtranonce2)
	}
	diff := m.diff
	if lj.id < m.diffFrom && m.prevDiff < diff {
		diff = m.prevDiff
	}
	m.share = stratum.Share{
		Extranonce1: m.en1,
		Extranonce2: sub.Extranonce2,
		NTime:       sub.NTime,
		Nonce:       sub.Nonce,
		VersionBits: sub.Version,
		HasVersion:  sub.HasVersion,
	}
	params := stratum.CheckParams{Extranonce2Size: m.en2Size, VersionMask: m.mask, Difficulty: diff}
	if err := v.job.Check(&m.share, params, &m.res); err != nil && !(m.res.Block && errors.Is(err, stratum.ErrLowDifficulty)) {
		// (A hash that meets the network target is never refused, even
		// when the miner's difficulty is set above the network's, as on
		// test networks.)
		return m.reject(out, id, reasonOf(err))
	}
	if clean := m.lane.cleanID.Load(); clean != m.dedupJob {
		m.dedup.Reset()
		m.dedupJob = clean
	}
	if m.dedup.Seen(&m.res.Hash) {
		return m.reject(out, id, stratum.ReasonDuplicate)
	}

	// Valid. A block candidate goes upstream before anything else.
	block := m.res.Block
	var fwd bool
	var lost stratum.Reason
	if block || lj.target.Meets(&m.res.Hash) {
		fwd, lost = m.forward(lj, v, w, sub)
	}
	if block {
		m.srv.log.Warn().Str("pool", lj.pool).Str("worker", w.name).Str("hash", m.res.Hash.String()).
			Str("job_id", lj.idHex).Bool("forwarded", fwd).Msg("BLOCK CANDIDATE")
		m.srv.ctr.pool(lj.pool).blocks.Inc()
	}
	m.accepted++
	m.diffSum += diff
	m.lastShare = time.Now()
	w.series.Accepted(diff, m.lastShare)
	m.vdShares++
	if lost != stratum.ReasonNone {
		ctr.shares.lost[lost].Inc()
		m.books.lose(lost)
	} else {
		ctr.shares.accepted.Inc()
	}
	ctr.shareDiff.Add(diff)
	if e := m.srv.log.Debug(); e.Enabled() {
		e.Str("worker", w.name).Str("job_id", lj.idHex).Float64("difficulty", diff).
			Float64("share_difficulty", m.res.Difficulty).Bool("forwarded", fwd).Msg("share accepted")
	}
	out = stratum.AppendResult(out, id, true)
	// Early retarget for miners far above the target rate (e.g. a new ASIC
	// at the initial difficulty): no need to wait a whole interval.
	if m.vdShares >= earlyRetargetShares {
		vd := m.srv.vardiff()
		if el := time.Since(m.vdStart); el < time.Duration(m.vdShares)*vd.Target/4 {
			d := stratum.Retarget(m.diff, m.vdShares, el, vd.Target, m.floor(vd), vd.Max)
			m.vdStart, m.vdShares = time.Now(), 0
			out = m.setDiff(out, d)
		}
	}
	return out
}

// earlyRetargetShares is how many shares in one vardiff window make a
// miner eligible for an early retarget.
const earlyRetargetShares = 16

// forward hands a valid share to the session that issued its job. It
// reports whether the session took it, and otherwise the loss reason.
func (m *miner) forward(lj *laneJob, v *variant, w *worker, sub *stratum.Submit) (bool, stratum.Reason) {
	if w.upstream != "" && w.fullPool != lj.pool {
		w.full, w.fullPool = lj.sess.Pool().User+"."+w.upstream, lj.pool
	}
	us := upstream.Submit{
		Worker:     w.full,
		JobID:      lj.up.Notify.JobID,
		NTime:      sub.NTime,
		Nonce:      sub.Nonce,
		Version:    sub.Version,
		HasVersion: sub.HasVersion,
		Difficulty: lj.up.Difficulty,
		Conn:       lj.up.Conn,
	}
	// Pool extranonce2 = pad ‖ prefix ‖ miner's extranonce2. The pad is
	// already in the miner's coinb1 (see lane.buildJob): zeros.
	n := v.pad
	n += copy(us.Extranonce2[n:], m.en1)
	n += copy(us.Extranonce2[n:], sub.Extranonce2)
	us.Extranonce2Len = uint8(n)
	pc := m.srv.ctr.pool(lj.pool)
	m.srv.inflight.Add(1)
	if err := lj.sess.Submit(&us); err != nil {
		m.srv.inflight.Add(-1)
		return false, stratum.ReasonNoUpstream
	}
	pc.forwarded.Inc()
	pc.forwardedDiff.Add(lj.up.Difficulty) // what the pool credits
	return true, stratum.ReasonNone
}

func (m *miner) findWorker(name []byte) *worker {
	for i := range m.workers {
		if m.workers[i].name == string(name) {
			return &m.workers[i]
		}
	}
	// Tolerant: one worker on the connection is unambiguous whatever name
	// the submit carries (some firmwares send the bare account).
	if len(m.workers) == 1 {
		return &m.workers[0]
	}
	return nil
}

func (m *miner) reject(out, id []byte, r stratum.Reason) []byte {
	m.rejected++
	m.books.reject(r)
	if m.cur != nil {
		m.cur.series.Rejected()
	} else if len(m.workers) > 0 {
		m.workers[0].series.Rejected() // the share named no known worker
	}
	m.srv.ctr.shares.rejected[r].Inc()
	if e := m.srv.log.Debug(); e.Enabled() {
		e.Str("worker", m.workerName()).Str("reason", r.String()).Msg("share rejected")
	}
	return stratum.AppendReject(out, id, r)
}

func clamp(d, lo, hi float64) float64 {
	if d < lo {
		return lo
	}
	if d > hi {
		return hi
	}
	return d
}
