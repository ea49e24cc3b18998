// Package upstream keeps switchyard's connections to its pools: one Session
// per pool (dial, Stratum handshake, job feed, submits with timeouts and
// answers) with its health state machine, and the ranked selector that picks
// the pool miners work for.
//
// A Session is a Stratum v1 client. Run dials the pool (through a bound
// address, an interface, a SOCKS5 proxy and/or TLS, see Pool), sends
// mining.configure (version rolling), mining.subscribe and mining.authorize,
// then reads jobs and answers until the connection fails, and redials with
// backoff until its context ends. Everything it learns reaches the caller
// through a Handler: state changes, jobs and exactly one Verdict per accepted
// Submit.
//
// Health (see State and health.go): EOF or a reset is down at once; a
// submit unanswered past its deadline is suspect (the deadline is learned
// from the pool's own answer times, within [SubmitTimeoutMin,
// SubmitTimeout]: see Deadline), lost after SubmitTimeout, and still no
// timely answer for another SubmitTimeout is down; no mining.notify for
// JobTimeout is suspect and for 1.5×JobTimeout down; a reject ratio above
// MaxRejectRatio (stale answers left out) is suspect, then down once the
// submits in flight are answered. TCP keepalive and TCP_USER_TIMEOUT catch
// silent blackholes when no shares flow.
//
// The Manager runs the ranked pools. Its policy is a pure function, Select
// (selector.go); the Manager gathers what Select needs and carries out what
// it decides.
//
// Concurrency, the rule: no lock is held while calling into another
// package, and the miner side never waits for the pool side.
//
//   - A Session's state is guarded by its own mutex; it calls its Handler
//     (the Manager) with that mutex held, one event at a time, in order.
//   - The Manager's state (pools, ranks, states, the active pool, standby,
//     failback timers) is guarded by Manager.mu, taken after a Session's
//     mutex and never before it. Under it the Manager only calls into this
//     package.
//   - The Manager reaches the miner side (its Sink: Publish, TimeSwitch,
//     AllDown) through an outbox: calls are queued under Manager.mu in the
//     order they were decided and made by the outbox's goroutine with no
//     lock of the Manager held, so the miner side may take its own locks and
//     call back. Verdict is passed straight on, with no Manager lock held.
//   - The miner side reaches the Manager (Lanes, Authorize) through an
//     inbox that Run applies: an event loop never waits for Manager.mu.
package upstream

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"switchyard/stratum"
)

// DefaultVersionMask is the BIP310 version-rolling mask to ask pools for:
// the 16 bits from 13 to 28 that ASICBoost miners roll. Pass it as
// Options.VersionMask; the zero Options does not negotiate rolling.
const DefaultVersionMask uint32 = 0x1fffe000

// Defaults applied by NewSession to zero Options fields.
const (
	DefaultDialTimeout   = 10 * time.Second
	DefaultSubmitTimeout = 3 * time.Second
	// DefaultSubmitTimeoutMin is the floor of the learned submit deadline:
	// a pool answering in 20-50 ms still gets half a second, above the
	// pauses of a healthy pool at a block change (every connection's new
	// job, and its database, at once) and a lost segment's retransmission
	// on a short path (200 ms at least on Linux).
	DefaultSubmitTimeoutMin = 500 * time.Millisecond
	DefaultJobTimeout       = 120 * time.Second
	// DefaultKeepalive and DefaultUserTimeout find a silent link with no
	// share in flight about 4 s after the last byte from the pool: the
	// first probe goes after 2 s of silence and TCP_USER_TIMEOUT, which on
	// Linux decides for keepalive when set, drops the connection once 4 s
	// have passed with a probe unanswered.
	DefaultKeepalive   = 2 * time.Second
	DefaultUserTimeout = 4 * time.Second
	DefaultBackoffMin  = time.Second
	DefaultBackoffMax  = time.Minute
	DefaultQueueLen    = 4096
)

// Errors returned by Session.Submit. A Submit that returns one of them gets
// no Verdict.
var (
	ErrNotLive       = errors.New("upstream: session not live")
	ErrQueueFull     = errors.New("upstream: submit queue full")
	ErrInvalidSubmit = errors.New("upstream: invalid submit")
)

