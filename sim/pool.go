package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"switchyard/stratum"
)

// Pool defaults, used where a PoolConfig field is zero.
const (
	DefaultExtranonce1Size = 4
	DefaultExtranonce2Size = 8
	DefaultDifficulty      = 1.0
	DefaultVersionMask     = 0x1fffe000
	DefaultBranchDepth     = 12
	DefaultJobInterval     = 30 * time.Second
	DefaultCleanEvery      = 4
)

// ReasonPoolRejecting is the rejection label of shares refused by
// FaultReject. It is the simulator's own label, not a stratum.Reason.
const ReasonPoolRejecting = "pool_rejecting"

// ErrPoolClosed is returned by Pool methods called after Close.
var ErrPoolClosed = errors.New("sim: pool closed")

const (
	keepJobs     = 16               // jobs remembered; older ids are unknown (21 "Job not found")
	maxOutQueue  = 4096             // lines queued for a connection before it is dropped as a slow reader
	writeTimeout = 30 * time.Second // a write blocked this long drops the connection
	poolVersion  = "stratumsim/1.0" // plain ASCII: quoted as is for client.get_version
)

// PoolConfig configures a simulated pool. A zero field takes the default
// named beside it, or the profile's where it has one.
type PoolConfig struct {
	Addr              string        // listen address (default "127.0.0.1:0": any free port)
	Profile           string        // real pool to behave like: "", or one of Profiles (see ProfileCkpool); "": stratumsim's own
	Handshake         Handshake     // order of the first answers and notifications (HandshakeProfile: the profile's)
	Vardiff           Vardiff       // the profile's pool-side retargeting, pinned or tuned
	PingInterval      time.Duration // send mining.ping to every connection this often; 0: never
	Extranonce1Size   int           // bytes, 1..16 (the profile's, else DefaultExtranonce1Size)
	Extranonce2Size   int           // bytes, 1..16 (the profile's, else DefaultExtranonce2Size)
	Difficulty        float64       // starting share difficulty, may be below 1; a share costs ~2^32·Difficulty hashes (the profile's, else DefaultDifficulty)
	NetworkDifficulty float64       // shares meeting it are block candidates; 0: the jobs' nBits (never met)
	VersionMask       uint32        // BIP310 bits the pool lets miners roll (DefaultVersionMask)
	BranchDepth       int           // merkle branch length; < 0 for none (DefaultBranchDepth)
	JobInterval       time.Duration // time between jobs (DefaultJobInterval)
	CleanEvery        int           // every n-th job is a new block, clean_jobs=true (DefaultCleanEvery)
	NTimeMaxAhead     uint32        // seconds a share's ntime may run ahead (stratum.DefaultNTimeMaxAhead)
	Users             []string      // accounts mining.authorize accepts, alone or as account.worker; empty: anyone
	Ledger            io.Writer     // one JSON line per submit (LedgerEntry); nil: none
	Work              WorkSource    // where jobs come from and block candidates go (a node, see NodeWork); nil: random jobs
	Log               zerolog.Logger
}

