package upstream

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"switchyard/metrics"
)

// Sink is the miner side as the Manager sees it (proxy.Server implements
// it). Its methods must not block.
type Sink interface {
	// Publish makes j, from s, the current job of lane. switched marks the
	// first job after the lane moved to s's pool.
	Publish(lane int, s *Session, j *Job, switched bool)
	// Verdict reports a pool's verdict on a forwarded share.
	Verdict(s *Session, r *Verdict)
	// AllDown reports that no pool is live.
	AllDown()
	// TimeSwitch asks for done to be called, with the time elapsed since
	// since, once lane's miners have work from pool: its next job has
	// reached them, or, when pool joins a split, the miners it is to get
	// have moved to it.
	TimeSwitch(lane int, pool string, since time.Time, done func(time.Duration))
	// Serve names the pools miners work for and their weights: the
	// active pool alone (weight 1), or the live pools of its tier that
	// split the miners. Miners on a pool left out move to one named with
	// a new job. It is called whenever the set or a weight changes, before
	// the jobs of the pools that joined; never with an empty set (when no
	// pool is live, AllDown is called instead and miners keep their work).
	Serve(shares []Share)
}

// Share is one pool miners work for, with its weight among the pools
// serving at once.
type Share struct {
	Pool   string
	Weight int
}

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Route names the miners' route the Manager serves (the route label of
	// its metrics, and its logs); "" is metrics.DefaultRoute.
	Route         string
	Session       Options       // for every session
	FailbackAfter time.Duration // a better pool must stay live this long before miners return to it
	Standby       int           // pools after the active one kept connected and authorized
	Metrics       *metrics.Metrics
	Log           zerolog.Logger
	Tick          time.Duration // how often failback is considered; default 250ms
	// OnSwitch, when set, hears every move of the miners (see SwitchEvent).
	// It is called with the Manager's lock held: it must not block or call
	// the Manager.
	OnSwitch func(SwitchEvent)
}

// SwitchEvent reports a move of the miners to another pool. Each switch is
// announced once with Took == 0 when it is decided, then once per lane
// (Lane, Took set) as that lane's first job from the new pool reaches its
// miners. To == "" announces that no pool is live.
type SwitchEvent struct {
	Route    string        // the route whose miners moved (ManagerOptions.Route)
	Seq      uint64        // one per switch of the route; the lane reports repeat it
	At       time.Time     // when the switch was decided
	From, To string        // pool names; "" for none
	Reason   string        // failback, startup, recovered, false_alarm (back at once after a false alarm), or why From went dark
	Dark     time.Duration // how long From had been dark when the switch was decided
	Lane     int
	Took     time.Duration // from From going dark (or the decision) to Lane's miners having new work
}

// Manager runs the ranked pools: one session per lane on every pool that
// is active, ranked better than the active one (to notice its recovery), or
// among the Standby pools after it. It moves all lanes to the best live
// pool when the active one goes dark, and back to a better pool once it has
// been live for its hold: FailbackAfter, doubled each time the pool went
// dark again soon after miners returned to it (see hold).
type Manager struct {
	opts ManagerOptions
	log  zerolog.Logger
	sink Sink // an *outbox: calls leave the lock (see outbox)
	out  *outbox
	in   *inbox // Lanes and Authorize, applied by Run

	mu       sync.Mutex
	ctx      context.Context
	pools    []*poolRun // ranked, best first
	lanes    int
	active   *poolRun
	allDown  bool
	workers  map[int]map[string]struct{} // lane -> per-worker names
	started  bool
	closing  bool // Run's context is done: sessions are being stopped
	runStart time.Time
	lastSeen time.Time
	switches uint64 // SwitchEvent.Seq of the latest switch
	// serving is the pools miners work for, as the miner side was last
	// told (Sink.Serve); nil while none is live.
	serving []Share
}