// Pool is what a Session needs to know about its pool. The caller maps its
// configuration to it.
type Pool struct {
	// Name identifies the pool in logs and metric labels.
	Name string
	// URL is stratum+tcp://host:port, or stratum+ssl://host:port or
	// stratum+tls://host:port for TLS.
	URL string
	// User is the account (and worker) the session authorizes as; Submits
	// with an empty Worker are sent under it.
	User string
	// Password goes with User in mining.authorize. It is never logged.
	Password string
	// Bind is the local source IP to dial from; "" lets the kernel choose.
	Bind string
	// Interface is the network interface to dial through (SO_BINDTODEVICE,
	// Linux; needs CAP_NET_RAW).
	Interface string
	// SOCKS5 is the host:port of a SOCKS5 proxy (no authentication) to
	// reach the pool through; the pool's host name is resolved by the proxy.
	SOCKS5 string
	// TLSSkipVerify accepts any certificate chain and host name.
	TLSSkipVerify bool
	// TLSCAFile is a PEM file of CAs trusted in addition to the system roots.
	TLSCAFile string
	// TLSPinSHA256 is the hex SHA-256 of the pool certificate's
	// SubjectPublicKeyInfo (colons between hex pairs allowed). When set, the
	// pin replaces chain and host name verification: a pinned self-signed
	// certificate is accepted, any other key is refused, also with
	// TLSSkipVerify.
	TLSPinSHA256 string

	// Tier and Weight split a route's miners: the live pools of the tier
	// being mined share them by Weight (see Manager). A Weight of 0 is no
	// split: pools of a tier are then ranked failovers, as pools of
	// different tiers always are. Neither says how to reach the pool:
	// changing them keeps its sessions (SetPools).
	Tier   int
	Weight int
}

// link is the part of a Pool that says how to reach it and as whom:
// sessions are kept across a change of anything else.
func (p Pool) link() Pool {
	p.Tier, p.Weight = 0, 0
	return p
}

// Options tune a Session. Zero durations and sizes take the Default*
// values; VersionMask, MaxRejectRatio, RejectWindow and MinExtranonce2Size
// are off when zero.
type Options struct {
	// DialTimeout bounds one connection attempt as a whole: TCP connect
	// (also to a dark address), the SOCKS5 exchange and the TLS handshake.
	DialTimeout time.Duration
	// SubmitTimeout is how long the pool has to answer a submit before the
	// share is lost, and each handshake request; it is also the ceiling of
	// the submit deadline.
	SubmitTimeout time.Duration
	// SubmitTimeoutMin is the floor of the submit deadline. The deadline
	// is deadlineFactor (4) times the 95th percentile of the pool's last
	// 64 answer times, within [SubmitTimeoutMin, SubmitTimeout]; until 8
	// answers are known it is SubmitTimeout. A share unanswered past it
	// makes the session suspect, and stays pending until SubmitTimeout.
	// SubmitTimeoutMin >= SubmitTimeout turns the learning off.
	SubmitTimeoutMin time.Duration
	// JobTimeout is how long the pool may go without a mining.notify before
	// the session is suspect (and down after half as long again).
	JobTimeout time.Duration
	// Keepalive is the TCP keepalive idle time and probe interval (3
	// probes); negative disables keepalive.
	Keepalive time.Duration
	// UserTimeout is TCP_USER_TIMEOUT: how long written data may stay
	// unacknowledged before the kernel drops the connection; negative
	// leaves the kernel default.
	UserTimeout time.Duration
	// BackoffMin and BackoffMax bound the redial delay: it doubles after
	// each failed connection, with jitter, and starts again from BackoffMin
	// after a connection that was live for at least BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// VersionMask is the version-rolling mask asked for with
	// mining.configure (DefaultVersionMask); 0 sends no mining.configure.
	VersionMask uint32
	// MinExtranonce2Size refuses pools whose extranonce2 is smaller (the
	// caller needs room for its per-miner prefix); 0 accepts any size.
	MinExtranonce2Size int
	// MaxRejectRatio and RejectWindow: when more than MaxRejectRatio of the
	// last RejectWindow answered submits were rejected, the session is not
	// live. Either zero disables the check.
	MaxRejectRatio float64
	RejectWindow   int
	// QueueLen is the capacity of the submit queue.
	QueueLen int
	// UserAgent is sent with mining.subscribe and answers
	// client.get_version; default "switchyard/<module version>".
	UserAgent string
	// Log receives the session's log lines; the zero Logger discards them.
	Log zerolog.Logger
	// Now replaces time.Now for timestamps (Job.Received, RTT, timeouts).
	Now func() time.Time
}

