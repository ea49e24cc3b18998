package sim

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"switchyard/stratum"
)

// Request ids of the handshake; submits count up from firstSubmitID.
const (
	idConfigure = iota + 1
	idSubscribe
	idExtranonce
	idAuthorize
	idSuggest
	firstSubmitID = 100
)

const minerWriteTimeout = 10 * time.Second

// minerMaxLineLen bounds a line from the server. It is below
// stratum.DefaultMaxPoolLineLen because every miner's reader holds a buffer
// this big (16 KiB × 30k miners is already 480 MiB); a notify of ours is
// about 1.6 KiB, and 16 KiB fits a coinbase with a hundred payout outputs.
const minerMaxLineLen = 16 << 10

// lostDisconnect is the ledger reason of a share whose connection ended
// before its answer (CauseClosed when Fleet.Close ended it).
const lostDisconnect = "disconnect"

// miner is one simulated ASIC: it dials, runs a session until the
// connection ends, and dials again.
type miner struct {
	f      *Fleet
	idx    int
	worker string
	rate   float64        // shares per second at most; 0: no cap
	cls    *classCounters // the miner's class's counters
	addr   string         // where the next dial goes
	local  *net.TCPAddr   // source address, or nil
	en2    uint64         // extranonce2 counter, for the miner's whole life
}

func (m *miner) run(delay time.Duration) {
	defer m.f.wg.Done()
	ctx, cfg := m.f.ctx, &m.f.cfg
	if !sleepCtx(ctx, delay) {
		return
	}
	for ctx.Err() == nil {
		nc, err := m.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.f.st.dialErrors.Add(1)
			if m.addr != cfg.Addr { // the reconnect target failed: back to the configured address
				m.addr = cfg.Addr
			}
			if !sleepCtx(ctx, jitter(cfg.RetryDelay)) {
				return
			}
			continue
		}
		s := newSession(m, nc)
		cause := s.run()
		m.f.st.disconnects.add(cause)
		switch cause {
		case CauseClosed:
			return
		case CauseReconnect:
			m.f.st.reconnects.Add(1)
			m.addr = s.reconnectTo
			wait := min(time.Duration(s.reconnectWait)*time.Second, maxReconnectWait)
			if !sleepCtx(ctx, wait) {
				return
			}
		default:
			if !sleepCtx(ctx, jitter(cfg.RetryDelay)) {
				return
			}
		}
	}
}

func (m *miner) dial(ctx context.Context) (net.Conn, error) {
	m.f.st.dials.Add(1)
	d := net.Dialer{Timeout: m.f.cfg.DialTimeout}
	if m.local != nil {
		d.LocalAddr = m.local
	}
	return d.DialContext(ctx, "tcp", m.addr)
}

// reconnectAddr applies client.reconnect's host and port to the current
// address; empty ones keep the current host or port.
func reconnectAddr(cur string, r stratum.Reconnect) string {
	host, port, err := net.SplitHostPort(cur)
	if err != nil {
		return cur
	}
	if r.Host != "" {
		host = r.Host
	}
	if r.Port != 0 {
		port = strconv.Itoa(r.Port)
	}
	return net.JoinHostPort(host, port)
}

// session is one connection of a miner: the goroutine that runs it reads
// and handles every line; a grinder goroutine hashes and submits once the
// worker is authorized.
type session struct {
	m  *miner
	f  *Fleet
	nc net.Conn

	wmu    sync.Mutex // serialises writes and request ids
	wbuf   []byte
	nextID uint64

	causeOnce sync.Once
	cause     string // why the session ended; set once by fail

	// Owned by the reading goroutine.
	en1           []byte
	en2Size       int
	rolling       bool   // the session opened with mining.configure
	mask          uint32 // negotiated version-rolling mask; 0: none
	diff          float64
	nextDiff      float64 // cgminer: set_difficulty for the next notify, and
	diffAfter     float64 // the one after it
	subscribed    bool
	xnSubscribed  bool   // mining.extranonce.subscribe was sent
	nextEn1       []byte // from mining.set_extranonce, applied at the next notify
	nextEn2Size   int
	lastJob       *stratum.Job
	reconnectTo   string // client.reconnect's target and wait, as the firmware takes them
	reconnectWait int

	authorized atomic.Bool
	work       atomic.Pointer[work]
	wake       chan struct{}

	// The work the reading goroutine stored last and whether the grinder
	// took it; until it does, the next work inherits its demands.
	jobMu  sync.Mutex
	latest *work
	taken  bool

	epoch atomic.Uint64              // bumped when a notify makes earlier work stale
	live  atomic.Pointer[extranonce] // ESP-Miner: the extranonce of the next work item

	pmu     sync.Mutex
	pending map[uint64]pendingShare
}