func (c PoolConfig) withDefaults() (PoolConfig, error) {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	var errs []error
	name, err := ParseProfile(c.Profile)
	if err != nil {
		errs = append(errs, err)
	}
	c.Profile = name
	pr := lookupProfile(name)
	setDefault(&c.Extranonce1Size, pr.en1Size)
	setDefault(&c.Extranonce2Size, pr.en2Size)
	setDefault(&c.Difficulty, pr.startDiff)
	setDefault(&c.Extranonce1Size, DefaultExtranonce1Size)
	setDefault(&c.Extranonce2Size, DefaultExtranonce2Size)
	setDefault(&c.Difficulty, DefaultDifficulty)
	setDefault(&c.VersionMask, DefaultVersionMask)
	setDefault(&c.JobInterval, DefaultJobInterval)
	setDefault(&c.CleanEvery, DefaultCleanEvery)
	switch {
	case c.BranchDepth == 0:
		c.BranchDepth = DefaultBranchDepth
	case c.BranchDepth < 0:
		c.BranchDepth = 0
	}
	if c.Extranonce1Size < 1 || c.Extranonce1Size > 16 {
		errs = append(errs, fmt.Errorf("sim: extranonce1 size %d: want 1..16", c.Extranonce1Size))
	}
	if c.Extranonce2Size < 1 || c.Extranonce2Size > stratum.MaxExtranonce2Size {
		errs = append(errs, fmt.Errorf("sim: extranonce2 size %d: want 1..%d", c.Extranonce2Size, stratum.MaxExtranonce2Size))
	}
	if c.Difficulty < 0 {
		errs = append(errs, fmt.Errorf("sim: difficulty %g: want > 0", c.Difficulty))
	}
	if c.BranchDepth > stratum.MaxBranchLen {
		errs = append(errs, fmt.Errorf("sim: branch depth %d: want at most %d", c.BranchDepth, stratum.MaxBranchLen))
	}
	if c.JobInterval < 0 || c.CleanEvery < 0 {
		errs = append(errs, fmt.Errorf("sim: job interval and clean-every must not be negative"))
	}
	if c.Handshake >= numHandshakes {
		errs = append(errs, fmt.Errorf("sim: unknown handshake %d", c.Handshake))
	}
	v := c.Vardiff
	if v.Shares < 0 || v.Interval < 0 || v.Target < 0 || v.Min < 0 || v.Max < 0 || (v.Max > 0 && v.Min > v.Max) {
		errs = append(errs, fmt.Errorf("sim: vardiff %+v: want no negative field and min <= max", v))
	}
	if c.NetworkDifficulty < 0 || c.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("sim: network difficulty and ping interval must not be negative"))
	}
	return c, errors.Join(errs...)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Pool is a simulated Stratum v1 pool listening on TCP. It answers
// mining.subscribe (extranonce1 unique per connection), mining.authorize
// (several workers per connection), mining.configure (version rolling: the
// intersection of the miner's mask and VersionMask), mining.suggest_difficulty,
// mining.extranonce.subscribe and client.get_version; other methods get
// error 20 "Unknown method". Once a connection is subscribed and has one
// authorized worker it gets mining.set_difficulty, then the current job; a
// new job follows every JobInterval, every CleanEvery-th one a new block
// with clean_jobs=true (earlier jobs are then stale).
//
// That is stratumsim's own behaviour (PoolConfig.Profile ""). With a
// profile the pool behaves instead like a real implementation, on the wire
// and in what it credits: see ProfileCkpool and the other profiles.
//
// mining.suggest_difficulty is honoured: the connection's difficulty becomes
// the suggestion, but never below Difficulty, and is sent at once with
// mining.set_difficulty. It applies to jobs sent afterwards; a share is
// checked against the lower of the difficulty in force when its job was sent
// and the current one, so a miner that applies a change at once is not
// refused either way.
//
// Every submit is validated with stratum.Job.Check (the connection's
// extranonce1 and extranonce2 size and the difficulty in force when the job
// was sent to it, its negotiated mask) and stratum.Dedup, and answered true
// or with the precise error: 25 not subscribed, 24 unauthorized worker,
// 21 "Job not found" or "Stale job", 22 duplicate, 23 low difficulty, 20 for
// the rest.
type Pool struct {
	cfg       PoolConfig
	prof      profile        // the behaviour of cfg.Profile
	hs        Handshake      // resolved handshake order
	vd        Vardiff        // resolved vardiff tuning
	netTarget stratum.Target // of cfg.NetworkDifficulty
	log       zerolog.Logger
	addr      string
	users     map[string]bool // nil: anyone
	ledger    *ledger
	start     time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the fields below; taken before a poolConn's mu
	ln       net.Listener
	conns    map[*poolConn]struct{}
	fault    Fault
	down     bool          // listener closed and connections dropped
	resume   chan struct{} // during a blackhole: closed when it ends
	flapStop chan struct{}
	closed   bool
	faultNow atomic.Pointer[Fault] // read on the hot path without mu

	pushMu  sync.Mutex   // serialises PushJob so connections see jobs in order
	jobsMu  sync.RWMutex // guards the fields below
	jobs    map[string]*poolJob
	order   []string // job ids, oldest first
	current *poolJob
	maker   *jobMaker

	connIDs atomic.Uint64 // numbers connections for the ledger
	en1Seq  atomic.Uint64
	en1Base uint64

	st poolCounters
}