// poolRun is the Manager's view of one pool.
type poolRun struct {
	pool     Pool
	rank     int
	sessions []*Session
	cancels  []context.CancelFunc
	// established[k] is set once lane k's session has been live with a
	// job: a lane still opening does not make the pool look dark.
	established []bool
	state       State
	// liveSince is when every lane became live; zero when not live.
	liveSince time.Time
	// darkSince is when the pool last stopped being live.
	darkSince  time.Time
	darkReason Why
	removed    bool
	// serving is set while miners work for the pool (Manager.serving).
	serving bool
	// tried is set once a session of the pool has had a job or failed:
	// its extranonce2 size is known, or it is known to be unreachable.
	tried bool
	// downReason is the cause of the latest StateDown of one of its
	// sessions, kept until one goes live; a refusal for good
	// (Cause.RefusedForGood) is not overwritten by a passing failure.
	downReason Why
	// strikes counts failbacks to this pool that ended with it going dark
	// again within its hold; each doubles the hold.
	strikes int
	// failbackAt is when miners last returned to this pool by failback;
	// zero once they have stayed for its hold.
	failbackAt time.Time
	// leftSuspectAt is when miners last left this pool while it was
	// suspect (not down); zero when they left it down, or it has been
	// judged. alarmSpoiled is set when, since then, one of its sessions
	// went down or lost late shares: not a false alarm. falseAlarm is set
	// while it is live again after a false alarm and miners have not
	// returned (PoolView.FalseAlarm).
	leftSuspectAt time.Time
	alarmSpoiled  bool
	falseAlarm    bool
}

// maxStrikes caps the failback hold at FailbackAfter << maxStrikes.
const maxStrikes = 4

// NewManager returns a Manager for pools ranked best first.
func NewManager(pools []Pool, opts ManagerOptions, sink Sink) *Manager {
	if opts.Tick <= 0 {
		opts.Tick = 250 * time.Millisecond
	}
	if opts.Route == "" {
		opts.Route = metrics.DefaultRoute
	}
	if met := opts.Metrics; met != nil && met.Route == "" {
		opts.Metrics = met.ForRoute(opts.Route)
	}
	out := newOutbox(sink)
	log := opts.Log.With().Str("component", "selector").Logger()
	if opts.Route != metrics.DefaultRoute {
		log = log.With().Str("route", opts.Route).Logger()
	}
	m := &Manager{
		sink:    out,
		out:     out,
		in:      newInbox(),
		opts:    opts,
		log:     log,
		workers: map[int]map[string]struct{}{},
		lanes:   1,
	}
	for i, p := range pools {
		m.pools = append(m.pools, &poolRun{pool: p, rank: i, state: StateDown})
		if met := opts.Metrics; met != nil {
			met.InitPool(p.Name)
		}
	}
	return m
}

// Run starts the sessions and keeps the selection up to date until ctx is
// done.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	m.started = true
	m.runStart = time.Now()
	m.reconcile(nil)
	m.mu.Unlock()
	outDone := make(chan struct{})
	go func() { defer close(outDone); m.out.run(ctx) }()
	defer func() { <-outDone }()
	t := time.NewTicker(m.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.closing = true
			for _, p := range m.pools {
				m.stopPool(p)
			}
			m.mu.Unlock()
			return
		case <-m.in.kick:
			m.mu.Lock()
			for _, f := range m.in.take() {
				f()
			}
			m.mu.Unlock()
		case <-t.C:
			m.mu.Lock()
			m.decide(Why{})
			m.mu.Unlock()
		}
	}
}

// Lanes implements the proxy's need for n lanes: every running pool gets a
// session per lane. It does not wait: Run applies it.
func (m *Manager) Lanes(n int) { m.in.push(func() { m.lanesLocked(n) }) }

func (m *Manager) lanesLocked(n int) {
	if n <= m.lanes {
		return
	}
	m.lanes = n
	m.reconcile(nil)
}

// Authorize makes a per-worker name known on every session of a lane, now
// and after reconnects or switches. worker is the miner's suffix; each pool
// authorizes "<its user>.<worker>". It does not wait: Run applies it.
func (m *Manager) Authorize(lane int, worker string) {
	m.in.push(func() { m.authorizeLocked(lane, worker) })
}

