package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"switchyard/stratum"
)

// Fleet defaults, used where a FleetConfig field is zero.
const (
	DefaultUser             = "sim"
	DefaultUserAgent        = "stratumsim/1.0"
	DefaultMinerMask        = 0x1fffe000 // version-rolling mask the miners ask for
	DefaultRetryDelay       = time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultCloseGrace       = 2 * time.Second
	maxReconnectWait        = 10 * time.Minute // bound on client.reconnect's wait
)

// Disconnect causes, the keys of FleetStats.Disconnects.
const (
	CauseEOF              = "eof"               // the server closed the connection
	CauseReset            = "reset"             // connection reset
	CauseTimeout          = "timeout"           // a read or write deadline passed
	CauseError            = "error"             // another read or write error
	CauseProtocol         = "protocol"          // a line too long or a bad subscribe answer
	CauseAuthFailed       = "auth_failed"       // mining.authorize refused
	CauseHandshakeTimeout = "handshake_timeout" // not subscribed and authorized within HandshakeTimeout
	CauseReconnect        = "reconnect"         // the server sent client.reconnect
	CauseClosed           = "closed"            // Fleet.Close
	CauseExtranonce2Size  = "extranonce2_size"  // the firmware refused the pool's extranonce2 size (FleetStats.Refused)
)

// Labels of FleetStats.Rejected beyond the stratum.Reason labels and
// ReasonPoolRejecting.
const (
	LabelResultFalse = "result_false" // answered false without an error
)

var causes = []string{CauseEOF, CauseReset, CauseTimeout, CauseError, CauseProtocol,
	CauseAuthFailed, CauseHandshakeTimeout, CauseReconnect, CauseClosed, CauseExtranonce2Size}

// FleetConfig configures a fleet of simulated miners. A zero field takes the
// default named beside it.
type FleetConfig struct {
	Addr                string        // where to connect: a pool or a proxy (required)
	Miners              int           // number of miners (default 1; with Classes 0, or their sum)
	SourceAddrs         []string      // local IPs to dial from, by miner index round robin; empty: the kernel's choice
	User                string        // worker names are User.<index>, index from 0 (DefaultUser; see Classes)
	Password            string        // (default "x")
	UserAgent           string        // sent with mining.subscribe (DefaultUserAgent, or the firmware's)
	VersionRolling      bool          // negotiate BIP310 version rolling, asking for DefaultMinerMask
	ExtranonceSubscribe bool          // send mining.extranonce.subscribe
	SuggestDifficulty   float64       // send mining.suggest_difficulty when > 0
	MaxSharesPerSecond  float64       // per-miner cap; 0: submit every share found
	Idle                bool          // connect, subscribe, authorize, then only read
	RampUp              time.Duration // spread the first dials evenly over this long
	RetryDelay          time.Duration // pause before redialling after a disconnect, ±50% (DefaultRetryDelay)
	DialTimeout         time.Duration // (DefaultDialTimeout)
	HandshakeTimeout    time.Duration // subscribe and authorize must be answered within (DefaultHandshakeTimeout)
	CloseGrace          time.Duration // Close waits up to this for answers to shares in flight (DefaultCloseGrace)
	Warmup              time.Duration // answers in the first Warmup after the start stay out of FleetStats.Latency
	Ledger              io.Writer     // one JSON line per submit once it ends (LedgerEntry); nil: none
	Log                 zerolog.Logger

	// Classes, when set, divides the miners into groups of their own
	// rate and worker-name prefix (see MinerClass and
	// FleetConfig.layout); FleetStats.Classes counts each. DialSeed, when
	// not 0, shuffles the order in which the miners take their turns in
	// RampUp (with classes: so that they come up mixed, not class by
	// class).
	Classes  []MinerClass
	DialSeed uint64

	// Firmware makes every miner behave as that firmware does (see
	// Firmwares and ParseFirmware; "" is the behaviour described at
	// Fleet): the handshake and its order, the extranonce2 sizes it
	// accepts and submits, extranonce2's byte order and when it restarts
	// at 0, when a new difficulty, extranonce or version mask applies,
	// which notifies abandon the work in hand and which only replace it
	// once the item being hashed ends, which shares it will not submit,
	// and how it answers mining.ping, client.get_version and
	// client.reconnect. Work is hashed in items of one extranonce2 over a
	// range of nonces, as an ASIC or a CPU thread takes it on. Options a
	// firmware lacks are ignored: cpuminer never sends mining.configure,
	// mining.suggest_difficulty or mining.extranonce.subscribe; Braiins OS
	// always negotiates version rolling and never subscribes to extranonce
	// changes; ESP-Miner always sends mining.configure.
	Firmware string
}