// poolJob is one issued job, its notify encoded once for every connection.
type poolJob struct {
	job       *stratum.Job
	line      []byte // the notify as broadcast
	cleanLine []byte // the same with clean_jobs=true, for a connection's first job
	stale     bool   // a later job was clean; guarded by Pool.jobsMu
}

type poolCounters struct {
	connections, submits, accepted, jobs, malformed atomic.Uint64
	duplicates, blocks, blocksStale, retargets      atomic.Uint64
	pings, pingAnswers, pingsMissed                 atomic.Uint64
	open                                            atomic.Int64
	rejected                                        reasonCounters
	acceptedDiff                                    atomicFloat
}

// StartPool starts a pool listening on cfg.Addr with its first job ready.
func StartPool(cfg PoolConfig) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: pool listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := lookupProfile(cfg.Profile)
	hs := cfg.Handshake
	if hs == HandshakeProfile {
		hs = pr.handshake
	}
	p := &Pool{
		cfg:       cfg,
		prof:      pr,
		hs:        hs,
		vd:        pr.withVardiff(cfg.Vardiff),
		netTarget: stratum.DifficultyTarget(cfg.NetworkDifficulty),
		log:       cfg.Log.With().Str("component", "simpool").Logger(),
		addr:      ln.Addr().String(),
		ledger:    newLedger(cfg.Ledger),
		start:     time.Now(),
		ctx:       ctx,
		cancel:    cancel,
		ln:        ln,
		conns:     make(map[*poolConn]struct{}),
		jobs:      make(map[string]*poolJob),
		maker:     newJobMaker(rand.Uint64(), cfg.Extranonce1Size, cfg.Extranonce2Size, cfg.BranchDepth),
		en1Base:   rand.Uint64(),
	}
	p.st.rejected = newReasonCounters(ReasonPoolRejecting)
	if len(cfg.Users) > 0 {
		p.users = make(map[string]bool, len(cfg.Users))
		for _, u := range cfg.Users {
			p.users[u] = true
		}
	}
	p.faultNow.Store(&Fault{})
	p.PushJob(true)
	p.wg.Add(2)
	go p.acceptLoop(ln)
	go p.jobLoop()
	var vardiffTick time.Duration
	if pr.vardiff == vardiffPublicPool && !p.vd.Off {
		vardiffTick = p.vd.Interval
	}
	if vardiffTick > 0 || cfg.PingInterval > 0 {
		p.wg.Add(1)
		go p.profileLoop(vardiffTick, cfg.PingInterval)
	}
	p.log.Info().Str("listen", p.addr).Str("profile", cfg.Profile).Float64("difficulty", cfg.Difficulty).Msg("pool started")
	return p, nil
}

// Addr returns the address the pool listens on (host:port). It stays the
// same across FaultClose and FaultFlap.
func (p *Pool) Addr() string { return p.addr }