func (m *Manager) authorizeLocked(lane int, worker string) {
	set := m.workers[lane]
	if set == nil {
		set = map[string]struct{}{}
		m.workers[lane] = set
	}
	if _, ok := set[worker]; ok {
		return
	}
	set[worker] = struct{}{}
	for _, p := range m.pools {
		if lane < len(p.sessions) && p.sessions[lane] != nil {
			p.sessions[lane].Authorize(p.pool.User + "." + worker)
		}
	}
}

// Active returns the name of the pool serving miners, or "".
func (m *Manager) Active() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == nil {
		return ""
	}
	return m.active.pool.Name
}

// PoolStatus is one pool as reported by Status.
type PoolStatus struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"`
	Rank      int       `json:"rank"`
	State     string    `json:"state"`
	Active    bool      `json:"active"`
	Sessions  int       `json:"sessions"`
	LiveSince time.Time `json:"live_since,omitzero"`
	DarkSince time.Time `json:"dark_since,omitzero"`
	Reason    string    `json:"reason,omitempty"` // why it is not live: a Cause's label
	Detail    string    `json:"detail,omitempty"` // what the session knew of it ("connection refused")
	LastJob   time.Time `json:"last_job,omitzero"`
	// SubmitDeadlineMS is the longest learned submit deadline in force
	// among the pool's sessions: a share unanswered this long makes the
	// pool suspect (see failover.submit_timeout_min).
	SubmitDeadlineMS float64 `json:"submit_deadline_ms,omitempty"`
}

// Status reports every pool.
func (m *Manager) Status() []PoolStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PoolStatus, 0, len(m.pools))
	for _, p := range m.pools {
		ps := PoolStatus{Name: p.pool.Name, URL: p.pool.URL, Rank: p.rank, State: p.state.String(),
			Active: p == m.active, LiveSince: p.liveSince, DarkSince: p.darkSince, Reason: poolReason(p).Cause.String(), Detail: poolReason(p).Detail}
		if ps.Reason == CauseNone.String() {
			ps.Reason = ""
		}
		for _, s := range p.sessions {
			if s == nil {
				continue
			}
			ps.Sessions++
			if j := s.Current(); j != nil && j.Received.After(ps.LastJob) {
				ps.LastJob = j.Received
			}
			ps.SubmitDeadlineMS = max(ps.SubmitDeadlineMS, float64(s.Deadline())/float64(time.Millisecond))
		}
		out = append(out, ps)
	}
	return out
}

// Live reports whether some pool is serving miners.
func (m *Manager) Live() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active != nil && m.active.state == StateLive
}

// SessionState implements Handler.
func (m *Manager) SessionState(s *Session, st State, why Why) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.runOf(s)
	if p == nil {
		return
	}
	if st == StateDown && why.Cause != CauseNone {
		p.tried = true
		if !p.downReason.Cause.RefusedForGood() || why.Cause.RefusedForGood() {
			p.downReason = why
		}
	}
	if st == StateLive {
		p.downReason = Why{}
	}
	if !p.leftSuspectAt.IsZero() && (st == StateDown || st == StateLive && why.Cause == CauseSubmitAnswered) {
		p.alarmSpoiled = true // dark after all, or late shares were lost
	}
	// A reconnect is a connection a session makes after an earlier one of
	// its own was established: neither its first nor a failed dial.
	if met := m.opts.Metrics; met != nil && st == StateHandshaking && why.Cause == CauseReconnected {
		met.PoolReconnects.WithLabelValues(p.pool.Name).Inc()
	}
	if m.ctx != nil && m.ctx.Err() != nil {
		m.closing = true // the sessions may see the context end first
	}
	m.refresh(p, why)
	if !m.closing { // shutting down: no failover, no "all down"
		m.decide(why)
	}
	if met := m.opts.Metrics; met != nil {
		label := ""
		if r := poolReason(p); r.Cause != CauseNone {
			label = r.Cause.String()
		}
		met.SetPoolStateReason(p.pool.Name, label)
	}
}