func (c FleetConfig) withDefaults() (FleetConfig, []net.IP, error) {
	var errs []error
	fw, err := ParseFirmware(c.Firmware)
	if err != nil {
		errs = append(errs, err)
	}
	c.Firmware = fw
	if n, err := c.checkClasses(); err != nil {
		errs = append(errs, err)
	} else {
		c.Miners = n
	}
	setDefault(&c.Miners, 1)
	setDefault(&c.User, DefaultUser)
	setDefault(&c.Password, "x")
	setDefault(&c.UserAgent, firmwareProfile(fw).userAgent)
	setDefault(&c.RetryDelay, DefaultRetryDelay)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.CloseGrace, DefaultCloseGrace)
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("sim: fleet address %q: %w", c.Addr, err))
	}
	if c.Miners < 0 || c.MaxSharesPerSecond < 0 || c.SuggestDifficulty < 0 || c.RampUp < 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("sim: miners, rate, suggested difficulty, ramp-up and warm-up must not be negative"))
	}
	var ips []net.IP
	for _, s := range c.SourceAddrs {
		ip := net.ParseIP(s)
		if ip == nil {
			errs = append(errs, fmt.Errorf("sim: source address %q is not an IP", s))
		}
		ips = append(ips, ip)
	}
	return c, ips, errors.Join(errs...)
}

// Fleet is a set of simulated miners, each a real Stratum v1 client on its
// own TCP connection: it subscribes (optionally after mining.configure for
// version rolling), authorizes as User.<index>, then hashes. For each job it
// builds the coinbase with its extranonce1 and an extranonce2 that counts up
// for the miner's whole life, the merkle root and the header (all through
// stratum.Job.Header), rolls the nonce (and, when rolling, the version bits
// within the negotiated mask every 256 nonces) and submits every header
// whose double SHA-256 meets the difficulty, at most MaxSharesPerSecond.
//
// mining.set_difficulty, mining.set_extranonce and mining.set_version_mask
// take effect from the next mining.notify, as the protocol intends (a pool
// sends them before the job they belong to). Every notify, clean or not,
// replaces the work in hand at once, so clean_jobs abandons old work.
// client.reconnect closes the connection and dials the given address (or the
// same one) after the given wait; when that dial fails, the miner goes back
// to Addr. Any other disconnect is followed by a redial after RetryDelay.
//
// That is the behaviour with FleetConfig.Firmware "". A firmware profile
// replaces it with that firmware's (see FleetConfig.Firmware).
//
// Every submit ends in exactly one bucket: accepted, rejected by label
// (stratum.Reason labels, ReasonPoolRejecting, LabelResultFalse, "other"),
// lost (the connection ended first) or still pending. Shares found but not
// submitted are counted apart (FleetStats.Unsubmitted).
type Fleet struct {
	cfg    FleetConfig
	fw     firmware // cfg.Firmware's behaviour
	ips    []net.IP
	log    zerolog.Logger
	ledger *ledger
	start  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// submitMu orders submits against Close: a submit registers itself
	// under the read lock, Close sets stopping under the write lock.
	submitMu sync.RWMutex
	stopping bool
	closed   atomic.Bool

	uaJSON []byte            // the user agent as a JSON string, for client.get_version
	labels map[reject]string // error code and message to rejection label

	st      fleetCounters
	classes []classCounters // one per FleetConfig.Classes, or a single one
	lat     latencyHist
}

// reject is an error answer as a miner reads it.
type reject struct {
	code int
	msg  string
}

// rejectLabels maps each stratum.Reason's (code, message) to its label, and
// the pool's FaultReject answer to ReasonPoolRejecting. Pairs shared by
// several reasons are left out: rejectLabel falls back on the code.
func rejectLabels() map[reject]string {
	m := map[reject]string{}
	seen := map[reject]int{}
	for _, r := range stratum.Reasons() {
		k := reject{r.Code(), r.Message()}
		m[k] = r.String()
		seen[k]++
	}
	for k, n := range seen {
		if n > 1 {
			delete(m, k)
		}
	}
	m[reject{stratum.CodeOther, "Pool rejecting"}] = ReasonPoolRejecting
	return m
}

// rejectLabel names an error answer: by exact code and message first, then
// by code alone, "other" when neither is known.
func (f *Fleet) rejectLabel(code int, msg string) string {
	if l, ok := f.labels[reject{code, msg}]; ok {
		return l
	}
	switch code {
	case stratum.CodeJobNotFound:
		return stratum.ReasonUnknownJob.String()
	case stratum.CodeDuplicate:
		return stratum.ReasonDuplicate.String()
	case stratum.CodeLowDifficulty:
		return stratum.ReasonLowDifficulty.String()
	case stratum.CodeUnauthorized:
		return stratum.ReasonNotAuthorized.String()
	case stratum.CodeNotSubscribed:
		return stratum.ReasonNotSubscribed.String()
	}
	return labelOther
}

