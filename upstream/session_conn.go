package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchyard/stratum"
)

// maxBadLines is how many undecodable lines or invalid notifies in a row
// end a connection; fewer are logged and ignored.
const maxBadLines = 5

// maxBatch bounds the bytes the writer gathers before writing.
const maxBatch = 32 << 10

// maxReconnectWait caps the wait a pool may ask for in client.reconnect.
const maxReconnectWait = 5 * time.Minute

// conn is one connection's state; the fields after the mark are guarded by
// s.mu.
type conn struct {
	s      *Session
	serial uint64   // 1, 2, … per Session
	raw    net.Conn // the TCP connection: closing it stops everything
	nc     net.Conn // raw, or the TLS connection over it
	done   chan struct{}
	kick   chan struct{} // ctl has bytes for the writer
	msg    stratum.Message

	// guarded by s.mu
	failed    bool
	why       Why
	refused   bool // refused for good (Cause.RefusedForGood): redial after BackoffMax
	reconnect *reconnectTarget
	ctl       []byte // control lines waiting for the writer

	subID, cfgID, authID   uint64
	subSent, cfgSent       time.Time
	authSent, authorizedAt time.Time
	subscribed, authorized bool
	cfgDone                bool
	en1                    []byte
	en2Size                int
	diff                   float64
	diffSeen               bool        // a mining.set_difficulty came on this connection
	diffWait               *time.Timer // the grace for a first set_difficulty (see diffGrace); nil: not started
	diffWaited             bool        // that grace is over
	mask                   uint32
	pendingJob             *Job // latest job before live, not delivered: takes later set_difficulty, extranonce, mask
	lastJobAt, liveSince   time.Time
	submitSuspectAt        time.Time // zero: not suspect for submit timeouts
	darkSince              time.Time // the send time of the oldest share that was late
	lostLate               bool      // a share was lost (SubmitTimeout) since turning suspect
	jobSuspectAt           time.Time // zero: not suspect for job silence
	rejectingAt            time.Time // zero: reject ratio fine
	badLines               int
}

type reconnectTarget struct {
	addr string
	wait time.Duration
}

// outcome is what Run needs to know about an ended connection.
type outcome struct {
	why       Why
	liveFor   time.Duration
	refused   bool // why.Cause.RefusedForGood()
	reconnect *reconnectTarget
}

// serve runs one connection until it fails or ctx ends.
func (s *Session) serve(ctx context.Context, raw, nc net.Conn) outcome {
	c := &conn{
		s:    s,
		raw:  raw,
		nc:   nc,
		done: make(chan struct{}),
		kick: make(chan struct{}, 1),
		diff: 1,
	}
	s.mu.Lock()
	s.conns++
	c.serial = s.conns
	s.rejects.reset()
	now := s.now()
	if m := s.opts.VersionMask; m != 0 {
		// Configure first, as ASIC firmwares do (BIP310); the answer may
		// come in any order and is never fatal.
		c.cfgID = s.nextID.Add(1)
		c.cfgSent = now
		c.ctl = stratum.AppendConfigureRequest(c.ctl, c.cfgID, m)
	} else {
		c.cfgDone = true
	}
	c.subID = s.nextID.Add(1)
	c.subSent = now
	c.ctl = stratum.AppendCall(c.ctl, c.subID, stratum.MethodSubscribe, s.opts.UserAgent)
	c.kick <- struct{}{}
	why := CauseConnected
	if c.serial > 1 {
		why = CauseReconnected
	}
	s.setState(StateHandshaking, because(why))
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.writeLoop() }()
	go func() { defer wg.Done(); c.healthLoop(ctx) }()
	err := c.readLoop()
	s.mu.Lock()
	c.fail(readReason(err))
	s.mu.Unlock()
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	out := outcome{why: c.why, refused: c.refused, reconnect: c.reconnect}
	if !c.liveSince.IsZero() {
		out.liveFor = s.now().Sub(c.liveSince)
	}
	return out
}