// work is what the grinder hashes: a job with the terms in force when it
// arrived. It is not changed once stored.
type work struct {
	job     *stratum.Job
	en1     []byte
	en2Size int
	mask    uint32
	diff    float64
	target  stratum.Target

	// Firmware only (see firmware): drop the item in hand for this work
	// at once; restart extranonce2 at 0; shares of work with an earlier
	// epoch are stale.
	abandon, resetEn2 bool
	epoch             uint64
}

// extranonce is an extranonce1 and extranonce2 size.
type extranonce struct {
	en1  []byte
	size int
}

// pendingShare is a submit awaiting its answer.
type pendingShare struct {
	sent       time.Time
	w          *work
	en1        []byte // the work item's
	en2        [stratum.MaxExtranonce2Size]byte
	en2Size    int
	nonce      uint32
	bits       uint32
	hasVersion bool
}

func newSession(m *miner, nc net.Conn) *session {
	return &session{
		m:       m,
		f:       m.f,
		nc:      nc,
		nextID:  firstSubmitID - 1,
		diff:    1, // until the pool's first mining.set_difficulty
		wake:    make(chan struct{}, 1),
		pending: make(map[uint64]pendingShare),
	}
}

// fail ends the session for cause; the first cause wins.
func (s *session) fail(cause string) {
	s.causeOnce.Do(func() {
		s.cause = cause
		s.nc.Close()
	})
}

// run runs the session until the connection ends and returns why.
func (s *session) run() string {
	f := s.f
	f.st.up.Add(1)
	defer f.st.up.Add(-1)
	stop := context.AfterFunc(f.ctx, func() { s.fail(CauseClosed) })
	defer stop()
	hs := time.AfterFunc(f.cfg.HandshakeTimeout, func() {
		if !s.authorized.Load() {
			s.fail(CauseHandshakeTimeout)
		}
	})
	defer hs.Stop()

	gctx, gcancel := context.WithCancel(f.ctx)
	var grinder sync.WaitGroup
	cause := s.readLoop(gctx, &grinder)
	s.fail(cause)
	gcancel()
	grinder.Wait()
	s.drainPending()
	if s.authorized.Load() {
		f.st.ready.Add(-1)
		s.m.cls.ready.Add(-1)
	}
	return s.cause
}

func (s *session) readLoop(gctx context.Context, grinder *sync.WaitGroup) string {
	fw := &s.f.fw
	var b []byte
	if s.rolling = fw.configures(&s.f.cfg); s.rolling {
		b = stratum.AppendConfigureRequest(b, idConfigure, fw.askMask)
	}
	if !s.rolling || !fw.configureFirst {
		b = s.appendSubscribe(b)
		if fw.authorizeEarly {
			b = s.appendAuthorize(b)
		}
	}
	if err := s.write(b); err != nil {
		return classify(err)
	}
	lr := stratum.NewLineReader(s.nc, minerMaxLineLen)
	var msg stratum.Message
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return classify(err)
		}
		if err := msg.Decode(line); err != nil {
			s.f.st.malformed.Add(1)
			continue
		}
		var cause string
		if msg.IsResponse() {
			cause = s.response(&msg, gctx, grinder)
		} else {
			cause = s.notification(&msg)
		}
		if cause != "" {
			return cause
		}
	}
}