// Handler receives a Session's events. Calls for one Session are made one
// at a time, in the order the events happened, with the Session's lock held:
// methods must return quickly and must not block. When SessionState runs,
// State already returns the new state.
//
// No Session method waits for that lock (State, Current and Extranonce are
// atomic loads, Submit and Authorize use their own short locks), so a
// Handler may call them, and may take a lock of its own under which other
// goroutines call them.
//
// Pointers passed to a Handler are valid only during the call, except *Job,
// which is immutable and may be kept.
type Handler interface {
	// SessionState reports every change of state with its cause (see
	// Cause): CauseDial with the error as detail, CauseEOF,
	// CauseSubmitTimeout with the send time of the oldest unanswered share
	// as Since, and so on.
	SessionState(s *Session, st State, why Why)
	// SessionJob delivers a new job. The first job of a connection is
	// delivered just before the SessionState(StateLive) that it enables;
	// later ones as they arrive, while live or suspect.
	SessionJob(s *Session, j *Job)
	// SessionVerdict ends a Submit: accepted, rejected by the pool, or lost.
	// It is called exactly once for every Submit that returned nil.
	SessionVerdict(s *Session, r *Verdict)
}

// Job is one pool job with everything a proxy needs to re-issue it. A Job
// is never changed after it is delivered.
type Job struct {
	Notify          *stratum.Notify // as the pool sent it
	Difficulty      float64         // pool difficulty for its shares: the last set_difficulty before the notify, or before its delivery for a connection's first job (1 if none)
	Extranonce1     []byte          // the connection's extranonce1 for this job; do not modify
	Extranonce2Size int             // the pool's extranonce2 size, bytes
	VersionMask     uint32          // version-rolling mask agreed with the pool; 0: no rolling
	Received        time.Time
	Conn            uint64 // the connection (1, 2, … per Session) that delivered the job
}

// Submit is one share to forward. It is a value: Session.Submit copies it,
// so the caller may reuse it at once.
type Submit struct {
	Ticket         uint64 // the caller's id, returned in the Verdict
	Worker         string // worker name for the pool; "" sends Pool.User
	JobID          string
	Extranonce2    [stratum.MaxExtranonce2Size]byte // the full extranonce2 (pad ‖ prefix ‖ miner's) in its first Extranonce2Len bytes
	Extranonce2Len uint8
	NTime          uint32
	Nonce          uint32
	Version        uint32 // rolled version bits, sent when HasVersion
	HasVersion     bool
	Difficulty     float64 // the pool difficulty the share was checked against, for the caller's accounting
	// Conn is Job.Conn of the share's job; a share whose job came from an
	// earlier connection is lost (upstream_down) rather than sent to a
	// pool that never issued it. 0: unchecked.
	Conn uint64
}

// Verdict is the outcome of one Submit.
type Verdict struct {
	Submit
	Accepted bool
	// Reason is ReasonNone when accepted, ReasonPoolRejected when the pool
	// refused the share, ReasonSubmitTimeout when it did not answer in
	// time, ReasonUpstreamDown when the connection ended first (or the share
	// never left the queue).
	Reason stratum.Reason
	// Code and Message are the pool's error when it rejected the share;
	// zero and "" when it answered false without an error, or the share
	// was lost.
	Code    int
	Message string
	// RTT is the time from writing the submit to its answer; zero when lost.
	RTT time.Duration
}

