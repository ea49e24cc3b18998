package upstream

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/metrics"
	"switchyard/stratum"
)

// State is where a Session stands with its pool. String() is also its
// metric label.
//
// The transitions, with the reason reported to Handler.SessionState:
//
//	down        → connecting   Run dials ("dial")
//	connecting  → handshaking  TCP (SOCKS5, TLS) up: the session's first
//	                           connection ("connected"), or a later one
//	                           ("reconnected")
//	connecting  → down         dial failed ("dial: connection refused", "dial: i/o timeout", …)
//	handshaking → live         subscribed, authorized, configure answered or given
//	                           up on, and a first job in, at the difficulty of
//	                           a mining.set_difficulty or after waiting a short
//	                           grace for one ("authorized")
//	handshaking → down         a subscribe or authorize answer later than
//	                           SubmitTimeout ("handshake timeout"); no job
//	                           JobTimeout after authorize ("job_timeout");
//	                           "unauthorized"; "extranonce2_too_small";
//	                           "subscribe refused"; …
//	live        → suspect      a submit unanswered after its deadline (see
//	                           Session.Deadline: SubmitTimeout until the pool's
//	                           answer time is known) ("submit_timeout"); no
//	                           job for JobTimeout ("job_timeout"); reject
//	                           ratio over the window above MaxRejectRatio
//	                           ("rejecting")
//	suspect     → live         every cause cleared: the late shares answered
//	                           before SubmitTimeout, none lost ("late_answered":
//	                           a false alarm), a timely submit answer after
//	                           some were lost ("submit_answered"), a job
//	                           ("job_received")
//	suspect     → down         no timely submit answer SubmitTimeout after
//	                           turning suspect ("submit_timeout"); no job for
//	                           1.5×JobTimeout ("job_timeout"); rejecting and
//	                           the submits in flight answered, or
//	                           SubmitTimeout passed ("rejecting")
//	live/suspect → down        "eof", "read: connection reset by peer",
//	                           "line too long", "write: …", "reconnect"
//	                           (client.reconnect), "malformed: …" (5 bad
//	                           lines in a row), "extranonce2_too_small"
//	                           (mining.set_extranonce), "stopped" (Run's
//	                           context)
//
// Submit is accepted in live and suspect only. Down always resolves every
// pending submit as lost (ReasonUpstreamDown) and is followed by a redial
// after the backoff: BackoffMax at once after a refusal for good (see
// RefusedForGood).
type State uint8

// The states of a Session. A Session that has not run yet is StateDown.
const (
	StateConnecting  State = iota + 1 // dialing
	StateHandshaking                  // connected: subscribe, configure, authorize, first job
	StateLive                         // authorized, jobs flowing, submits answered
	StateSuspect                      // still connected, but something is late or wrong
	StateDown                         // no usable connection; redial pending
)

// stateNames are the metrics package's state labels: one list for both.
var stateNames = [...]string{
	StateConnecting:  metrics.StateConnecting,
	StateHandshaking: metrics.StateHandshaking,
	StateLive:        metrics.StateLive,
	StateSuspect:     metrics.StateSuspect,
	StateDown:        metrics.StateDown,
}

// String returns the state's metric label, e.g. "live".
func (st State) String() string {
	if st >= StateConnecting && st <= StateDown {
		return stateNames[st]
	}
	return "state(" + strconv.Itoa(int(st)) + ")"
}

// States lists every state in declaration order (for metric labels).
func States() []State {
	return []State{StateConnecting, StateHandshaking, StateLive, StateSuspect, StateDown}
}

// healthTick is how often a connection's health is checked: a tenth of the
// shortest timeout (the submit deadline's floor, SubmitTimeout, JobTimeout),
// within [5ms, 250ms], so a timeout is noticed at most 10% late.
func healthTick(floor, submitTimeout, jobTimeout time.Duration) time.Duration {
	d := min(floor, submitTimeout, jobTimeout) / 10
	return min(max(d, 5*time.Millisecond), 250*time.Millisecond)
}