// response handles the answer to one of our requests; a non-empty result
// ends the session with that cause.
func (s *session) response(msg *stratum.Message, gctx context.Context, grinder *sync.WaitGroup) string {
	id, err := stratum.IntParam(msg.ID)
	if err != nil {
		s.f.st.malformed.Add(1)
		return ""
	}
	cfg, fw := &s.f.cfg, &s.f.fw
	switch id {
	case idConfigure:
		if msg.Error == nil {
			if ok, mask, err := stratum.ParseConfigureResult(msg.Result); err == nil && ok {
				s.mask = mask & fw.askMask
			}
		}
		if fw.configureFirst {
			// Refused or not, the firmware goes on without rolling, as
			// cgminer's gekko build does (its other builds give up on
			// the pool) and bosminer's V2 translation reports.
			if err := s.write(s.appendSubscribe(nil)); err != nil {
				return classify(err)
			}
		}
	case idSubscribe:
		if msg.Error != nil {
			return CauseProtocol
		}
		en1, en2Size, err := stratum.ParseSubscribeResult(msg.Result)
		if err != nil {
			return CauseProtocol
		}
		if en2Size < fw.minEn2 {
			s.f.st.refused.Add(1)
			return CauseExtranonce2Size
		}
		s.en1, s.en2Size, s.subscribed = en1, en2Size, true
		if fw.setExtranonce == xnNextWork {
			s.live.Store(&extranonce{en1, en2Size})
		}
		var b []byte
		if !fw.afterAuthorize {
			b = s.appendExtranonceSubscribe(b)
		}
		if !fw.authorizeEarly {
			b = s.appendAuthorize(b)
		}
		if !fw.afterAuthorize {
			b = s.appendSuggest(b)
		}
		if err := s.write(b); err != nil {
			return classify(err)
		}
	case idAuthorize:
		if msg.Error != nil || !stratum.IsTrue(msg.Result) {
			return CauseAuthFailed
		}
		if !s.authorized.Swap(true) {
			s.f.st.ready.Add(1)
			s.m.cls.ready.Add(1)
			if !cfg.Idle {
				grinder.Add(1)
				go func() {
					defer grinder.Done()
					s.grind(gctx)
				}()
			}
			if fw.afterAuthorize {
				if b := s.appendExtranonceSubscribe(s.appendSuggest(nil)); len(b) > 0 {
					if err := s.write(b); err != nil {
						return classify(err)
					}
				}
			}
		}
	case idExtranonce, idSuggest:
		// Either answer is fine: a pool that refuses simply will not send
		// mining.set_extranonce or will keep its own difficulty.
	default:
		s.answer(uint64(id), msg)
	}
	return ""
}