// Session is one Stratum v1 client connection to one pool, redialed as
// needed by Run. Its methods are safe for concurrent use.
//
// Invariant: every Submit that returns nil is answered by exactly one
// Handler.SessionVerdict — when the pool answers, when SubmitTimeout passes
// (ReasonSubmitTimeout), or when the connection or Run ends with it still
// queued or in flight (ReasonUpstreamDown). Late answers are logged and
// dropped.
type Session struct {
	pool Pool
	lane int
	opts Options
	h    Handler
	log  zerolog.Logger
	now  func() time.Time

	ep    endpoint
	tls   *tlsSetup
	setup error // a Pool problem found by NewSession; every dial fails with it

	tick        time.Duration // health check period
	stableAfter time.Duration // live this long resets the backoff

	queue    chan Submit
	authKick chan struct{} // Authorize → writer: names to send

	// qmu orders Submit (read side) against state changes (write side),
	// so no Submit is queued after the session went down and drained it.
	qmu     sync.RWMutex
	state   atomic.Uint32 // State
	current atomic.Pointer[Job]
	en      atomic.Pointer[extranonce]
	nextID  atomic.Uint64 // request ids, never reused by the session
	running atomic.Bool
	cause   atomic.Uint32 // Cause of the latest state change
	// deadline mirrors lat.deadline; answering and lastAnswer are set at
	// each answer (see noteAnswer).
	deadline   atomic.Int64
	answering  atomic.Bool
	lastAnswer atomic.Int64 // unix ns; 0: never

	// mu guards the fields below and the current conn's state; Handler
	// methods are called with it held.
	mu      sync.Mutex
	pending map[uint64]pendingSubmit
	// pendingPeak is the most submits pending at once since pending was
	// made (see shrinkPending).
	pendingPeak int
	rejects     rejectWindow
	conns       uint64  // connections made, numbering them from 1
	res         Verdict // reused for SessionVerdict: no allocation per answer
	// lat learns the pool's answer time and holds the submit deadline.
	lat answerLatency
	// late counts submits timed out since the last log line about them,
	// logged at lateLogAt (see logLate).
	late      int
	lateLogAt time.Time

	// wmu guards the extra worker names (lock order: mu, then wmu).
	wmu       sync.Mutex
	workers   map[string]*workerAuth
	workerIDs map[uint64]string
}

type extranonce struct {
	en1  []byte
	size int
}

type pendingSubmit struct {
	sub  Submit
	sent time.Time
}

type workerAuth struct {
	conn uint64 // connection serial it was last sent on; 0: never
	id   uint64
}

// NewSession returns a Session for pool p. lane is the caller's index for
// it, kept for Lane and logs. h must not be nil. Nothing happens until Run.
// NewSession parses the URL and pin and reads TLSCAFile; a problem with
// them makes every dial fail with a reason that names it ("dial: pool url
// …", "dial: tls ca file: …").
func NewSession(p Pool, lane int, opts Options, h Handler) *Session {
	setDefaults(&opts)
	s := &Session{
		pool:      p,
		lane:      lane,
		opts:      opts,
		h:         h,
		now:       opts.Now,
		queue:     make(chan Submit, opts.QueueLen),
		authKick:  make(chan struct{}, 1),
		pending:   make(map[uint64]pendingSubmit),
		workers:   make(map[string]*workerAuth),
		workerIDs: make(map[uint64]string),
	}
	s.log = opts.Log.With().Str("component", "upstream").Str("pool", p.Name).Int("lane", lane).Logger()
	s.tick = healthTick(opts.SubmitTimeoutMin, opts.SubmitTimeout, opts.JobTimeout)
	s.lat.init(opts.SubmitTimeoutMin, opts.SubmitTimeout)
	s.deadline.Store(int64(s.lat.deadline))
	s.stableAfter = opts.BackoffMax
	s.rejects.init(opts.RejectWindow)
	s.state.Store(uint32(StateDown))
	s.ep, s.setup = parseURL(p.URL)
	if s.setup == nil && s.ep.tls {
		s.tls, s.setup = newTLSSetup(p)
	}
	return s
}