// poolReason is why p is not live, for Status and
// switchyard_pool_state_reason: a refusal for good first (it needs the
// operator), then why it went dark, then the latest failure of one of its
// sessions; "" while it is live.
func poolReason(p *poolRun) Why {
	switch {
	case p.state == StateLive:
		return Why{}
	case p.downReason.Cause.RefusedForGood() || p.darkReason.Cause == CauseNone:
		return p.downReason
	}
	return p.darkReason
}

// SessionJob implements Handler: jobs of the active pool go to miners.
func (m *Manager) SessionJob(s *Session, j *Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.runOf(s)
	if p == nil {
		return
	}
	if met := m.opts.Metrics; met != nil {
		met.PoolLastJob.WithLabelValues(p.pool.Name).Set(float64(j.Received.UnixNano()) / 1e9)
	}
	p.tried = true
	if p.serving && !m.allDown {
		m.sink.Publish(s.Lane(), s, j, false)
		return
	}
	// A first job can make a pool live (sessions are live once they have one).
	m.refresh(p, Why{})
	m.decide(Why{})
}

// SessionVerdict implements Handler.
func (m *Manager) SessionVerdict(s *Session, r *Verdict) { m.sink.Verdict(s, r) }

// runOf finds the pool of a session (nil for a session already retired).
func (m *Manager) runOf(s *Session) *poolRun {
	for _, p := range m.pools {
		if s.Lane() < len(p.sessions) && p.sessions[s.Lane()] == s {
			return p
		}
	}
	return nil
}

// refresh recomputes a pool's state from its sessions.
func (m *Manager) refresh(p *poolRun, why Why) {
	for k, s := range p.sessions {
		if s != nil && s.State() == StateLive && s.Current() != nil {
			p.established[k] = true
		}
	}
	st := poolState(p.sessions, p.established)
	if st == p.state {
		return
	}
	now := time.Now()
	was := p.state
	p.state = st
	if st == StateLive {
		p.liveSince = now
		p.darkReason = Why{}
		m.log.Info().Str("pool", p.pool.Name).Str("from", was.String()).Msg("pool live")
		m.judgeAlarm(p, now)
	} else if was == StateLive {
		p.liveSince = time.Time{}
		p.falseAlarm = false
		// The session knows when the darkness began (the oldest unanswered
		// share, the last job); otherwise it began now.
		p.darkSince = now
		if !why.Since.IsZero() && why.Since.Before(now) {
			p.darkSince = why.Since
		}
		p.darkReason = why
		ev := m.log.Warn()
		if m.closing {
			ev = m.log.Debug()
		}
		ev.Str("pool", p.pool.Name).Str("state", st.String()).Str("reason", why.String()).Msg("pool not live")
		if p == m.active && !p.failbackAt.IsZero() {
			if m.policy().Strike(PoolView{Strikes: p.strikes, FailbackAt: p.failbackAt}, now) && why.Cause != CauseStopped {
				p.strikes = min(p.strikes+1, maxStrikes)
				m.log.Warn().Str("pool", p.pool.Name).Int("strikes", p.strikes).Float64("hold_s", m.hold(p).Seconds()).
					Msg("pool went dark again soon after failback: holding it longer")
			}
			p.failbackAt = time.Time{}
		}
	}
	if met := m.opts.Metrics; met != nil {
		met.SetPoolState(p.pool.Name, st.String())
	}
}

// judgeAlarm decides, as p goes live again, whether leaving it was a false
// alarm: miners left it while it was suspect, within the grace
// (SubmitTimeout, by when its late shares would have been lost) it is live
// again, and none of its sessions went down or lost a share meanwhile.
// Called with m.mu held.
func (m *Manager) judgeAlarm(p *poolRun, now time.Time) {
	if p.leftSuspectAt.IsZero() {
		return
	}
	grace := m.opts.Session.SubmitTimeout
	if grace <= 0 {
		grace = DefaultSubmitTimeout
	}
	if !p.alarmSpoiled && now.Sub(p.leftSuspectAt) <= grace && p != m.active {
		p.falseAlarm = true
		m.log.Warn().Str("pool", p.pool.Name).Float64("elapsed_s", now.Sub(p.leftSuspectAt).Seconds()).
			Msg("pool answered its late shares: false alarm")
		if met := m.opts.Metrics; met != nil {
			met.PoolFalseAlarms.WithLabelValues(p.pool.Name).Inc()
		}
	}
	p.leftSuspectAt, p.alarmSpoiled = time.Time{}, false
}