// check runs the timed health rules. s.mu is held.
func (c *conn) check(now time.Time) {
	s := c.s
	st := s.opts.SubmitTimeout
	switch s.State() {
	case StateHandshaking:
		switch {
		case !c.subscribed && now.Sub(c.subSent) >= st:
			s.log.Warn().Str("step", "subscribe").Msg("handshake timeout")
			c.fail(Why{Cause: CauseHandshakeTimeout, Detail: "subscribe", Since: c.subSent})
			return
		case c.authID != 0 && !c.authorized && now.Sub(c.authSent) >= st:
			s.log.Warn().Str("step", "authorize").Msg("handshake timeout")
			c.fail(Why{Cause: CauseHandshakeTimeout, Detail: "authorize", Since: c.authSent})
			return
		case c.authorized && c.pendingJob == nil && now.Sub(c.authorizedAt) >= s.opts.JobTimeout:
			c.fail(Why{Cause: CauseJobTimeout, Since: c.authorizedAt})
			return
		}
		if !c.cfgDone && now.Sub(c.cfgSent) >= st {
			// A pool that does not know mining.configure may say nothing:
			// no rolling, and the handshake goes on.
			c.cfgDone = true
			c.mask = 0
			s.log.Info().Msg("mining.configure unanswered: no version rolling")
			c.tryLive()
		}
	case StateLive, StateSuspect:
		c.checkSubmits(now)
		if !c.failed {
			c.checkJobs(now)
		}
		if !c.failed && !c.rejectingAt.IsZero() && (len(s.pending) == 0 || now.Sub(c.rejectingAt) >= st) {
			c.fail(because(CauseRejecting))
		}
	}
}

// checkSubmits keeps the submit rules: a share older than SubmitTimeout is
// resolved as lost (ReasonSubmitTimeout); the session turns suspect as soon
// as its oldest unanswered share is older than the deadline (Deadline), or
// one was lost; and it is down when no timely answer followed for another
// SubmitTimeout. A share past the deadline but not past SubmitTimeout stays
// pending: if the pool answers it, its verdict counts, and a session whose
// late shares are all answered in time was a false alarm (see answered).
func (c *conn) checkSubmits(now time.Time) {
	s := c.s
	st := s.opts.SubmitTimeout
	expired := 0
	var oldest, oldestLost time.Time // the oldest share still pending, and lost now
	for id, p := range s.pending {
		if now.Sub(p.sent) >= st {
			delete(s.pending, id)
			s.result(&p.sub, stratum.ReasonSubmitTimeout, 0, "", 0)
			expired++
			if oldestLost.IsZero() || p.sent.Before(oldestLost) {
				oldestLost = p.sent
			}
			continue
		}
		if oldest.IsZero() || p.sent.Before(oldest) {
			oldest = p.sent
		}
	}
	s.shrinkPending()
	if expired > 0 {
		c.lostLate = true
		s.logLate(now, expired, c.submitSuspectAt.IsZero())
	}
	dl := s.lat.deadline
	if c.submitSuspectAt.IsZero() && (expired > 0 || (!oldest.IsZero() && now.Sub(oldest) >= dl)) {
		since := oldest
		if !oldestLost.IsZero() && (since.IsZero() || oldestLost.Before(since)) {
			since = oldestLost
		}
		c.submitSuspectAt, c.darkSince = now, since
		s.answering.Store(false)
		if expired == 0 {
			s.log.Warn().Float64("deadline_s", dl.Seconds()).Float64("elapsed_s", now.Sub(since).Seconds()).
				Int("pending", len(s.pending)).Msg("pool answers late: suspect")
		}
		why := Why{Cause: CauseSubmitTimeout, Since: since}
		if expired == 0 {
			why.Detail = "no answer within " + dl.String() // the learned deadline, below SubmitTimeout
		}
		s.setState(StateSuspect, why)
	}
	if !c.submitSuspectAt.IsZero() && now.Sub(c.submitSuspectAt) >= st {
		c.fail(Why{Cause: CauseSubmitTimeout, Since: c.darkSince})
	}
}

// oldestPending is the send time of the oldest share waiting for an
// answer; zero when none is. s.mu is held.
func (s *Session) oldestPending() time.Time {
	var oldest time.Time
	for _, p := range s.pending {
		if oldest.IsZero() || p.sent.Before(oldest) {
			oldest = p.sent
		}
	}
	return oldest
}

// lateLogEvery is how often, at most, a session repeats "pool did not
// answer submits in time" while its pool stays dark.
const lateLogEvery = 30 * time.Second