// PushJob issues a new job now and sends it to every connection; clean makes
// it a new block (clean_jobs=true: earlier jobs become stale). The job timer
// keeps its rhythm.
func (p *Pool) PushJob(clean bool) {
	p.pushMu.Lock()
	defer p.pushMu.Unlock()
	n, ok := p.workJob(clean) // outside jobsMu: a WorkSource may ask a node
	if !ok {
		return
	}
	p.jobsMu.Lock()
	if n == nil {
		n = p.maker.next(clean, time.Now())
	}
	clean = n.Clean
	j, err := stratum.NewJob(n)
	if err != nil {
		p.jobsMu.Unlock()
		p.log.Error().Err(err).Msg("job refused by stratum.NewJob") // a bug in jobMaker
		return
	}
	pj := &poolJob{job: j, line: n.AppendJSON(nil)}
	n.Clean = true
	pj.cleanLine = n.AppendJSON(nil)
	if clean {
		for _, old := range p.jobs {
			old.stale = true
		}
	}
	p.jobs[j.ID] = pj
	p.order = append(p.order, j.ID)
	if len(p.order) > keepJobs {
		delete(p.jobs, p.order[0])
		p.order = slices.Delete(p.order, 0, 1)
	}
	p.current = pj
	p.jobsMu.Unlock()
	p.st.jobs.Add(1)
	for _, c := range p.connList() {
		c.sendJob(pj, false)
	}
}

func (p *Pool) jobLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.JobInterval)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
			p.PushJob(i%p.cfg.CleanEvery == 0)
		}
	}
}

// job returns the job with the given id and whether it is stale.
func (p *Pool) job(id string) (pj *poolJob, stale bool) {
	p.jobsMu.RLock()
	defer p.jobsMu.RUnlock()
	pj = p.jobs[id]
	return pj, pj != nil && pj.stale
}

func (p *Pool) currentJob() *poolJob {
	p.jobsMu.RLock()
	defer p.jobsMu.RUnlock()
	return p.current
}

func (p *Pool) connList() []*poolConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	cs := make([]*poolConn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	return cs
}

// Reconnect sends client.reconnect to every subscribed connection and
// returns how many got it. An empty host means "the same address, now"
// (port and wait are then not sent).
func (p *Pool) Reconnect(host string, port, wait int) int {
	line := stratum.AppendReconnect(nil, host, port, wait)
	n := 0
	for _, c := range p.connList() {
		if c.sendIfSubscribed(line) {
			n++
		}
	}
	p.log.Info().Str("host", host).Int("port", port).Int("wait_s", wait).Int("sent", n).Msg("client.reconnect sent")
	return n
}

// SetExtranonce gives every connection that sent mining.extranonce.subscribe
// (with ProfileNiceHash every subscribed connection, with ckpool,
// public-pool and miningcore none: they never send it) a new, still unique
// extranonce1 (and extranonce2 size en2Size, 0 to keep
// it) with mining.set_extranonce, then issues a new job (not clean) from
// which the new values apply; shares for earlier jobs are still checked
// with the old ones. It returns how many connections were changed.
func (p *Pool) SetExtranonce(en2Size int) (int, error) {
	if en2Size < 0 || en2Size > stratum.MaxExtranonce2Size {
		return 0, fmt.Errorf("sim: extranonce2 size %d: want 0..%d", en2Size, stratum.MaxExtranonce2Size)
	}
	n := 0
	for _, c := range p.connList() {
		if c.renewExtranonce(en2Size) {
			n++
		}
	}
	p.PushJob(false)
	p.log.Info().Int("connections", n).Msg("mining.set_extranonce sent")
	return n, nil
}

// extranonce1 returns a fresh extranonce1, unique for 2^(8·size) calls.
func (p *Pool) extranonce1() []byte {
	en1 := make([]byte, p.cfg.Extranonce1Size)
	v := p.en1Base + p.en1Seq.Add(1)
	for i := len(en1) - 1; i >= 0; i-- {
		en1[i] = byte(v)
		v >>= 8
	}
	return en1
}