// poolState folds a pool's lane sessions into one state: live when every
// established lane is live (lanes still opening are left out unless none
// is established).
func poolState(ss []*Session, established []bool) State {
	any := false
	for _, e := range established {
		any = any || e
	}
	lanes, live, bestOther := 0, 0, StateDown
	for k, s := range ss {
		if any && !established[k] {
			continue
		}
		lanes++
		st := s.State()
		if st == StateLive && s.Current() != nil {
			live++
			continue
		}
		if st == StateLive {
			st = StateHandshaking // authorized, waiting for a first job
		}
		if rankState(st) > rankState(bestOther) {
			bestOther = st
		}
	}
	switch {
	case lanes > 0 && live == lanes:
		return StateLive
	case live > 0:
		return StateSuspect
	}
	return bestOther
}

// rankState orders non-live states from worst to best.
func rankState(s State) int {
	switch s {
	case StateSuspect:
		return 4
	case StateHandshaking:
		return 3
	case StateConnecting:
		return 2
	}
	return 1
}

// decide picks the pool miners should be on (Select) and carries the
// decision out. Called with m.mu held.
func (m *Manager) decide(why Why) {
	if !m.started {
		return
	}
	for _, p := range m.pools {
		m.refresh(p, why)
	}
	now := time.Now()
	d := Select(m.situation(now), m.policy())
	if d.Forgive {
		m.active.strikes, m.active.failbackAt = 0, time.Time{} // it held up: forgiven
	}
	switch d.Move {
	case MoveFailback:
		m.switchTo(m.pools[d.Active], "failback", now)
	case MoveStartup:
		m.switchTo(m.pools[d.Active], "startup", now)
	case MoveRecovered:
		m.switchTo(m.pools[d.Active], "recovered", now)
	case MoveFalseAlarm:
		m.switchTo(m.pools[d.Active], "false_alarm", now)
	case MoveFailover:
		reason := "removed"
		if m.active != nil {
			reason = m.active.darkReason.Cause.String()
			if m.active.darkReason.Cause == CauseNone {
				reason = m.active.state.String()
			}
		}
		m.switchTo(m.pools[d.Active], reason, now)
	case MoveAllDown:
		ev := m.log.Error()
		if m.active != nil {
			ev = ev.Str("pool", m.active.pool.Name).Str("reason", m.active.darkReason.String())
		}
		ev.Msg("no pool is live")
		if m.opts.OnSwitch != nil && m.active != nil {
			m.switches++
			m.opts.OnSwitch(SwitchEvent{Route: m.opts.Route, Seq: m.switches, At: now, From: m.active.pool.Name, Reason: m.active.darkReason.Cause.String()})
		}
		m.setActive(nil)
		m.allDown = true
		m.sink.AllDown()
	}
	m.reconcile(d.Run)
	m.serve(false)
}

// situation is the selector's view of the pools. Called with m.mu held.
func (m *Manager) situation(now time.Time) Situation {
	s := Situation{Active: -1, AllDown: m.allDown, Now: now, Start: m.runStart, Pools: make([]PoolView, len(m.pools))}
	for i, p := range m.pools {
		s.Pools[i] = PoolView{State: p.state, LiveSince: p.liveSince, Removed: p.removed, Refused: p.downReason.Cause.RefusedForGood(),
			Strikes: p.strikes, FailbackAt: p.failbackAt, FalseAlarm: p.falseAlarm && p.state == StateLive}
		s.Pools[i].Answering, s.Pools[i].StillAnswers = m.answers(p, now)
		if p == m.active {
			s.Active = i
		}
	}
	s.HadActive = m.active != nil && s.Active < 0
	return s
}