// logLate logs submits that timed out: at once when the session turns
// suspect (first), otherwise at most once per lateLogEvery, with the
// shares that timed out since the last line, so a dark pool does not
// flood the log at every health tick. s.mu is held.
func (s *Session) logLate(now time.Time, expired int, first bool) {
	s.late += expired
	if !first && now.Sub(s.lateLogAt) < lateLogEvery {
		return
	}
	s.log.Warn().Int("shares", s.late).Float64("elapsed_s", s.opts.SubmitTimeout.Seconds()).Msg("pool did not answer submits in time: lost")
	s.late, s.lateLogAt = 0, now
}

// checkJobs turns suspect after JobTimeout without a notify and down after
// half as long again.
func (c *conn) checkJobs(now time.Time) {
	s := c.s
	jt := s.opts.JobTimeout
	silent := now.Sub(c.lastJobAt)
	switch {
	case silent >= jt+jt/2:
		s.log.Warn().Float64("elapsed_s", silent.Seconds()).Msg("no job from pool")
		c.fail(Why{Cause: CauseJobTimeout, Since: c.lastJobAt})
	case silent >= jt && c.jobSuspectAt.IsZero():
		c.jobSuspectAt = now
		s.log.Warn().Float64("elapsed_s", silent.Seconds()).Msg("no job from pool")
		s.setState(StateSuspect, Why{Cause: CauseJobTimeout, Since: c.lastJobAt})
	}
}

// answered updates health after a pool's answer to a share that was
// still pending, rtt after it was sent. counted says whether the answer
// enters the reject window (see countsAsRefusal). s.mu is held.
func (c *conn) answered(rejected, counted bool, rtt time.Duration, now time.Time) {
	s := c.s
	s.noteAnswer(rtt, now, true)
	if s.opts.RejectWindow > 0 && counted {
		s.rejects.add(rejected)
		if c.rejectingAt.IsZero() && s.rejects.over(s.opts.MaxRejectRatio) {
			c.rejectingAt = now
			s.log.Warn().Int("rejected", s.rejects.rejected).Int("window", s.rejects.n).Msg("pool rejecting shares")
			s.setState(StateSuspect, because(CauseRejecting))
		}
	}
	if c.submitSuspectAt.IsZero() {
		return
	}
	if old := s.oldestPending(); !old.IsZero() && now.Sub(old) >= s.lat.deadline {
		return // more late shares still wait
	}
	cause := CauseSubmitAnswered
	if !c.lostLate {
		// Every late share was answered before SubmitTimeout: the pool
		// was slow for a moment, not dark.
		cause = CauseLateAnswered
		s.answering.Store(true)
		s.log.Info().Float64("elapsed_s", now.Sub(c.darkSince).Seconds()).Msg("pool answered its late shares: false alarm")
	}
	c.submitSuspectAt, c.lostLate = time.Time{}, false
	c.maybeLive(cause)
}

// maybeLive returns from suspect to live when no cause is left.
func (c *conn) maybeLive(cause Cause) {
	if c.submitSuspectAt.IsZero() && c.jobSuspectAt.IsZero() && c.rejectingAt.IsZero() && c.s.State() == StateSuspect {
		c.s.setState(StateLive, because(cause))
	}
}

// Adaptive submit deadline (see Options.SubmitTimeoutMin).
const (
	// latencySamples is how many of the latest share answer times the
	// deadline is learned from.
	latencySamples = 64
	// latencyMinSamples answers must be seen before the deadline leaves
	// SubmitTimeout: below that the quantile says little.
	latencyMinSamples = 8
	// deadlineFactor times the learned quantile is the deadline: a share
	// four times as late as 95% of the recent ones is not jitter.
	deadlineFactor = 4
)

// answerLatency learns a pool's answer time: a ring of the latest share
// answer times and the deadline derived from them, kept up to date at each
// answer without allocating. The zero value (after init) uses the ceiling.
type answerLatency struct {
	ring        [latencySamples]time.Duration
	n, next     int
	floor, ceil time.Duration
	deadline    time.Duration // the deadline in force
	high        time.Duration // the learned quantile (p95); zero until latencyMinSamples
}

func (l *answerLatency) init(floor, ceil time.Duration) {
	l.floor, l.ceil, l.deadline = min(floor, ceil), ceil, ceil
}

// add records one answer time and recomputes the deadline.
func (l *answerLatency) add(d time.Duration) {
	l.ring[l.next] = d
	l.next = (l.next + 1) % latencySamples
	if l.n < latencySamples {
		l.n++
	}
	if l.n < latencyMinSamples {
		return
	}
	var sorted [latencySamples]time.Duration
	copy(sorted[:], l.ring[:l.n])
	slices.Sort(sorted[:l.n])
	l.high = sorted[(l.n*95+99)/100-1] // p95, nearest rank
	l.deadline = min(max(deadlineFactor*l.high, l.floor), l.ceil)
}