func readReason(err error) Why {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return because(CauseEOF)
	case errors.Is(err, stratum.ErrLineTooLong):
		return because(CauseLineTooLong)
	}
	return becauseOf(CauseRead, shortErr(err))
}

// fail ends the connection once: state down, everything pending lost,
// socket closed. s.mu must be held.
func (c *conn) fail(why Why) {
	if c.failed {
		return
	}
	s := c.s
	c.failed = true
	c.why = why
	c.refused = why.Cause.RefusedForGood()
	if c.diffWait != nil {
		c.diffWait.Stop()
	}
	ev := s.log.Warn()
	if why.Cause == CauseStopped || why.Cause == CauseReconnect {
		ev = s.log.Info()
	}
	ev.Str("reason", why.String()).Int("pending", len(s.pending)).Msg("pool marked down")
	s.setState(StateDown, why)
	s.resolveAll(stratum.ReasonUpstreamDown)
	_ = c.raw.Close() // the raw socket: tls.Conn.Close could block sending close_notify
	close(c.done)
}

// readLoop reads lines until the connection fails.
func (c *conn) readLoop() error {
	lr := stratum.NewLineReader(c.nc, stratum.DefaultMaxPoolLineLen)
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return err
		}
		c.s.mu.Lock()
		if !c.failed {
			c.handle(line)
		}
		failed := c.failed
		c.s.mu.Unlock()
		if failed {
			return nil
		}
	}
}

// handle dispatches one line from the pool. s.mu is held.
func (c *conn) handle(line []byte) {
	s := c.s
	m := &c.msg
	if err := m.Decode(line); err != nil {
		c.bad("undecodable line", err, line)
		return
	}
	if m.IsResponse() {
		c.badLines = 0
		c.answer(m, line)
		return
	}
	switch string(m.Method) {
	case stratum.MethodNotify:
		c.notify(m)
		return // notify counts its own bad lines
	case stratum.MethodSetDifficulty:
		d, err := stratum.ParseDifficulty(m.Params)
		if err != nil {
			c.bad("bad mining.set_difficulty", err, line)
			return
		}
		c.diff, c.diffSeen = d, true
		s.log.Debug().Float64("difficulty", d).Msg("pool difficulty")
		c.tryLive() // a pending first job takes it and may go now
	case stratum.MethodSetExtranonce:
		c.setExtranonce(m, line)
	case stratum.MethodSetVersionMask:
		mask, err := stratum.ParseVersionMask(m.Params)
		if err != nil {
			c.bad("bad mining.set_version_mask", err, line)
			return
		}
		if s.opts.VersionMask == 0 {
			s.log.Debug().Msg("mining.set_version_mask ignored: rolling not negotiated")
			break
		}
		c.mask = mask & s.opts.VersionMask
		s.log.Info().Str("mask", strconv.FormatUint(uint64(c.mask), 16)).Msg("pool changed version mask")
	case stratum.MethodReconnect:
		c.clientReconnect(m, line)
	case stratum.MethodShowMessage:
		msg, _ := stratum.OptionalString(m.Param(0))
		if len(msg) > 256 {
			msg = msg[:256]
		}
		s.log.Info().Str("message", msg).Msg("pool message")
	case stratum.MethodGetVersion:
		if hasID(m) {
			ua := strconv.AppendQuote(nil, s.opts.UserAgent)
			c.send(stratum.AppendResultRaw(nil, m.ID, ua))
		}
	case methodPing:
		// cgminer (util.c, send_pong) answers "pong"; a pool that pings
		// may take silence for a dead client.
		if hasID(m) {
			c.send(stratum.AppendResultRaw(nil, m.ID, []byte(`"pong"`)))
		}
	default:
		if hasID(m) {
			// A request with an id is owed an answer (JSON-RPC): an error
			// rather than the silence a pool could wait on, as switchyard
			// answers its miners' unknown methods. cgminer says nothing.
			c.send(stratum.AppendError(nil, m.ID, stratum.CodeOther, "Unknown method"))
			s.log.Info().Bytes("method", m.Method).Msg("pool request for an unknown method answered with an error")
			break
		}
		s.log.Debug().Bytes("method", m.Method).Msg("pool method ignored")
	}
	c.badLines = 0
}