// answers reports whether every established lane of p has shown it
// answers in time (Session.Answering), and, for a suspect pool, whether
// each lane that is not live is only late: suspect for late shares, with
// an answer within SubmitTimeout. Called with m.mu held.
func (m *Manager) answers(p *poolRun, now time.Time) (answering, stillAnswers bool) {
	ceil := m.opts.Session.SubmitTimeout
	if ceil <= 0 {
		ceil = DefaultSubmitTimeout
	}
	any := false
	for _, e := range p.established {
		any = any || e
	}
	answering, stillAnswers = true, p.state == StateSuspect
	n := 0
	for k, s := range p.sessions {
		if s == nil || any && !p.established[k] {
			continue
		}
		n++
		answering = answering && s.Answering()
		if st := s.State(); st != StateLive {
			last := s.LastAnswer()
			stillAnswers = stillAnswers && st == StateSuspect && s.Cause() == CauseSubmitTimeout &&
				!last.IsZero() && now.Sub(last) < ceil
		}
	}
	return answering && n > 0, stillAnswers && n > 0
}

func (m *Manager) policy() Policy {
	return Policy{FailbackAfter: m.opts.FailbackAfter, Standby: m.opts.Standby, StartGrace: m.startGrace(), MaxStrikes: maxStrikes}
}

// switchTo moves every lane to p.
func (m *Manager) switchTo(p *poolRun, reason string, now time.Time) {
	from := m.active
	fromName := "none"
	var dark time.Duration
	since := now
	if from != nil {
		fromName = from.pool.Name
		if !from.darkSince.IsZero() && from.state != StateLive {
			dark = now.Sub(from.darkSince)
			since = from.darkSince
		}
	}
	m.setActive(p)
	m.allDown = false
	m.lastSeen = now
	if reason == "failback" || reason == "false_alarm" {
		p.failbackAt = now
	}
	p.falseAlarm, p.leftSuspectAt = false, time.Time{}
	if from != nil && from != p {
		from.leftSuspectAt, from.alarmSpoiled = time.Time{}, false
		if from.state == StateSuspect {
			from.leftSuspectAt = now // a false alarm if it answers in time (judgeAlarm)
		}
	}
	if from == nil && reason == "startup" {
		m.log.Info().Str("pool", p.pool.Name).Msg("mining on pool")
	} else {
		m.log.Warn().Str("from", fromName).Str("to", p.pool.Name).Str("reason", reason).
			Float64("dark_s", dark.Seconds()).Msg("switching pool")
		if met := m.opts.Metrics; met != nil {
			met.Failovers.WithLabelValues(fromName, p.pool.Name, reasonLabel(reason)).Inc()
		}
	}
	m.switches++
	ev := SwitchEvent{Route: m.opts.Route, Seq: m.switches, At: now, From: from.name(), To: p.pool.Name, Reason: reason, Dark: dark}
	if m.opts.OnSwitch != nil {
		m.opts.OnSwitch(ev)
	}
	// The new pool's jobs go out once the miner side knows the pools
	// serving (serve, at the end of decide).
	for lane := 0; lane < m.lanes && lane < len(p.sessions); lane++ {
		s := p.sessions[lane]
		if s.Current() == nil {
			continue
		}
		if from != nil || reason != "startup" {
			lane, to := lane, p.pool.Name
			m.sink.TimeSwitch(lane, to, since, func(d time.Duration) {
				if met := m.opts.Metrics; met != nil && (reason == "failback" || reason == "false_alarm") {
					met.FailbackDuration.Observe(d.Seconds())
				} else if met != nil {
					met.FailoverDuration.Observe(d.Seconds())
				}
				if f := m.opts.OnSwitch; f != nil {
					e := ev
					e.Lane, e.Took = lane, d
					f(e)
				}
				m.log.Info().Str("from", fromName).Str("to", to).Int("lane", lane).
					Float64("elapsed_s", d.Seconds()).Msg("switch complete: new jobs reached miners")
			})
		}
	}
}