func setDefaults(o *Options) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.SubmitTimeout, DefaultSubmitTimeout)
	def(&o.SubmitTimeoutMin, DefaultSubmitTimeoutMin)
	o.SubmitTimeoutMin = min(o.SubmitTimeoutMin, o.SubmitTimeout)
	def(&o.JobTimeout, DefaultJobTimeout)
	def(&o.Keepalive, DefaultKeepalive)
	def(&o.UserTimeout, DefaultUserTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.MaxRejectRatio <= 0 || o.RejectWindow <= 0 {
		o.MaxRejectRatio, o.RejectWindow = 0, 0
	}
	if o.UserAgent == "" {
		o.UserAgent = "switchyard/" + moduleVersion()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Pool returns the pool the session was made for.
func (s *Session) Pool() Pool { return s.pool }

// Lane returns the index given to NewSession.
func (s *Session) Lane() int { return s.lane }

// State returns the session's current state.
func (s *Session) State() State { return State(s.state.Load()) }

// Cause returns the cause of the session's latest state change.
func (s *Session) Cause() Cause { return Cause(s.cause.Load()) }

// Deadline returns the submit deadline in force: a share unanswered this
// long makes the session suspect. It is learned from the pool's answer
// times (see Options.SubmitTimeoutMin) and is SubmitTimeout until enough
// are known.
func (s *Session) Deadline() time.Duration { return time.Duration(s.deadline.Load()) }

// Answering reports whether the pool has shown it answers in time: its
// latest answer, to a share or a handshake request, came within the
// deadline in force when it arrived, or its late shares were all answered
// before SubmitTimeout (a false alarm). False before any answer.
func (s *Session) Answering() bool { return s.answering.Load() }

// LastAnswer returns when the pool last answered a request of the session;
// zero before the first answer.
func (s *Session) LastAnswer() time.Time {
	if ns := s.lastAnswer.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Current returns the latest job of the current connection, or nil when
// the session is not live or suspect.
func (s *Session) Current() *Job { return s.current.Load() }

// Extranonce returns the extranonce1 and extranonce2 size of the last
// mining.subscribe answer or valid mining.set_extranonce (nil, 0 before
// the first). en1 must not be modified.
func (s *Session) Extranonce() (en1 []byte, en2Size int) {
	if e := s.en.Load(); e != nil {
		return e.en1, e.size
	}
	return nil, 0
}

// Submit queues sub for the pool without blocking. It returns ErrNotLive
// unless the session is live or suspect, ErrQueueFull when the queue is
// full and ErrInvalidSubmit for an empty job id or an extranonce2 longer
// than the array; otherwise the session owes exactly one SessionVerdict for
// it. It does not allocate.
func (s *Session) Submit(sub *Submit) error {
	if sub.JobID == "" || int(sub.Extranonce2Len) > len(sub.Extranonce2) {
		return ErrInvalidSubmit
	}
	s.qmu.RLock()
	defer s.qmu.RUnlock()
	if st := s.State(); st != StateLive && st != StateSuspect {
		return ErrNotLive
	}
	select {
	case s.queue <- *sub:
		return nil
	default:
		return ErrQueueFull
	}
}

// Authorize adds a worker name to authorize with the pool (per-worker
// mode). Each name is sent once per connection, after the pool user's own
// authorization, and again after every reconnect; repeated calls with the
// same name, "" and Pool.User do nothing. The pool's answers are logged.
func (s *Session) Authorize(worker string) {
	if worker == "" || worker == s.pool.User {
		return
	}
	s.wmu.Lock()
	_, known := s.workers[worker]
	if !known {
		s.workers[worker] = &workerAuth{}
	}
	s.wmu.Unlock()
	if !known {
		select {
		case s.authKick <- struct{}{}:
		default:
		}
	}
}

// Run connects to the pool and keeps the session going until ctx is done:
// dial, handshake, read jobs and answers; on any failure it reports the
// state, resolves pending submits as lost, waits (backoff with jitter, or
// the pool's client.reconnect wait) and redials. When ctx is done it closes
// the connection, resolves what is pending as ReasonUpstreamDown, reports
// StateDown ("stopped") unless already down, and returns. Run may be called
// once; a second call logs an error and returns at once.
func (s *Session) Run(ctx context.Context) {
	if !s.running.CompareAndSwap(false, true) {
		s.log.Error().Msg("Session.Run called twice")
		return
	}
	bo := newBackoff(s.opts.BackoffMin, s.opts.BackoffMax)
	redirect := "" // host:port from client.reconnect, for the next dial only
	for ctx.Err() == nil {
		addr := s.ep.addr()
		if redirect != "" {
			addr, redirect = redirect, ""
		}
		s.setStateLocked(StateConnecting, because(CauseDial))
		raw, nc, err := s.dial(ctx, addr)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			why := becauseOf(CauseDial, shortErr(err))
			s.log.Warn().Str("remote", addr).Str("reason", why.String()).Msg("pool dial failed")
			s.setStateLocked(StateDown, why)
			if !sleepCtx(ctx, bo.next()) {
				break
			}
			continue
		}
		s.log.Info().Str("remote", addr).Msg("pool connected")
		out := s.serve(ctx, raw, nc)
		if ctx.Err() != nil {
			break
		}
		if out.liveFor >= s.stableAfter {
			bo.reset()
		}
		wait := bo.next()
		switch {
		case out.refused:
			wait = bo.fail() // straight to the longest delay: redialing will not fix it
		case out.reconnect != nil:
			redirect = out.reconnect.addr
			wait = max(wait, out.reconnect.wait)
		}
		s.log.Info().Str("reason", out.why.String()).Float64("elapsed_s", out.liveFor.Seconds()).
			Float64("retry_in_s", wait.Seconds()).Msg("pool connection ended")
		if !sleepCtx(ctx, wait) {
			break
		}
	}
	s.mu.Lock()
	s.setState(StateDown, because(CauseStopped))
	s.resolveAll(stratum.ReasonUpstreamDown)
	s.release()
	s.mu.Unlock()
}

// release frees what only a running session needs, once Run is over. The
// miners' recent jobs keep a stopped session referenced for as long as
// they are kept (minutes), and a pool that flaps is stopped and started
// many times: the submit queue alone is QueueLen × 96 bytes (384 KiB by
// default). Submit fails with ErrNotLive from here on, before it would
// touch the queue. s.mu must be held.
func (s *Session) release() {
	s.qmu.Lock()
	s.queue = nil
	s.qmu.Unlock()
	s.pending = map[uint64]pendingSubmit{}
	s.pendingPeak = 0
	s.rejects = rejectWindow{}
}

// setState records st and reports it when it changed. s.mu must be held.
func (s *Session) setState(st State, why Why) {
	if s.State() == st {
		return
	}
	s.qmu.Lock()
	s.state.Store(uint32(st))
	s.cause.Store(uint32(why.Cause))
	s.qmu.Unlock()
	if st != StateLive && st != StateSuspect {
		s.current.Store(nil)
	}
	s.h.SessionState(s, st, why)
}

func (s *Session) setStateLocked(st State, why Why) {
	s.mu.Lock()
	s.setState(st, why)
	s.mu.Unlock()
}

// result reports one Submit's outcome. s.mu must be held.
func (s *Session) result(sub *Submit, reason stratum.Reason, code int, msg string, rtt time.Duration) {
	s.res = Verdict{Submit: *sub, Accepted: reason == stratum.ReasonNone, Reason: reason, Code: code, Message: msg, RTT: rtt}
	s.h.SessionVerdict(s, &s.res)
}

// resolveAll ends every submit in flight or still queued with reason.
// The state must already be neither live nor suspect, so that nothing can
// be queued behind the drain. s.mu must be held.
func (s *Session) resolveAll(reason stratum.Reason) {
	for id, p := range s.pending {
		delete(s.pending, id)
		s.result(&p.sub, reason, 0, "", 0)
	}
	s.shrinkPending()
	for {
		select {
		case sub := <-s.queue:
			s.result(&sub, reason, 0, "", 0)
		default:
			return
		}
	}
}

// pendingKeep is the most submits pending at once for which the pending
// map is kept when it empties.
const pendingKeep = 256

// shrinkPending replaces the pending map once it is empty if it held more
// than pendingKeep submits: a map never shrinks, and a dark spell (a
// submit_timeout's worth of a farm's shares) would otherwise pin thousands
// of entries for the session's life. s.mu must be held.
func (s *Session) shrinkPending() {
	if len(s.pending) == 0 && s.pendingPeak > pendingKeep {
		s.pending = make(map[uint64]pendingSubmit)
		s.pendingPeak = 0
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