// methodPing is the pool's liveness probe; the answer is "pong".
const methodPing = "mining.ping"

// hasID reports whether a request from the pool carries an id to answer:
// present and not null (a notification needs no answer).
func hasID(m *stratum.Message) bool { return len(m.ID) > 0 && string(m.ID) != "null" }

// bad logs an unusable line and ends the connection after maxBadLines in a
// row.
func (c *conn) bad(what string, err error, line []byte) {
	c.badLines++
	if len(line) > 200 {
		line = line[:200]
	}
	c.s.log.Warn().Err(err).Bytes("line", line).Int("in_a_row", c.badLines).Msg(what)
	if c.badLines >= maxBadLines {
		c.fail(becauseOf(CauseMalformed, what))
	}
}

// send queues a control line for the writer. s.mu is held.
func (c *conn) send(b []byte) {
	c.ctl = append(c.ctl, b...)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// answer handles a response to one of our requests.
func (c *conn) answer(m *stratum.Message, line []byte) {
	s := c.s
	id, ok := parseID(m.ID)
	if !ok || id == 0 { // our ids start at 1; 0 would match an unsent request
		s.log.Debug().Bytes("id", m.ID).Bytes("error", m.Error).Msg("answer without a usable id ignored")
		return
	}
	now := s.now()
	if p, ok := s.pending[id]; ok {
		delete(s.pending, id)
		s.shrinkPending()
		c.submitAnswer(&p, m, line, now)
		return
	}
	switch id {
	case c.subID:
		s.noteAnswer(now.Sub(c.subSent), now, false)
		c.subscribeAnswer(m, now)
	case c.cfgID:
		s.noteAnswer(now.Sub(c.cfgSent), now, false)
		c.configureAnswer(m)
	case c.authID:
		s.noteAnswer(now.Sub(c.authSent), now, false)
		c.authorizeAnswer(m, now)
	default:
		s.wmu.Lock()
		name, ok := s.workerIDs[id]
		delete(s.workerIDs, id)
		s.wmu.Unlock()
		if ok {
			if m.Error == nil && stratum.IsTrue(m.Result) {
				s.log.Info().Str("worker", name).Msg("worker authorized")
			} else {
				code, msg := stratum.ErrorParam(m.Error)
				s.log.Warn().Str("worker", name).Int("code", code).Str("message", msg).Msg("worker not authorized")
			}
			return
		}
		s.log.Debug().Uint64("id", id).Msg("answer for an unknown or expired id ignored")
	}
}

func parseID(raw []byte) (uint64, bool) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	if len(raw) == 0 || len(raw) > 20 {
		return 0, false
	}
	var n uint64
	for _, b := range raw {
		if b < '0' || b > '9' {
			return 0, false
		}
		d := uint64(b - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func (c *conn) submitAnswer(p *pendingSubmit, m *stratum.Message, line []byte, now time.Time) {
	s := c.s
	rtt := now.Sub(p.sent)
	accepted := m.Error == nil && stratum.IsTrue(m.Result)
	counted := true
	if accepted {
		s.result(&p.sub, stratum.ReasonNone, 0, "", rtt)
	} else {
		code, msg := stratum.ErrorParam(m.Error)
		counted = countsAsRefusal(code, msg, line)
		s.log.Debug().Str("job_id", p.sub.JobID).Int("code", code).Str("message", msg).Bool("stale", !counted).Msg("share rejected by pool")
		s.result(&p.sub, stratum.ReasonPoolRejected, code, msg, rtt)
	}
	c.answered(!accepted, counted, rtt, now)
}

func (c *conn) subscribeAnswer(m *stratum.Message, now time.Time) {
	s := c.s
	if m.Error != nil {
		code, msg := stratum.ErrorParam(m.Error)
		s.log.Warn().Int("code", code).Str("message", msg).Msg("mining.subscribe refused")
		c.fail(because(CauseSubscribeRefused))
		return
	}
	en1, size, err := stratum.ParseSubscribeResult(m.Result)
	if err != nil {
		s.log.Warn().Err(err).Bytes("result", m.Result).Msg("bad mining.subscribe answer")
		c.fail(becauseOf(CauseSubscribeRefused, "bad answer"))
		return
	}
	if size < s.opts.MinExtranonce2Size {
		c.en2TooSmall("mining.subscribe", size)
		return
	}
	c.subscribed = true
	c.en1, c.en2Size = en1, size
	s.en.Store(&extranonce{en1: en1, size: size})
	c.authID = s.nextID.Add(1)
	c.authSent = now
	c.send(stratum.AppendCall(nil, c.authID, stratum.MethodAuthorize, s.pool.User, s.pool.Password))
	s.log.Debug().Int("en1_len", len(en1)).Int("en2_size", size).Msg("subscribed")
}

// en2TooSmall refuses a pool whose extranonce2 (from method) leaves no room
// for the caller's per-miner prefix. Redialing will not change the pool's
// mind: the session waits BackoffMax.
func (c *conn) en2TooSmall(method string, size int) {
	c.s.log.Error().Str("method", method).Int("en2_size", size).Int("en2_size_needed", c.s.opts.MinExtranonce2Size).
		Msg("pool refused: its extranonce2 is smaller than needed")
	c.fail(because(CauseExtranonce2TooSmall))
}

func (c *conn) configureAnswer(m *stratum.Message) {
	s := c.s
	c.cfgDone = true
	rolling, mask := false, uint32(0)
	if m.Error == nil {
		var err error
		rolling, mask, err = stratum.ParseConfigureResult(m.Result)
		if err != nil {
			rolling = false
		}
	}
	if !rolling {
		c.mask = 0
		s.log.Info().Bytes("error", m.Error).Msg("pool does not roll versions")
	} else {
		c.mask = mask & s.opts.VersionMask
		s.log.Info().Str("mask", strconv.FormatUint(uint64(c.mask), 16)).Msg("version rolling agreed")
	}
	c.tryLive()
}

func (c *conn) authorizeAnswer(m *stratum.Message, now time.Time) {
	s := c.s
	if m.Error != nil || !stratum.IsTrue(m.Result) {
		code, msg := stratum.ErrorParam(m.Error)
		s.log.Error().Str("worker", s.pool.User).Int("code", code).Str("message", msg).Msg("pool refused authorization")
		c.fail(because(CauseUnauthorized))
		return
	}
	c.authorized = true
	c.authorizedAt = now
	select { // extra worker names may go now
	case s.authKick <- struct{}{}:
	default:
	}
	c.tryLive()
}

// notify handles mining.notify.
func (c *conn) notify(m *stratum.Message) {
	s := c.s
	n := new(stratum.Notify)
	if err := n.Decode(m.Params); err != nil {
		c.bad("bad mining.notify", err, nil)
		return
	}
	if err := n.Validate(); err != nil {
		c.bad("bad mining.notify", err, nil)
		return
	}
	c.badLines = 0
	now := s.now()
	j := &Job{
		Notify:          n,
		Difficulty:      c.diff,
		Extranonce1:     c.en1,
		Extranonce2Size: c.en2Size,
		VersionMask:     c.mask,
		Received:        now,
		Conn:            c.serial,
	}
	c.lastJobAt = now
	s.log.Debug().Str("job_id", n.JobID).Bool("clean", n.Clean).Float64("difficulty", c.diff).Msg("pool job")
	switch s.State() {
	case StateHandshaking:
		c.pendingJob = j
		c.tryLive()
	case StateLive, StateSuspect:
		s.current.Store(j)
		s.h.SessionJob(s, j)
		if !c.jobSuspectAt.IsZero() {
			c.jobSuspectAt = time.Time{}
			c.maybeLive(CauseJobReceived)
		}
	}
}

func (c *conn) setExtranonce(m *stratum.Message, line []byte) {
	s := c.s
	en1, size, err := stratum.ParseSetExtranonce(m.Params)
	if err != nil {
		// Impossible values: the pool is confused; following it is worse
		// than keeping what we have.
		c.bad("bad mining.set_extranonce ignored", err, line)
		return
	}
	if size < s.opts.MinExtranonce2Size {
		c.en2TooSmall("mining.set_extranonce", size)
		return
	}
	c.en1, c.en2Size = en1, size
	s.en.Store(&extranonce{en1: en1, size: size})
	s.log.Info().Int("en1_len", len(en1)).Int("en2_size", size).Msg("pool changed extranonce")
}

// clientReconnect follows client.reconnect: to the same host name only
// (another port is fine), otherwise to the configured URL.
func (c *conn) clientReconnect(m *stratum.Message, line []byte) {
	s := c.s
	r, err := stratum.ParseReconnect(m.Params)
	if err != nil {
		c.bad("bad client.reconnect ignored", err, line)
		return
	}
	t := &reconnectTarget{addr: s.ep.addr()}
	if r.Host == "" || strings.EqualFold(r.Host, s.ep.host) {
		port := int(s.ep.port)
		if r.Port != 0 {
			port = r.Port
		}
		t.addr = net.JoinHostPort(s.ep.host, strconv.Itoa(port))
	} else {
		s.log.Warn().Str("host", r.Host).Int("port", r.Port).Msg("client.reconnect to another host: redialing the configured pool instead")
	}
	t.wait = min(time.Duration(r.WaitSeconds)*time.Second, maxReconnectWait)
	c.reconnect = t
	s.log.Info().Str("remote", t.addr).Float64("wait_s", t.wait.Seconds()).Msg("pool asked to reconnect")
	c.fail(because(CauseReconnect))
}

// maxDiffGrace bounds diffGrace.
const maxDiffGrace = time.Second

// diffGrace is how long a connection that could go live waits for a first
// mining.set_difficulty before it delivers its first job at difficulty 1:
// a third of SubmitTimeout, at most maxDiffGrace. Pools send the two in
// either order, and not always before the authorize answer: ckpool
// (stratifier.c, update_client) sends the notify, then the difficulty,
// right after the subscribe answer and before it answers the authorize;
// public-pool (StratumV1Client.ts, initStratum) sends set_difficulty, then
// jobs, once subscribed and authorized. A job shared out at difficulty 1
// would be worth next to nothing to the pool, and its shares a flood.
func diffGrace(submitTimeout time.Duration) time.Duration {
	return min(maxDiffGrace, submitTimeout/3)
}

// tryLive goes live once subscribed, authorized, configure settled, a job
// in, and a set_difficulty seen or diffGrace waited for one: the job is
// delivered first, then the state.
func (c *conn) tryLive() {
	s := c.s
	if c.failed || s.State() != StateHandshaking || !c.subscribed || !c.authorized || !c.cfgDone || c.pendingJob == nil {
		return
	}
	if !c.diffSeen && !c.diffWaited {
		if c.diffWait == nil {
			s.log.Debug().Msg("first job before any mining.set_difficulty: waiting for one")
			c.diffWait = time.AfterFunc(diffGrace(s.opts.SubmitTimeout), func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				c.diffWaited = true
				c.tryLive()
			})
		}
		return
	}
	if !c.diffSeen {
		s.log.Warn().Float64("elapsed_s", diffGrace(s.opts.SubmitTimeout).Seconds()).
			Msg("pool sent no mining.set_difficulty: jobs at difficulty 1")
	}
	j := c.pendingJob
	c.pendingJob = nil
	// Not delivered yet: bring it up to date with what the handshake
	// settled after it arrived.
	j.Difficulty, j.Extranonce1, j.Extranonce2Size, j.VersionMask = c.diff, c.en1, c.en2Size, c.mask
	now := s.now()
	c.liveSince, c.lastJobAt = now, now
	s.current.Store(j)
	s.h.SessionJob(s, j)
	s.setState(StateLive, because(CauseAuthorized))
	s.log.Info().Str("job_id", j.Notify.JobID).Float64("difficulty", j.Difficulty).Msg("pool live")
}

// writeLoop writes control lines and queued submits, batching what is
// ready, until the connection fails.
func (c *conn) writeLoop() {
	s := c.s
	buf := make([]byte, 0, maxBatch+1024)
	for {
		select {
		case <-c.done:
			return
		case sub := <-s.queue:
			s.mu.Lock()
			buf = c.collect(buf)
			buf = c.register(buf, &sub)
			buf = c.drain(buf)
			s.mu.Unlock()
		case <-c.kick:
			s.mu.Lock()
			buf = c.collect(buf)
			buf = c.drain(buf)
			s.mu.Unlock()
		case <-s.authKick:
			s.mu.Lock()
			buf = c.workerAuths(buf)
			s.mu.Unlock()
		}
		if len(buf) == 0 {
			continue
		}
		_, err := c.nc.Write(buf)
		buf = buf[:0]
		if err != nil {
			s.mu.Lock()
			c.fail(becauseOf(CauseWrite, shortErr(err)))
			s.mu.Unlock()
			return
		}
	}
}

// collect moves waiting control lines into buf. s.mu is held.
func (c *conn) collect(buf []byte) []byte {
	buf = append(buf, c.ctl...)
	c.ctl = c.ctl[:0]
	return buf
}

// drain registers queued submits while they are ready and fit the batch.
// s.mu is held.
func (c *conn) drain(buf []byte) []byte {
	for len(buf) < maxBatch {
		select {
		case sub := <-c.s.queue:
			buf = c.register(buf, &sub)
		default:
			return buf
		}
	}
	return buf
}

// register gives sub an id, records it as pending and encodes it; on a
// failed connection it is lost at once. s.mu is held.
func (c *conn) register(buf []byte, sub *Submit) []byte {
	s := c.s
	if c.failed || (sub.Conn != 0 && sub.Conn != c.serial) {
		// A share for a job of an earlier connection: its extranonce1
		// is gone with that connection, the pool would refuse it.
		s.result(sub, stratum.ReasonUpstreamDown, 0, "", 0)
		return buf
	}
	id := s.nextID.Add(1)
	s.pending[id] = pendingSubmit{sub: *sub, sent: s.now()}
	s.pendingPeak = max(s.pendingPeak, len(s.pending))
	worker := sub.Worker
	if worker == "" {
		worker = s.pool.User
	}
	return stratum.AppendSubmit(buf, id, worker, sub.JobID, sub.Extranonce2[:sub.Extranonce2Len],
		sub.NTime, sub.Nonce, sub.Version, sub.HasVersion)
}

// workerAuths encodes mining.authorize for every extra worker name not yet
// sent on this connection, once the pool user is authorized. s.mu is held.
func (c *conn) workerAuths(buf []byte) []byte {
	s := c.s
	if c.failed || !c.authorized {
		return buf
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for name, w := range s.workers {
		if w.conn == c.serial {
			continue
		}
		delete(s.workerIDs, w.id)
		w.conn, w.id = c.serial, s.nextID.Add(1)
		s.workerIDs[w.id] = name
		buf = stratum.AppendCall(buf, w.id, stratum.MethodAuthorize, name, s.pool.Password)
	}
	return buf
}

// healthLoop runs the health checks every tick and ends the connection
// when ctx is done.
func (c *conn) healthLoop(ctx context.Context) {
	s := c.s
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ctx.Done():
			s.mu.Lock()
			c.fail(because(CauseStopped))
			s.mu.Unlock()
			return
		case <-t.C:
			s.mu.Lock()
			if !c.failed {
				c.check(s.now())
			}
			s.mu.Unlock()
		}
	}
}