type fleetCounters struct {
	up, ready, pending                       atomic.Int64
	dials, dialErrors, reconnects            atomic.Uint64
	submits, accepted, lost, malformed, jobs atomic.Uint64
	cleanJobs, difficulties, duplicates      atomic.Uint64
	refused                                  atomic.Uint64
	rejected, disconnects, unsubmitted       reasonCounters
	acceptedDiff, work, acceptedWork         atomicFloat
}

// hashesPerDifficulty is the work a share of difficulty 1 stands for, as
// pools count it: 2^32 hashes (exactly 2^48/0xffff for the target
// 0xffff·2^208).
const hashesPerDifficulty = 1 << 32

// StartFleet starts cfg.Miners miners and returns at once; they dial in
// the background (spread over RampUp). They stop when ctx is done or on
// Close.
func StartFleet(ctx context.Context, cfg FleetConfig) (*Fleet, error) {
	cfg, ips, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{
		cfg:    cfg,
		fw:     firmwareProfile(cfg.Firmware),
		ips:    ips,
		log:    cfg.Log.With().Str("component", "simfleet").Logger(),
		ledger: newLedger(cfg.Ledger),
		start:  time.Now(),
		ctx:    ctx,
		cancel: cancel,
	}
	f.uaJSON, _ = json.Marshal(cfg.UserAgent) // a string always marshals
	f.labels = rejectLabels()
	f.st.rejected = newReasonCounters(ReasonPoolRejecting, LabelResultFalse)
	f.st.disconnects = reasonCounters{}
	for _, c := range causes {
		f.st.disconnects[c] = new(atomic.Uint64)
	}
	f.st.disconnects[labelOther] = new(atomic.Uint64)
	f.st.unsubmitted = reasonCounters{labelOther: new(atomic.Uint64)}
	for _, r := range unsubmittedReasons {
		f.st.unsubmitted[r] = new(atomic.Uint64)
	}
	f.classes = make([]classCounters, max(len(cfg.Classes), 1))
	specs, turn := cfg.layout(), dialOrder(cfg.Miners, cfg.DialSeed)
	f.wg.Add(cfg.Miners)
	for i, sp := range specs {
		m := &miner{f: f, idx: i, worker: sp.worker, rate: sp.rate, cls: &f.classes[sp.class], addr: cfg.Addr}
		if len(ips) > 0 {
			m.local = &net.TCPAddr{IP: ips[i%len(ips)]}
		}
		var delay time.Duration
		if cfg.Miners > 1 {
			delay = cfg.RampUp * time.Duration(turn[i]) / time.Duration(cfg.Miners)
		}
		go m.run(delay)
	}
	f.log.Info().Int("miners", cfg.Miners).Str("remote", cfg.Addr).Str("firmware", cfg.Firmware).Msg("fleet started")
	return f, nil
}

// beginSubmit registers a submit unless the fleet is stopping.
func (f *Fleet) beginSubmit() bool {
	f.submitMu.RLock()
	defer f.submitMu.RUnlock()
	if f.stopping {
		return false
	}
	f.st.pending.Add(1)
	f.st.submits.Add(1)
	return true
}

// Close stops submitting, waits up to CloseGrace for the answers to shares
// in flight, then closes every connection and waits for every miner
// goroutine. Shares still unanswered are counted as lost ("closed").
func (f *Fleet) Close() error {
	if f.closed.Swap(true) {
		f.wg.Wait()
		return nil
	}
	f.submitMu.Lock()
	f.stopping = true
	f.submitMu.Unlock()
	deadline := time.Now().Add(f.cfg.CloseGrace)
	for f.st.pending.Load() > 0 && time.Now().Before(deadline) && f.ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	f.cancel()
	f.wg.Wait()
	f.log.Info().Str("stats", f.Stats().String()).Msg("fleet stopped")
	return f.ledger.err()
}

// Drain stops submitting and waits up to within for the answers to the
// shares in flight, leaving every connection open, so that the other
// side's per-connection books can be read in full. It reports whether
// every share was answered. Close still closes the fleet afterwards.
func (f *Fleet) Drain(within time.Duration) bool {
	f.submitMu.Lock()
	f.stopping = true
	f.submitMu.Unlock()
	deadline := time.Now().Add(within)
	for f.st.pending.Load() > 0 && time.Now().Before(deadline) && f.ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return f.st.pending.Load() == 0
}

