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
	addr   string       // where the next dial goes
	local  *net.TCPAddr // source address, or nil
	en2    uint64       // extranonce2 counter, for the miner's whole life
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
			m.addr = reconnectAddr(m.addr, s.reconnect)
			wait := min(time.Duration(s.reconnect.WaitSeconds)*time.Second, maxReconnectWait)
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
	en1         []byte
	en2Size     int
	mask        uint32 // negotiated version-rolling mask; 0: none
	diff        float64
	subscribed  bool
	nextEn1     []byte // from mining.set_extranonce, applied at the next notify
	nextEn2Size int
	reconnect   stratum.Reconnect

	authorized atomic.Bool
	work       atomic.Pointer[work]
	wake       chan struct{}

	pmu     sync.Mutex
	pending map[uint64]pendingShare
}

// work is what the grinder hashes: a job with the terms in force when it
// arrived.
type work struct {
	job     *stratum.Job
	en1     []byte
	en2Size int
	mask    uint32
	diff    float64
	target  stratum.Target
}

// pendingShare is a submit awaiting its answer.
type pendingShare struct {
	sent       time.Time
	w          *work
	en2        [stratum.MaxExtranonce2Size]byte
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
	}
	return s.cause
}

func (s *session) readLoop(gctx context.Context, grinder *sync.WaitGroup) string {
	cfg := &s.f.cfg
	var b []byte
	if cfg.VersionRolling {
		b = stratum.AppendConfigureRequest(b, idConfigure, DefaultMinerMask)
	}
	b = stratum.AppendCall(b, idSubscribe, stratum.MethodSubscribe, cfg.UserAgent)
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
	cfg := &s.f.cfg
	switch id {
	case idConfigure:
		if msg.Error == nil {
			if ok, mask, err := stratum.ParseConfigureResult(msg.Result); err == nil && ok {
				s.mask = mask & DefaultMinerMask
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
		s.en1, s.en2Size, s.subscribed = en1, en2Size, true
		var b []byte
		if cfg.ExtranonceSubscribe {
			b = stratum.AppendCall(b, idExtranonce, stratum.MethodExtranonceSubscribe)
		}
		b = stratum.AppendCall(b, idAuthorize, stratum.MethodAuthorize, s.m.worker, cfg.Password)
		if cfg.SuggestDifficulty > 0 {
			b = stratum.AppendCall(b, idSuggest, stratum.MethodSuggestDifficulty, cfg.SuggestDifficulty)
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
			if !cfg.Idle {
				grinder.Add(1)
				go func() {
					defer grinder.Done()
					s.grind(gctx)
				}()
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
	f := s.f
	switch string(msg.Method) {
	case stratum.MethodSetDifficulty:
		d, err := stratum.ParseDifficulty(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		s.diff = d
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
		if s.nextEn1 != nil {
			s.en1, s.en2Size, s.nextEn1 = s.nextEn1, s.nextEn2Size, nil
		}
		s.work.Store(&work{
			job:     job,
			en1:     s.en1,
			en2Size: s.en2Size,
			mask:    s.mask,
			diff:    s.diff,
			target:  stratum.DifficultyTarget(s.diff),
		})
		select {
		case s.wake <- struct{}{}:
		default:
		}
		f.st.jobs.Add(1)
	case stratum.MethodSetExtranonce:
		en1, size, err := stratum.ParseSetExtranonce(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		s.nextEn1, s.nextEn2Size = en1, size
	case stratum.MethodSetVersionMask:
		mask, err := stratum.ParseVersionMask(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		if f.cfg.VersionRolling {
			s.mask = mask & DefaultMinerMask
		}
	case stratum.MethodReconnect:
		r, err := stratum.ParseReconnect(msg.Params)
		if err != nil {
			f.st.malformed.Add(1)
			return ""
		}
		s.reconnect = r
		return CauseReconnect
	case stratum.MethodGetVersion:
		if hasID(msg) {
			s.reply(stratum.AppendResultRaw(nil, msg.ID, f.uaJSON))
		}
	case stratum.MethodShowMessage:
	default:
		if hasID(msg) {
			s.reply(stratum.AppendError(nil, msg.ID, stratum.CodeOther, "Unknown method"))
		}
	}
	return ""
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
	} else {
		result = ResultRejected
		f.st.rejected.add(label)
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
		Extranonce1: hex.EncodeToString(ps.w.en1),
		Extranonce2: hex.EncodeToString(ps.en2[:ps.w.en2Size]),
		NTime:       hex32(ps.w.job.NTime),
		Nonce:       hex32(ps.nonce),
		Result:      result,
		Reason:      reason,
		Difficulty:  ps.w.diff,
		LatencyMS:   float64(lat) / float64(time.Millisecond),
	}
	if ps.hasVersion {
		e.Version = hex32(ps.bits)
	}
	s.f.ledger.write(&e)
}

// submit sends one share; false means stop grinding (closing, or the write
// failed and the session is ending).
func (s *session) submit(w *work, en2 []byte, nonce, bits uint32) bool {
	if !s.f.beginSubmit() {
		return false
	}
	ps := pendingShare{w: w, nonce: nonce, bits: bits, hasVersion: w.mask != 0}
	copy(ps.en2[:], en2)
	s.wmu.Lock()
	s.nextID++
	id := s.nextID
	ps.sent = time.Now()
	s.pmu.Lock()
	if s.pending == nil { // drained: the session is over
		s.pmu.Unlock()
		s.wmu.Unlock()
		s.f.st.pending.Add(-1)
		s.f.st.lost.Add(1)
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