func (p *Pool) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select { // out of file descriptors and the like: back off
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		if p.ln != ln || p.closed {
			p.mu.Unlock()
			nc.Close()
			continue
		}
		c := newPoolConn(p, nc)
		p.conns[c] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		p.st.connections.Add(1)
		p.st.open.Add(1)
		go c.readLoop()
		go c.writeLoop()
	}
}

func (p *Pool) dropConn(c *poolConn) {
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	p.st.open.Add(-1)
}

// SetFault switches the pool's behaviour at once:
//
//   - FaultNormal: serve everything. Coming back from close or flap reopens
//     the listener on the same address; coming back from blackhole resumes
//     reading and writing on the frozen connections (whose peers have
//     probably given up meanwhile).
//   - FaultClose: close the listener (a connect is refused) and every
//     connection (the peer reads EOF or a reset).
//   - FaultBlackhole: existing connections stay open but nothing more is
//     processed or sent on them. The listener stays open, so a new connect
//     still completes at TCP level (the kernel does that), but the
//     connection is frozen the same way: its mining.subscribe is never
//     answered. Simulating lost SYNs would need a packet filter; a client
//     sees the same thing once its handshake timer fires.
//   - FaultReject: every share is answered with error 20 "Pool rejecting"
//     and counted under ReasonPoolRejecting; everything else is normal.
//   - FaultSlow: every line sent (answers, jobs, difficulty) leaves Delay
//     after it was produced, in order per connection.
//   - FaultFlap: close at once, then normal after Period, close after
//     another Period, and so on.
func (p *Pool) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrPoolClosed
	}
	if p.flapStop != nil {
		close(p.flapStop)
		p.flapStop = nil
	}
	if f.Mode == FaultBlackhole {
		if p.resume == nil {
			p.resume = make(chan struct{})
		}
	} else if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
	p.fault = f
	p.faultNow.Store(&f)
	var err error
	switch f.Mode {
	case FaultClose:
		p.goDownLocked()
	case FaultFlap:
		p.goDownLocked()
		p.flapStop = make(chan struct{})
		p.wg.Add(1)
		go p.flap(f.Period, p.flapStop)
	default:
		err = p.goUpLocked()
	}
	ev := p.log.Info()
	if err != nil {
		ev = p.log.Error().Err(err)
	}
	ev.Str("fault", f.String()).Msg("fault set")
	return err
}

// FaultState returns the current fault and whether the pool is down right
// now (listener closed: FaultClose, or FaultFlap's down half).
func (p *Pool) FaultState() (f Fault, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.down
}

func (p *Pool) flap(period time.Duration, stop chan struct{}) {
	defer p.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		select {
		case <-stop: // the fault changed while we waited for mu
			p.mu.Unlock()
			return
		default:
		}
		if p.down {
			if err := p.goUpLocked(); err != nil {
				p.log.Error().Err(err).Msg("flap: reopen failed")
			} else {
				p.log.Info().Msg("flap: up")
			}
		} else {
			p.goDownLocked()
			p.log.Info().Msg("flap: down")
		}
		p.mu.Unlock()
	}
}

func (p *Pool) goDownLocked() {
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.close()
	}
	p.down = true
}

func (p *Pool) goUpLocked() error {
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("sim: pool reopen %s: %w", p.addr, err)
		}
		p.ln = ln
		p.wg.Add(1)
		go p.acceptLoop(ln)
	}
	p.down = false
	return nil
}