// serve works out the pools miners work for (split) and, when the set or
// a weight changed (or force), tells the miner side (Sink.Serve) and sends
// the current jobs of the pools that joined. Called with m.mu held, at the
// end of every decision.
func (m *Manager) serve(force bool) {
	var set []*poolRun
	if m.active != nil && !m.allDown && !m.closing {
		set = m.split(time.Now())
	}
	for _, p := range m.pools {
		p.serving = false
	}
	if len(set) == 0 {
		// No pool is live: miners keep their last work (AllDown); the set
		// is sent afresh once one is.
		if m.serving != nil && m.opts.Metrics != nil {
			for _, p := range m.pools {
				m.opts.Metrics.SplitTarget.WithLabelValues(p.pool.Name).Set(0)
			}
		}
		m.serving = nil
		return
	}
	shares := make([]Share, len(set))
	changed := force || len(set) != len(m.serving)
	for i, p := range set {
		w := max(p.pool.Weight, 0)
		if len(set) == 1 {
			w = 1
		}
		shares[i] = Share{Pool: p.pool.Name, Weight: w}
		changed = changed || i >= len(m.serving) || m.serving[i] != shares[i]
	}
	was := make(map[string]bool, len(m.serving))
	for _, sh := range m.serving {
		was[sh.Pool] = true
	}
	for _, p := range set {
		p.serving = true
	}
	if !changed {
		return
	}
	m.serving = shares
	if len(set) > 1 || len(was) > 1 {
		ev := m.log.Info()
		for _, sh := range shares {
			ev = ev.Int(sh.Pool, sh.Weight)
		}
		ev.Msg("miners split")
	}
	m.sink.Serve(shares)
	if met := m.opts.Metrics; met != nil {
		total := 0
		for _, sh := range shares {
			total += sh.Weight
		}
		for _, p := range m.pools {
			v := 0.0
			if p.serving && total > 0 {
				for _, sh := range shares {
					if sh.Pool == p.pool.Name {
						v = float64(sh.Weight) / float64(total)
					}
				}
			}
			met.SplitTarget.WithLabelValues(p.pool.Name).Set(v)
		}
	}
	for _, p := range set {
		if was[p.pool.Name] {
			continue
		}
		for lane := 0; lane < m.lanes && lane < len(p.sessions); lane++ {
			if j := p.sessions[lane].Current(); j != nil {
				m.sink.Publish(lane, p.sessions[lane], j, true)
			}
		}
	}
}

// split is the set of pools miners work for: the active pool, and with it,
// when it has a weight, every other live pool of its tier with a weight
// that is serving already, went live during the startup grace without
// ever going dark, or has been live for its hold (failback_after): a
// weighted pool that went dark, or came up late, gets its share only once
// it has held up as long as a failback asks. Called with m.mu held.
func (m *Manager) split(now time.Time) []*poolRun {
	a := m.active
	set := []*poolRun{a}
	if a.pool.Weight <= 0 || a.state != StateLive {
		return set
	}
	for _, p := range m.pools {
		if p == a || p.removed || p.pool.Tier != a.pool.Tier || p.pool.Weight <= 0 || p.state != StateLive || len(p.sessions) == 0 {
			continue
		}
		early := p.darkSince.IsZero() && p.liveSince.Sub(m.runStart) < m.startGrace()
		if p.serving || early || now.Sub(p.liveSince) >= m.hold(p) {
			set = append(set, p)
		}
	}
	slices.SortStableFunc(set, func(x, y *poolRun) int { return x.rank - y.rank })
	return set
}

// Serving reports the pools miners work for and their weights; nil while
// no pool is live.
func (m *Manager) Serving() []Share {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.serving)
}

// hold is how long p must be live before miners fail back to it:
// FailbackAfter, doubled for every failback after which p went dark again
// within its hold (up to maxStrikes times). Some pools look healthy while
// idle and fail only under shares — one that rejects every share still
// connects, authorizes and sends jobs — so going back is the only way to
// learn they recovered; the doubling keeps those retries from becoming a
// yo-yo.
func (m *Manager) hold(p *poolRun) time.Duration {
	return m.policy().Hold(PoolView{Strikes: p.strikes})
}

