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
	closeReason CloseReason // set once the connection is closing
	awaitProxy  bool        // Options.ProxyProtocol: the PROXY header is not read yet (see readProxyHeader)
	handoff     bool        // a handover asks it to leave (see handover.go)
	handedOff   bool        // it left for another process: its close is none of the miner's
	// The flags sit together: the record stays in a smaller size class.
	subscribed bool
	authorized bool
	routed     bool // counts among its route's miners (see route)
	en2Sub     bool // sent mining.extranonce.subscribe

	userAgent string
	lane      *lane
	// listener is the index of the listener it connected to; route is its
	// route (known at connect when the listener has one, else at its
	// first authorize; routed is set once it counts among the route's
	// miners), and feed the pool's job stream it follows (nil: none with
	// work yet).
	listener int
	route    *route
	feed     *feed
	prefix   uint32
	en1      []byte // the prefix as bytes: the miner's extranonce1
	en2Size  int    // M: fixed for the connection's life

	rollingOK bool   // mining.configure agreed version rolling
	minerMask uint32 // the mask the miner asked for
	mask      uint32 // the mask last told to the miner (0: none)

	workers []worker
	cur     *worker // the worker of the submit being handled, for rejects
	// vdiff is vardiff's choice, within [floor, max]; diff is the
	// difficulty last sent (0: none yet), which is vdiff capped by the pool
	// difficulty of the job it went with: a pool credits a share at its
	// own difficulty, so a miner above it would do work nobody pays for.
	vdiff   float64
	diff    float64
	minReq  float64 // minimum-difficulty the miner asked for (0: none)
	lastJob *laneJob
	// sent holds the last jobs sent, each with the lowest difficulty sent
	// since it went out: a firmware keeps each work item's difficulty
	// (cgminer), or applies a lower one at once, and either share counts.
	sent   [sentJobs]sentJob
	sentAt int // index of the newest

	est      hashEst // measured hashrate, for the split (split.go)
	vdStart  time.Time
	vdShares int
	vdLooks  int // retarget looks at the current window (see retarget)

	rateSec   int64
	rateCount int

	dedup    stratum.Dedup
	dedupGen uint64 // generation of its feed the dedup set belongs to

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
			m.shares().rejected[stratum.ReasonMalformed].Inc()
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
		// Fixed for the connection: every pool switchyard takes has room
		// for it (smaller pools are refused), so no failover ever needs
		// mining.set_extranonce or client.reconnect.
		m.en2Size = l.en2N
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
	if !m.routed {
		r := m.route
		if r == nil {
			var ok bool
			if r, ok = m.srv.matchRoute(m.listener, user); !ok {
				m.srv.ctr.protocol.noRoute.Inc()
				m.srv.log.Warn().Str("remote", m.remote).Str("worker", user).Msg("no route for worker: authorize refused")
				return stratum.AppendError(out, id, stratum.CodeUnauthorized, "No route for worker")
			}
		}
		m.route, m.routed = r, true
		r.join()
	}
	w := worker{name: user}
	known := false
	for _, x := range m.workers {
		known = known || x.name == user
	}
	if !known {
		if m.route.perWorker.Load() {
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
	if m.route.perWorker.Load() && !known && m.lane != nil {
		if up := m.route.upstream(); up != nil {
			up.Authorize(m.lane.idx, w.upstream)
		}
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
	if up := m.route.upstream(); m.route.perWorker.Load() && up != nil {
		for _, w := range m.workers {
			up.Authorize(m.lane.idx, w.upstream)
		}
	}
	m.vdStart = time.Now()
	if f := m.route.pick(m.lane); f != nil {
		m.feed = f
		out = m.appendJob(out, f.cur.Load(), false)
	}
	return out
}

// rehome moves the miner to a serving feed of its route with work,
// chosen by weight (route.pick), and sends that feed's job: with
// clean_jobs=true when clean (the work in hand is for a pool that no
// longer serves). It reports whether the miner got work.
func (m *miner) rehome(clean bool) bool {
	f := m.route.pick(m.lane)
	if f == nil {
		return false
	}
	m.moveTo(f, clean)
	return true
}

// moveTo makes the miner follow feed f and sends f's current job.
func (m *miner) moveTo(f *feed, clean bool) {
	m.feed = f
	if lj := f.cur.Load(); lj != nil {
		m.sendJob(lj, clean)
	}
}

// shares returns the share counters of the miner's route (or of miners
// with none yet).
func (m *miner) shares() *shareCounters {
	if m.route != nil {
		return &m.route.shares
	}
	s := m.srv
	s.unroutedOnce.Do(func() { s.unrouted.init(s.met.ForRoute("")) })
	return &s.unrouted
}

func (m *miner) configure(out, id []byte) []byte {
	req, err := stratum.ParseConfigure(m.msg.Params)
	if err != nil {
		m.srv.ctr.protocol.badParams.Inc()
		return stratum.AppendError(out, id, stratum.CodeOther, "Invalid configure params")
	}
	var res stratum.ConfigureResult
	if req.VersionRolling {
		m.minerMask = req.VersionMask
		m.mask = stratum.NegotiateMask(req.VersionMask, m.poolMask())
		m.rollingOK = m.mask != 0
		res.VersionRolling = m.rollingOK
		res.VersionMask = m.mask
	}
	if req.MinimumDifficulty {
		res.MinimumDifficulty = true
		if req.MinDifficulty > 0 {
			m.minReq = req.MinDifficulty
			if f := m.floor(m.srv.vardiff()); m.vdiff < f {
				out = m.retune(out, f)
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
	if m.feed != nil {
		if lj := m.feed.cur.Load(); lj != nil {
			return lj.poolJob.VersionMask
		}
	}
	if m.lane != nil {
		if lj := m.lane.anyJob(); lj != nil {
			return lj.poolJob.VersionMask
		}
	}
	return versionMaskOffered
}

// floor is the lowest difficulty vardiff may choose: the configured
// minimum, raised by the minimum-difficulty extension, never above the
// maximum. The pool's difficulty still caps what is sent (see appendJob).
func (m *miner) floor(vd *Vardiff) float64 {
	return clamp(max(vd.Min, m.minReq), vd.Min, vd.Max)
}

// suggest honours mining.suggest_difficulty within [floor, max].
func (m *miner) suggest(out []byte, d float64) []byte {
	vd := m.srv.vardiff()
	return m.retune(out, clamp(d, m.floor(vd), vd.Max))
}

// retune makes d vardiff's choice and tells the miner the difficulty that
// follows from it: d capped by the pool difficulty of its current job.
// The job is not sent again (ESP-Miner restarts its extranonce2 on every
// notify and would redo the same work; every firmware flushes its work on
// clean_jobs): the difficulty applies from the next job, and shares on
// the jobs already sent are judged at the lowest difficulty each was
// given (see sendDiff).
func (m *miner) retune(out []byte, d float64) []byte {
	m.vdiff = d
	if m.diff == 0 {
		return out // not mining yet: applies to the first job
	}
	if lj := m.lastJob; lj != nil {
		d = min(d, lj.diff)
	}
	if d == m.diff {
		return out
	}
	return m.sendDiff(out, d)
}

// sendDiff appends mining.set_difficulty d. A lower difficulty also
// lowers the jobs already sent, as a miner may apply it to them at once.
// The vardiff window restarts.
func (m *miner) sendDiff(out []byte, d float64) []byte {
	if d < m.diff {
		for i := range m.sent {
			if e := &m.sent[i]; e.lj != nil && e.diff > d {
				e.diff = d
			}
		}
	}
	m.diff = d
	m.vdStart, m.vdShares, m.vdLooks = time.Now(), 0, 0
	m.srv.met.VardiffDifficulty.Observe(d)
	return stratum.AppendSetDifficulty(out, d)
}

// sentJobs is how many of the jobs sent to a miner it remembers for its
// shares, however many lanes are open. Pools send a job every 30 s or so
// and miners work on the latest one; sixteen cover several minutes of
// jobs and a failover (384 bytes a miner).
const sentJobs = 16

// sentJob is a job as sent to one miner.
type sentJob struct {
	lj   *laneJob
	diff float64 // the lowest difficulty sent for it since it went out
	mask uint32  // the version-rolling mask in force when it went out
}

// remember records lj as sent at difficulty d.
func (m *miner) remember(lj *laneJob, d float64) {
	m.sentAt = (m.sentAt + 1) % sentJobs
	m.sent[m.sentAt] = sentJob{lj: lj, diff: d, mask: m.mask}
}

// sentJob finds a job the miner was sent, by the id it submitted.
func (m *miner) sentJob(idHex []byte) (*sentJob, stratum.Reason) {
	id, ok := parseJobID(idHex)
	if !ok {
		return nil, stratum.ReasonUnknownJob
	}
	for i := range m.sent {
		if e := &m.sent[i]; e.lj != nil && e.lj.id == id {
			return e, stratum.ReasonNone
		}
	}
	if id != 0 && id <= m.srv.jobSeq.Load() {
		return nil, stratum.ReasonStale // issued, but long gone
	}
	return nil, stratum.ReasonUnknownJob
}

// appendJob appends what the miner needs to work on lj: its difficulty
// when it changes (never above the pool's difficulty for lj), the
// version-rolling mask when the pool's differs from the one the miner
// has (narrowed or widened, BIP310), and the job line itself, with
// clean_jobs=true when clean whatever lj says.
func (m *miner) appendJob(out []byte, lj *laneJob, clean bool) []byte {
	if d := min(m.vdiff, lj.diff); d != m.diff {
		out = m.sendDiff(out, d)
	}
	if m.rollingOK {
		if mask := stratum.NegotiateMask(m.minerMask, lj.poolJob.VersionMask); mask != m.mask {
			m.mask = mask
			out = stratum.AppendSetVersionMask(out, mask)
		}
	}
	m.remember(lj, m.diff)
	m.lastJob = lj
	if clean && !lj.clean {
		return append(out, lj.alt...)
	}
	return append(out, lj.line...)
}

// sendJob writes lj to the miner from a fan-out on its loop (see
// appendJob for clean).
func (m *miner) sendJob(lj *laneJob, clean bool) {
	if m.closeReason != closeNone {
		return // closing (gnet closes asynchronously): write and count nothing more
	}
	lp := m.loop
	out := m.appendJob(lp.out[:0], lj, clean)
	_, _ = m.c.Write(out)
	lp.out = out[:0]
	if m.closeReason != closeNone || !m.checkBacklog() {
		_ = m.c.Close()
	}
}

// checkBacklog closes miners that stopped reading: false when the
// connection must close.
func (m *miner) checkBacklog() bool {
	if m.closeReason != closeNone {
		return false // closing already, and counted once
	}
	if m.c.OutboundBuffered() > m.srv.opts.MaxPendingWriteBytes {
		m.srv.ctr.limit(limitPendingWrite)
		m.closeReason = CloseSlowReader
		return false
	}
	return true
}

// sweep runs once a second on the miner's loop: the authorize deadline and
// vardiff for miners whose shares stopped.
func (m *miner) sweep(now time.Time) {
	if m.closeReason != closeNone {
		return // already closing
	}
	if !m.mining() {
		if now.Sub(m.connected) > m.srv.opts.AuthTimeout {
			m.srv.ctr.limit(limitAuthTimeout)
			m.closeReason = CloseAuthTimeout
			_ = m.c.Close()
		}
		return
	}
	if m.diff > 0 && now.Sub(m.vdStart) >= m.srv.vardiff().Retarget*time.Duration(m.vdLooks+1) {
		m.retarget(now)
	}
}

// vardiffLooks is how many retarget intervals one vardiff window lasts at
// most. Each interval the window so far is tested (stratum.Retarget only
// moves on a share count the current difficulty makes implausible); a
// window with no verdict starts again after vardiffLooks of them.
const vardiffLooks = 4

// retarget applies vardiff over the window since vdStart and writes the
// new difficulty, if any.
func (m *miner) retarget(now time.Time) {
	vd := m.srv.vardiff()
	d := stratum.Retarget(m.diff, m.vdShares, now.Sub(m.vdStart), vd.Target, m.floor(vd), vd.Max)
	if d == m.diff {
		if m.vdLooks++; m.vdLooks >= vardiffLooks {
			m.vdStart, m.vdShares, m.vdLooks = now, 0, 0
		}
		return
	}
	m.vdStart, m.vdShares, m.vdLooks = now, 0, 0
	lp := m.loop
	out := m.retune(lp.out[:0], d)
	if len(out) > 0 {
		_, _ = m.c.Write(out)
	}
	lp.out = out[:0]
}

// submit validates a share, answers it, and forwards it when it meets the
// pool's difficulty (a block candidate always).
func (m *miner) submit(out, id []byte) []byte {
	if !m.subscribed {
		return m.reject(out, id, stratum.ReasonNotSubscribed)
	}
	if !m.authorized {
		return m.reject(out, id, stratum.ReasonNotAuthorized)
	}
	if !m.underRate() {
		m.srv.ctr.limit(limitSubmitRate)
		return m.reject(out, id, stratum.ReasonRateLimited)
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
	e, why := m.sentJob(sub.JobID)
	if why != stratum.ReasonNone {
		return m.reject(out, id, why)
	}
	why, block := m.check(e, sub)
	if why != stratum.ReasonNone && !block {
		return m.reject(out, id, why)
	}

	// Valid, or a block candidate: that goes upstream first, even on a job
	// that is stale for miners (the pool that issued it may still take it).
	lj := e.lj
	var fwd bool
	var lost stratum.Reason
	if block || lj.target.Meets(&m.res.Hash) {
		fwd, lost = m.forward(lj, w, sub)
	}
	if block {
		m.srv.log.Warn().Str("pool", lj.pool).Str("worker", w.name).Str("hash", m.res.Hash.String()).
			Str("job_id", lj.idHex).Bool("forwarded", fwd).Str("miner_verdict", why.String()).Msg("BLOCK CANDIDATE")
		lj.feed.route.pool(lj.pool).blocks.Inc()
	}
	m.count(w, e.diff, lost)
	if ev := m.srv.log.Debug(); ev.Enabled() {
		ev.Str("worker", w.name).Str("job_id", lj.idHex).Float64("difficulty", e.diff).
			Float64("share_difficulty", m.res.Difficulty).Bool("forwarded", fwd).Msg("share accepted")
	}
	out = stratum.AppendResult(out, id, true)
	return m.earlyRetarget(out)
}

// underRate counts a submit against MaxSubmitsPerSecond.
func (m *miner) underRate() bool {
	max := m.srv.opts.MaxSubmitsPerSecond
	if max <= 0 {
		return true
	}
	now := time.Now().Unix()
	if now != m.rateSec {
		m.rateSec, m.rateCount = now, 0
	}
	m.rateCount++
	return m.rateCount <= max
}

// check validates the share against the job it names, at the difficulty
// and mask that job was given, then for staleness and duplicates. It
// returns why the share does not count for the miner (ReasonNone: it
// does) and whether its hash meets the network target, which matters
// whatever the verdict.
func (m *miner) check(e *sentJob, sub *stratum.Submit) (stratum.Reason, bool) {
	m.share = stratum.Share{
		Extranonce1: m.en1,
		Extranonce2: sub.Extranonce2,
		NTime:       sub.NTime,
		Nonce:       sub.Nonce,
		VersionBits: sub.Version,
		HasVersion:  sub.HasVersion,
	}
	params := stratum.CheckParams{Extranonce2Size: m.en2Size, VersionMask: e.mask, Difficulty: e.diff}
	err := e.lj.job.Check(&m.share, params, &m.res)
	block := m.res.Block
	if err != nil && !(block && errors.Is(err, stratum.ErrLowDifficulty)) {
		// (A hash that meets the network target is never refused for its
		// difficulty, even when the miner's is set above the network's, as
		// on test networks.)
		return reasonOf(err), false
	}
	if why := e.lj.feed.stale(e.lj, m.feed); why != stratum.ReasonNone {
		return why, block
	}
	if f := e.lj.feed; f == m.feed {
		if gen := f.gen.Load(); gen != m.dedupGen {
			m.dedup.Reset()
			m.dedupGen = gen
		}
	}
	if m.dedup.Seen(&m.res.Hash) {
		return stratum.ReasonDuplicate, false
	}
	return stratum.ReasonNone, block
}

// count books an accepted share judged at diff; lost is why its forward
// failed (ReasonNone: it did not, or it was not forwarded).
func (m *miner) count(w *worker, diff float64, lost stratum.Reason) {
	ctr := m.shares()
	m.accepted++
	m.diffSum += diff
	m.lastShare = time.Now()
	w.series.Accepted(diff, m.lastShare)
	m.vdShares++
	if lost != stratum.ReasonNone {
		ctr.lost[lost].Inc()
		m.books.lose(lost)
	} else {
		ctr.accepted.Inc()
	}
	m.srv.ctr.shareDiff.Add(diff)
}

// earlyRetarget raises the difficulty of a miner far above the target
// share rate (a new ASIC at the initial difficulty) without waiting for
// the retarget interval.
func (m *miner) earlyRetarget(out []byte) []byte {
	if m.vdShares < earlyRetargetShares {
		return out
	}
	vd := m.srv.vardiff()
	el := time.Since(m.vdStart)
	if el >= time.Duration(m.vdShares)*vd.Target/4 {
		return out
	}
	d := stratum.Retarget(m.diff, m.vdShares, el, vd.Target, m.floor(vd), vd.Max)
	m.vdStart, m.vdShares, m.vdLooks = time.Now(), 0, 0
	return m.retune(out, d)
}

// earlyRetargetShares is how many shares in one vardiff window make a
// miner eligible for an early retarget.
const earlyRetargetShares = 16

// forward hands a valid share to the session that issued its job. It
// reports whether the session took it, and otherwise the loss reason.
func (m *miner) forward(lj *laneJob, w *worker, sub *stratum.Submit) (bool, stratum.Reason) {
	if w.upstream != "" && w.fullPool != lj.pool {
		w.full, w.fullPool = lj.sess.Pool().User+"."+w.upstream, lj.pool
	}
	us := upstream.Submit{
		Worker:     w.full,
		JobID:      lj.poolJob.Notify.JobID,
		NTime:      sub.NTime,
		Nonce:      sub.Nonce,
		Version:    sub.Version,
		HasVersion: sub.HasVersion,
		Difficulty: lj.diff,
		Conn:       lj.poolJob.Conn,
	}
	// Pool extranonce2 = pad ‖ prefix ‖ miner's extranonce2. The pad is
	// already in the miner's coinb1 (see lane.buildJob): zeros.
	n := lj.pad
	n += copy(us.Extranonce2[n:], m.en1)
	n += copy(us.Extranonce2[n:], sub.Extranonce2)
	us.Extranonce2Len = uint8(n)
	pc := lj.feed.route.pool(lj.pool)
	m.srv.inflight.Add(1)
	if err := lj.sess.Submit(&us); err != nil {
		m.srv.inflight.Add(-1)
		return false, stratum.ReasonNoUpstream
	}
	pc.forwarded.Inc()
	pc.forwardedDiff.Add(lj.diff)
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
	m.shares().rejected[r].Inc()
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