// hold blocks while the pool is a blackhole; false means done was closed.
func (p *Pool) hold(done <-chan struct{}) bool {
	for p.faultNow.Load().Mode == FaultBlackhole {
		p.mu.Lock()
		ch := p.resume
		p.mu.Unlock()
		if ch == nil {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
	return true
}

// PoolStats is a snapshot of a pool's counters. Taken while shares flow,
// the counters are each exact but not from one instant; after Close they
// add up: Submits == Accepted + Σ Rejected.
type PoolStats struct {
	Uptime             time.Duration     `json:"uptime_ns"`
	Connections        uint64            `json:"connections"` // accepted since start
	Open               int64             `json:"open"`        // open now
	Jobs               uint64            `json:"jobs"`
	Submits            uint64            `json:"submits"`
	Accepted           uint64            `json:"accepted"`
	Rejected           map[string]uint64 `json:"rejected"`            // by reason label, non-zero only
	AcceptedDifficulty float64           `json:"accepted_difficulty"` // Σ difficulty credited to accepted shares: the pool difficulty in force for each share's job, by the profile's rule
	CreditedWork       float64           `json:"credited_work"`       // AcceptedDifficulty × 2^32: the hashes the pool pays for
	Duplicates         uint64            `json:"duplicates"`          // shares repeating an earlier one, refused (Rejected["duplicate"]) or, by public-pool, accepted
	Blocks             uint64            `json:"blocks"`              // block candidates submitted to the network, whatever the share's verdict
	BlocksStale        uint64            `json:"blocks_stale"`        // … of them on a stale job
	Retargets          uint64            `json:"retargets"`           // connection difficulty changes (vardiff, SetDifficulty, suggestions)
	Pings              uint64            `json:"pings"`               // mining.ping requests sent
	PingAnswers        uint64            `json:"ping_answers"`        // … answered
	PingsMissed        uint64            `json:"pings_missed"`        // … unanswered when the next one went out or the connection ended
	Malformed          uint64            `json:"malformed"`           // lines that were not JSON-RPC
	Fault              string            `json:"fault"`
	Down               bool              `json:"down"`
}

// RejectedTotal returns Σ Rejected.
func (s PoolStats) RejectedTotal() uint64 { return sumCounts(s.Rejected) }

// String formats s on one line.
func (s PoolStats) String() string {
	return fmt.Sprintf("conns=%d open=%d jobs=%d submits=%d accepted=%d rejected=%d%s diff_sum=%.6g credited_hashes=%.6g dups=%d blocks=%d (stale %d) retargets=%d malformed=%d fault=%s",
		s.Connections, s.Open, s.Jobs, s.Submits, s.Accepted, s.RejectedTotal(), formatCounts(s.Rejected),
		s.AcceptedDifficulty, s.CreditedWork, s.Duplicates, s.Blocks, s.BlocksStale, s.Retargets, s.Malformed, s.Fault)
}

// Stats returns a snapshot of p's counters.
func (p *Pool) Stats() PoolStats {
	f, down := p.FaultState()
	return PoolStats{
		Uptime:             time.Since(p.start),
		Connections:        p.st.connections.Load(),
		Open:               p.st.open.Load(),
		Jobs:               p.st.jobs.Load(),
		Submits:            p.st.submits.Load(),
		Accepted:           p.st.accepted.Load(),
		Rejected:           p.st.rejected.snapshot(),
		AcceptedDifficulty: p.st.acceptedDiff.Load(),
		CreditedWork:       p.st.acceptedDiff.Load() * (1 << 32),
		Duplicates:         p.st.duplicates.Load(),
		Blocks:             p.st.blocks.Load(),
		BlocksStale:        p.st.blocksStale.Load(),
		Retargets:          p.st.retargets.Load(),
		Pings:              p.st.pings.Load(),
		PingAnswers:        p.st.pingAnswers.Load(),
		PingsMissed:        p.st.pingsMissed.Load(),
		Malformed:          p.st.malformed.Load(),
		Fault:              f.String(),
		Down:               down,
	}
}

// Close stops the pool: the listener, every connection and the job timer.
// It waits for all of the pool's goroutines; no ledger line is written
// after it returns.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.flapStop != nil {
		close(p.flapStop)
		p.flapStop = nil
	}
	if p.resume != nil {
		close(p.resume)
		p.resume = nil
	}
	p.goDownLocked()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.log.Info().Str("stats", p.Stats().String()).Msg("pool stopped")
	return p.ledger.err()
}