// Settled reports whether every pool being connected has either sent a job
// or failed, or the startup grace has passed: by then the pool miners start
// on is the best one that answered, so they do not start on a backup and
// move a moment later.
func (m *Manager) Settled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started {
		return false
	}
	if time.Since(m.runStart) >= m.startGrace() {
		return true
	}
	for _, p := range m.pools {
		if len(p.sessions) > 0 && !p.tried {
			return false
		}
	}
	return true
}

// startGrace is how long startup waits for better-ranked pools.
func (m *Manager) startGrace() time.Duration {
	return m.opts.Session.DialTimeout + 2*m.opts.Session.SubmitTimeout
}

// name is the pool's name; "" for nil.
func (p *poolRun) name() string {
	if p == nil {
		return ""
	}
	return p.pool.Name
}

func (m *Manager) setActive(p *poolRun) {
	if met := m.opts.Metrics; met != nil {
		for _, q := range m.pools {
			v := 0.0
			if q == p {
				v = 1
			}
			met.ActivePool.WithLabelValues(q.pool.Name).Set(v)
		}
	}
	m.active = p
}

// reasonLabel bounds failover reasons to a fixed set for metrics: the
// moves (failback, startup, recovered), the causes and the
// states.
func reasonLabel(r string) string {
	switch r {
	case "failback", "startup", "recovered", "false_alarm":
		return r
	}
	for _, c := range Causes() {
		if r == c.String() {
			return r
		}
	}
	for _, st := range States() {
		if r == st.String() {
			return r
		}
	}
	return "error"
}

// reconcile starts sessions for the pools that should run and stops the
// rest: pools ranked up to the active one (or all when none is active),
// plus Standby pools after it. Called with m.mu held.
func (m *Manager) reconcile(run []bool) {
	if !m.started || m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	if run == nil {
		run = Select(m.situation(time.Now()), m.policy()).Run
	}
	// Every weighted pool of the tier being mined keeps its sessions: it
	// shares the miners, or will once it holds up.
	if a := m.active; a != nil && a.pool.Weight > 0 {
		run = slices.Clone(run)
		for i, p := range m.pools {
			if p.pool.Tier == a.pool.Tier && p.pool.Weight > 0 && !p.removed {
				run[i] = true
			}
		}
	}
	for i, p := range m.pools {
		if run[i] {
			m.startPool(p)
		} else {
			m.stopPool(p)
		}
	}
}

func (m *Manager) startPool(p *poolRun) {
	for lane := len(p.sessions); lane < m.lanes; lane++ {
		s := NewSession(p.pool, lane, m.opts.Session, m)
		for w := range m.workers[lane] {
			s.Authorize(p.pool.User + "." + w)
		}
		ctx, cancel := context.WithCancel(m.ctx)
		p.sessions = append(p.sessions, s)
		p.cancels = append(p.cancels, cancel)
		p.established = append(p.established, false)
		go s.Run(ctx)
	}
	if met := m.opts.Metrics; met != nil {
		met.UpstreamSessions.WithLabelValues(p.pool.Name).Set(float64(len(p.sessions)))
	}
}

// stopPool takes a pool out of service. Its sessions stay connected for one
// submit_timeout so that shares already forwarded get their answers (a
// pool that leaves the standby set right after a failback still has some).
func (m *Manager) stopPool(p *poolRun) {
	if len(p.sessions) == 0 {
		return
	}
	cancels := p.cancels
	time.AfterFunc(m.opts.Session.SubmitTimeout, func() {
		for _, c := range cancels {
			c()
		}
	})
	p.sessions, p.cancels, p.established = nil, nil, nil
	p.state = StateDown
	p.liveSince = time.Time{}
	if met := m.opts.Metrics; met != nil {
		met.UpstreamSessions.WithLabelValues(p.pool.Name).Set(0)
		met.SetPoolState(p.pool.Name, StateDown.String())
	}
}