// FleetStats is a snapshot of a fleet's counters. Taken while shares flow,
// each counter is exact but they are not from one instant; after Close:
// Submits == Accepted + Σ Rejected + Lost + Pending, with Pending 0.
type FleetStats struct {
	Elapsed            time.Duration     `json:"elapsed_ns"`
	Miners             int               `json:"miners"`
	Up                 int64             `json:"up"`    // TCP connections open now
	Ready              int64             `json:"ready"` // of which subscribed and authorized
	Dials              uint64            `json:"dials"`
	DialErrors         uint64            `json:"dial_errors"`
	Disconnects        map[string]uint64 `json:"disconnects"`    // by cause, non-zero only
	Reconnects         uint64            `json:"reconnects"`     // client.reconnect honoured
	Jobs               uint64            `json:"jobs"`           // mining.notify received
	CleanJobs          uint64            `json:"clean_jobs"`     // of which with clean_jobs true
	Difficulties       uint64            `json:"set_difficulty"` // mining.set_difficulty received
	Refused            uint64            `json:"refused"`        // sessions the firmware ended over the pool's terms (Disconnects["extranonce2_size"])
	Submits            uint64            `json:"submits"`
	Accepted           uint64            `json:"accepted"`
	Rejected           map[string]uint64 `json:"rejected"`    // by label, non-zero only
	Duplicates         uint64            `json:"duplicates"`  // answers rejecting a share as a duplicate
	Lost               uint64            `json:"lost"`        // connection ended before the answer
	Pending            int64             `json:"pending"`     // awaiting an answer now
	Unsubmitted        map[string]uint64 `json:"unsubmitted"` // shares found but not submitted, by reason (Unsubmitted*), non-zero only
	AcceptedDifficulty float64           `json:"accepted_difficulty"`

	// Work is Σ over submitted shares of the difficulty of the work item
	// each was found on × 2^32: the hashes the miners did that count.
	// AcceptedWork is the same over the shares answered true.
	Work         float64 `json:"work"`
	AcceptedWork float64 `json:"accepted_work"`

	Malformed       uint64       `json:"malformed"` // lines received that could not be used
	Latency         LatencyStats `json:"latency"`   // submit to answer, after the warm-up
	SharesPerSecond float64      `json:"shares_per_second"`

	// Classes is each FleetConfig.Classes entry's part, in order; nil
	// without classes.
	Classes []ClassStats `json:"classes,omitempty"`
}

// RejectedTotal returns Σ Rejected.
func (s FleetStats) RejectedTotal() uint64 { return sumCounts(s.Rejected) }

// String formats s on one line.
func (s FleetStats) String() string {
	return fmt.Sprintf("t=%s up=%d/%d ready=%d dials=%d disconnects=%d%s reconnects=%d jobs=%d submits=%d accepted=%d rejected=%d%s lost=%d pending=%d unsubmitted=%d%s malformed=%d shares/s=%.1f work=%.6g latency %s",
		s.Elapsed.Round(time.Second), s.Up, s.Miners, s.Ready, s.Dials,
		sumCounts(s.Disconnects), formatCounts(s.Disconnects), s.Reconnects, s.Jobs,
		s.Submits, s.Accepted, s.RejectedTotal(), formatCounts(s.Rejected), s.Lost, s.Pending,
		sumCounts(s.Unsubmitted), formatCounts(s.Unsubmitted),
		s.Malformed, s.SharesPerSecond, s.Work, s.Latency)
}

// Stats returns a snapshot of f's counters. SharesPerSecond is accepted
// shares over the fleet's whole life; rates over an interval come from two
// snapshots.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{
		Elapsed:            time.Since(f.start),
		Miners:             f.cfg.Miners,
		Up:                 f.st.up.Load(),
		Ready:              f.st.ready.Load(),
		Dials:              f.st.dials.Load(),
		DialErrors:         f.st.dialErrors.Load(),
		Disconnects:        f.st.disconnects.snapshot(),
		Reconnects:         f.st.reconnects.Load(),
		Jobs:               f.st.jobs.Load(),
		CleanJobs:          f.st.cleanJobs.Load(),
		Difficulties:       f.st.difficulties.Load(),
		Refused:            f.st.refused.Load(),
		Submits:            f.st.submits.Load(),
		Accepted:           f.st.accepted.Load(),
		Rejected:           f.st.rejected.snapshot(),
		Duplicates:         f.st.duplicates.Load(),
		Lost:               f.st.lost.Load(),
		Pending:            f.st.pending.Load(),
		Unsubmitted:        f.st.unsubmitted.snapshot(),
		AcceptedDifficulty: f.st.acceptedDiff.Load(),
		Work:               f.st.work.Load(),
		AcceptedWork:       f.st.acceptedWork.Load(),
		Malformed:          f.st.malformed.Load(),
		Latency:            f.lat.snapshot(),
		Classes:            f.classStats(),
	}
	if sec := s.Elapsed.Seconds(); sec > 0 {
		s.SharesPerSecond = float64(s.Accepted) / sec
	}
	return s
}

// jitter returns d scaled by a random factor in [0.5, 1.5).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)+1))
}