// notification handles a method call from the server.
func (s *session) notification(msg *stratum.Message) string {
	f, fw := s.f, &s.f.fw
	switch string(msg.Method) {
	case stratum.MethodSetDifficulty:
		d, err := stratum.ParseDifficulty(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		f.st.difficulties.Add(1)
		s.setDifficulty(d)
	case stratum.MethodNotify:
		var n stratum.Notify
		if err := n.Decode(msg.Params); err != nil || !s.subscribed {
			f.st.malformed.Add(1)
			return ""
		}
		job, err := stratum.NewJob(&n)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		s.newJob(job)
		if job.Clean {
			f.st.cleanJobs.Add(1)
		}
		f.st.jobs.Add(1)
	case stratum.MethodSetExtranonce:
		if fw.setExtranonce == xnIgnore {
			return ""
		}
		en1, size, err := stratum.ParseSetExtranonce(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		switch {
		case fw.setExtranonce == xnNextWork:
			s.en1, s.en2Size = en1, size
			s.live.Store(&extranonce{en1, size})
		case fw.setExtranonce == xnNextNotify || s.xnSubscribed:
			s.nextEn1, s.nextEn2Size = en1, size
		}
	case stratum.MethodSetVersionMask:
		if !fw.versionMask {
			return ""
		}
		mask, err := stratum.ParseVersionMask(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		if s.rolling {
			s.mask = mask & fw.askMask // captured by the next notify
		}
	case stratum.MethodReconnect:
		r, err := stratum.ParseReconnect(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		addr, wait, ok := fw.reconnectTarget(s.m.addr, f.cfg.Addr, r)
		if !ok {
			return ""
		}
		s.reconnectTo, s.reconnectWait = addr, wait
		return CauseReconnect
	case stratum.MethodGetVersion:
		if !fw.getVersion {
			s.unknownMethod(msg)
		} else if hasID(msg) {
			s.reply(stratum.AppendResultRaw(nil, msg.ID, f.uaJSON))
		}
	case stratum.MethodShowMessage:
		if fw.showMessageAck && hasID(msg) {
			s.reply(stratum.AppendResult(nil, msg.ID, true))
		}
	case methodPing:
		switch {
		case fw.ping == pingResult && hasID(msg):
			s.reply(stratum.AppendResultRaw(nil, msg.ID, []byte(`"pong"`)))
		case fw.ping == pingMethod && hasID(msg):
			// ESP-Miner STRATUM_V1_pong: a "pong" call carrying the ping's id.
			b := append([]byte(`{"id":`), msg.ID...)
			s.reply(append(b, `,"method":"pong","params":[]}`+"\n"...))
		case fw.ping == pingUnknown:
			s.unknownMethod(msg)
		}
	default:
		s.unknownMethod(msg)
	}
	return ""
}

// unknownMethod answers a call the firmware does not know: stratumsim's
// own miners with an error, real firmware not at all.
func (s *session) unknownMethod(msg *stratum.Message) {
	if s.f.fw.unknownError && hasID(msg) {
		s.reply(stratum.AppendError(nil, msg.ID, stratum.CodeOther, "Unknown method"))
	}
}

// setDifficulty takes mining.set_difficulty d: for the next notify, and
// with cgminer one per notify (parse_diff: "We can only change one diff
// per notify so assume diffs are being stacked for successive notifies").
func (s *session) setDifficulty(d float64) {
	switch {
	case !s.f.fw.stackDiff:
		s.diff = d
	case s.nextDiff > 0:
		s.diffAfter = d
	default:
		s.nextDiff = d
	}
}

// newJob makes job the work to hash, with the terms in force now, and
// tells the grinder.
func (s *session) newJob(job *stratum.Job) {
	fw := &s.f.fw
	if s.nextEn1 != nil {
		s.en1, s.en2Size, s.nextEn1 = s.nextEn1, s.nextEn2Size, nil
	}
	if fw.stackDiff && s.nextDiff > 0 {
		s.diff, s.nextDiff, s.diffAfter = s.nextDiff, s.diffAfter, 0
	}
	c := jobChange{
		clean:    job.Clean,
		newID:    s.lastJob == nil || s.lastJob.ID != job.ID,
		newBlock: s.lastJob == nil || s.lastJob.PrevHash != job.PrevHash,
	}
	s.lastJob = job
	if fw.invalidates(c) {
		s.epoch.Add(1)
	}
	w := &work{
		job:      job,
		en1:      s.en1,
		en2Size:  s.en2Size,
		mask:     s.mask,
		diff:     s.diff,
		target:   stratum.DifficultyTarget(s.diff),
		abandon:  fw.abandons(c),
		resetEn2: fw.resetsExtranonce2(c),
		epoch:    s.epoch.Load(),
	}
	s.jobMu.Lock()
	if s.latest != nil && !s.taken {
		w.abandon = w.abandon || s.latest.abandon
		w.resetEn2 = w.resetEn2 || s.latest.resetEn2
	}
	s.latest, s.taken = w, false
	s.work.Store(w)
	s.jobMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeWork returns the latest work for the grinder to start on.
func (s *session) takeWork() *work {
	s.jobMu.Lock()
	defer s.jobMu.Unlock()
	s.taken = true
	return s.latest
}

func (s *session) appendSubscribe(b []byte) []byte {
	if s.f.fw.subscribeNull {
		return stratum.AppendCall(b, idSubscribe, stratum.MethodSubscribe, s.f.cfg.UserAgent, nil)
	}
	return stratum.AppendCall(b, idSubscribe, stratum.MethodSubscribe, s.f.cfg.UserAgent)
}

func (s *session) appendAuthorize(b []byte) []byte {
	return stratum.AppendCall(b, idAuthorize, stratum.MethodAuthorize, s.m.worker, s.f.cfg.Password)
}

func (s *session) appendExtranonceSubscribe(b []byte) []byte {
	if !s.f.cfg.ExtranonceSubscribe || !s.f.fw.extranonceSub {
		return b
	}
	s.xnSubscribed = true
	return stratum.AppendCall(b, idExtranonce, stratum.MethodExtranonceSubscribe)
}

func (s *session) appendSuggest(b []byte) []byte {
	if d := s.f.cfg.SuggestDifficulty; d > 0 && s.f.fw.suggest {
		return stratum.AppendCall(b, idSuggest, stratum.MethodSuggestDifficulty, d)
	}
	return b
}

func hasID(m *stratum.Message) bool { return len(m.ID) > 0 && string(m.ID) != "null" }

func (s *session) reply(b []byte) {
	if err := s.write(b); err != nil {
		s.fail(classify(err))
	}
}

// answer settles a submit: accepted, or rejected with a label.
func (s *session) answer(id uint64, msg *stratum.Message) {
	now := time.Now()
	s.pmu.Lock()
	ps, ok := s.pending[id]
	delete(s.pending, id)
	s.pmu.Unlock()
	if !ok {
		s.f.st.malformed.Add(1) // an answer to nothing we asked
		return
	}
	f := s.f
	lat := now.Sub(ps.sent)
	if now.Sub(f.start) >= f.cfg.Warmup {
		f.lat.record(lat)
	}
	label := ""
	switch {
	case msg.Error != nil:
		label = f.rejectLabel(stratum.ErrorParam(msg.Error))
	case !stratum.IsTrue(msg.Result):
		label = LabelResultFalse
	}
	result := ResultAccepted
	if label == "" {
		f.st.accepted.Add(1)
		f.st.acceptedDiff.Add(ps.w.diff)
		f.st.acceptedWork.Add(ps.w.diff * hashesPerDifficulty)
		s.m.cls.answered(ps.w.diff, true)
	} else {
		s.m.cls.answered(ps.w.diff, false)
		result = ResultRejected
		f.st.rejected.add(label)
		if label == stratum.ReasonDuplicate.String() {
			f.st.duplicates.Add(1)
		}
	}
	f.st.pending.Add(-1)
	s.log(&ps, result, label, lat)
}

// drainPending counts the shares still unanswered as lost.
func (s *session) drainPending() {
	reason := lostDisconnect
	if s.cause == CauseClosed {
		reason = CauseClosed
	}
	s.pmu.Lock()
	pending := s.pending
	s.pending = nil
	s.pmu.Unlock()
	for _, ps := range pending {
		s.f.st.lost.Add(1)
		s.m.cls.lost.Add(1)
		s.f.st.pending.Add(-1)
		s.log(&ps, ResultLost, reason, 0)
	}
}

func (s *session) log(ps *pendingShare, result, reason string, lat time.Duration) {
	if s.f.ledger == nil {
		return
	}
	e := LedgerEntry{
		T:           time.Now(),
		Conn:        uint64(s.m.idx),
		Worker:      s.m.worker,
		JobID:       ps.w.job.ID,
		Extranonce1: hex.EncodeToString(ps.en1),
		Extranonce2: hex.EncodeToString(ps.en2[:ps.en2Size]),
		NTime:       hex32(ps.w.job.NTime),
		Nonce:       hex32(ps.nonce),
		Result:      result,
		Reason:      reason,
		Difficulty:  ps.w.diff, // the work item's, not the latest set_difficulty
		LatencyMS:   float64(lat) / float64(time.Millisecond),
	}
	if ps.hasVersion {
		e.Version = hex32(ps.bits)
	}
	s.f.ledger.write(&e)
}

// submit sends one share of w found with en1 and en2; false means stop
// grinding (closing, or the write failed and the session is ending). A
// share of work a notify made stale is counted and not sent; the check is
// made under the write lock, so it holds for every submit written after
// anything the reading goroutine writes once it took that notify.
func (s *session) submit(w *work, en1, en2 []byte, nonce, bits uint32) bool {
	ps := pendingShare{w: w, en1: en1, en2Size: len(en2), nonce: nonce, bits: bits, hasVersion: w.mask != 0}
	copy(ps.en2[:], en2)
	s.wmu.Lock()
	if w.epoch != s.epoch.Load() {
		s.wmu.Unlock()
		s.f.st.unsubmitted.add(UnsubmittedStale)
		return true
	}
	if !s.f.beginSubmit() {
		s.wmu.Unlock()
		return false
	}
	s.f.st.work.Add(w.diff * hashesPerDifficulty)
	s.m.cls.submitted(w.diff)
	s.nextID++
	id := s.nextID
	ps.sent = time.Now()
	s.pmu.Lock()
	if s.pending == nil { // drained: the session is over
		s.pmu.Unlock()
		s.wmu.Unlock()
		s.f.st.pending.Add(-1)
		s.f.st.lost.Add(1)
		s.m.cls.lost.Add(1)
		s.log(&ps, ResultLost, lostDisconnect, 0)
		return false
	}
	s.pending[id] = ps
	s.pmu.Unlock()
	s.wbuf = stratum.AppendSubmit(s.wbuf[:0], id, s.m.worker, w.job.ID, en2, w.job.NTime, nonce, bits, ps.hasVersion)
	err := s.writeLocked(s.wbuf)
	s.wmu.Unlock()
	if err != nil {
		s.fail(classify(err))
		return false
	}
	return true
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(b)
}

func (s *session) writeLocked(b []byte) error {
	_ = s.nc.SetWriteDeadline(time.Now().Add(minerWriteTimeout))
	_, err := s.nc.Write(b)
	return err
}

// classify maps a read or write error to a disconnect cause.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CauseEOF
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return CauseReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	case errors.Is(err, stratum.ErrLineTooLong):
		return CauseProtocol
	}
	return CauseError
}

// sleepCtx waits d or until ctx is done, which it reports as false.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	return sleep(d, ctx.Done())
}