// noteAnswer records an answer to one of the session's requests, rtt
// after it was sent: whether it came within the deadline in force (see
// Answering), and, for a share (sample), its time in the deadline. A
// handshake answer is held to SubmitTimeout, not to the deadline learned
// from shares: a pool authorizing more slowly than it answers shares
// (after an outage, many clients at once) would otherwise count as not
// answering until its next share, which an idle better-ranked pool never
// gets, and miners would never fail back to it. s.mu is held.
func (s *Session) noteAnswer(rtt time.Duration, now time.Time, sample bool) {
	limit := s.lat.deadline
	if !sample {
		limit = s.opts.SubmitTimeout
	}
	s.answering.Store(rtt < limit)
	s.lastAnswer.Store(now.UnixNano())
	if sample {
		s.lat.add(rtt)
		s.deadline.Store(int64(s.lat.deadline))
	}
}

// rejectWindow counts rejections over the last n answered submits.
type rejectWindow struct {
	ring     []bool
	n        int // answers in the ring, up to len(ring)
	next     int
	rejected int
}

func (w *rejectWindow) init(size int) { w.ring = make([]bool, size) }

func (w *rejectWindow) reset() {
	clear(w.ring)
	w.n, w.next, w.rejected = 0, 0, 0
}

func (w *rejectWindow) add(rejected bool) {
	if len(w.ring) == 0 {
		return
	}
	if w.n == len(w.ring) {
		if w.ring[w.next] {
			w.rejected--
		}
	} else {
		w.n++
	}
	w.ring[w.next] = rejected
	if rejected {
		w.rejected++
	}
	w.next = (w.next + 1) % len(w.ring)
}

// over reports whether the window is full and its reject ratio is above
// maxRatio.
func (w *rejectWindow) over(maxRatio float64) bool {
	return len(w.ring) > 0 && w.n == len(w.ring) && float64(w.rejected)/float64(w.n) > maxRatio
}

// backoff is capped exponential backoff with "equal jitter": each delay is
// between half and all of the current base, which starts at min and
// doubles up to max.
type backoff struct {
	min, max, base time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

// next returns the delay before the next attempt and doubles the base.
func (b *backoff) next() time.Duration {
	d := b.base
	if d == 0 {
		d = b.min
	}
	b.base = min(d*2, b.max)
	return jitter(d)
}

// fail jumps to the longest delay (a refusal for good will not fix
// itself in a second) and returns it.
func (b *backoff) fail() time.Duration {
	b.base = b.max
	return b.next()
}

// reset starts again from min, after a connection that was live for long.
func (b *backoff) reset() { b.base = 0 }

func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// countsAsRefusal reports whether a rejected share's answer says the pool
// refuses credit (it enters the reject window for MaxRejectRatio), rather
// than that the share came too late for the pool's current job: stale and
// unknown-job answers are what latency produces (a share on a job the pool
// has just replaced), on a slow link as much as on a pool at a block
// change, and they say nothing about whether the pool pays. The pools'
// own words for it: code 21 "Job not found" (public-pool, miningcore;
// NiceHash "Job not found." under its code 2), ckpool's "reject-reason"
// "Stale" and "Invalid JobID" (stratifier.c, share_errs), and "stale" or
// "job not found" in any message. line is the raw answer, for ckpool's
// field beside a null error.
func countsAsRefusal(code int, msg string, line []byte) bool {
	if code == stratum.CodeJobNotFound || staleWords(msg) {
		return false
	}
	if i := bytes.Index(line, []byte(`"reject-reason"`)); i >= 0 {
		rest := line[i+len(`"reject-reason"`):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			rest = rest[j+1:]
			if k := bytes.IndexByte(rest, '"'); k >= 0 && staleWords(string(rest[:k])) {
				return false
			}
		}
	}
	return true
}

// staleWords reports whether a pool's reject message means a late share.
func staleWords(msg string) bool {
	if msg == "" {
		return false
	}
	m := strings.ToLower(msg)
	for _, w := range [...]string{"stale", "job not found", "invalid jobid", "invalid job id", "unknown job", "job expired", "old job"} {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}
