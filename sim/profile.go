package sim

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"switchyard/stratum"
)

// Pool profiles: PoolConfig.Profile makes the simulated pool behave, on the
// wire and in what it pays for, like one real pool implementation. "" keeps
// stratumsim's own behaviour (see Pool).
//
// Each profile was modelled by reading the pool's source; what it reproduces:
//
// ProfileCkpool, after ckpool src/stratifier.c (parse_method, init_client,
// parse_submit, add_submit, suggest_diff, sshare_process) and
// src/libckpool.h (share_errs):
//   - extranonce1 4 bytes, extranonce2 8 (ckpool's nonce1length and
//     nonce2length defaults); starting difficulty 42 (startdiff).
//   - The subscribe answer is followed at once by mining.set_difficulty and
//     the current job (clean_jobs=true), before any authorize; the authorize
//     answer comes later, preceded by client.show_message
//     "Authorised, welcome to …". Later jobs go to authorised connections.
//   - Vardiff per connection, re-evaluated once 72 shares (accepted or
//     stale) or 240 s have passed since the last change: the rate of
//     difficulty per second over that window gives drr = rate/difficulty;
//     nothing changes while 0.15 < drr < 0.4, otherwise the difficulty
//     becomes rate × 3.33 s (0.3 shares/s). ckpool rounds to an integer and
//     floors at mindiff 1; simulated difficulties are far below 1, so here
//     neither applies unless Vardiff.Min is set.
//   - A new difficulty (vardiff, SetDifficulty, suggest_difficulty) applies
//     from the next job (diff_change_job_id); a share on an earlier job is
//     judged, and credited, at the lower of the old and new difficulty.
//   - mining.suggest_difficulty is never answered, and ignored before
//     authorize. mining.extranonce.subscribe and unknown methods are not
//     answered; ckpool never sends mining.set_extranonce.
//   - mining.configure answers ckpool's own version mask, not the
//     intersection with the miner's.
//   - An extranonce2 of the wrong length is cut or zero-padded to size and
//     hashed, not refused (ckpool fixes "broken clients").
//   - Share verdicts answer result false with error null and the reason in
//     "reject-reason": "Stale", "Duplicate", "Above target",
//     "Invalid JobID", "Ntime out of range"; parameter errors put a string in
//     error ("Worker mismatch", "Invalid version mask", "No nonce", …).
//     A submit from an unauthorised connection gets no answer at all.
//     (The newest ckpool, rewritten on yyjson, answers [code, "Stale", null]
//     instead; the long-deployed shape is modelled.)
//   - Every hashed share that meets the network target is submitted as a
//     block, stale or duplicate alike ("Test we haven't solved a block
//     regardless of share status").
//
// ProfilePublicPool, after public-pool src/models/StratumV1Client.ts,
// StratumV1ClientStatistics.ts and stratum-messages/*.ts:
//   - extranonce1 4 bytes (the session id), extranonce2 4; starting
//     difficulty 16384.
//   - Once subscribed and authorized: the authorize answer, then
//     mining.set_difficulty (skipped when the miner suggested one), then
//     the current job.
//   - mining.suggest_difficulty is answered with a mining.set_difficulty
//     notification, never a result, and only the first one counts.
//   - Vardiff every 60 s per connection over its last 31 accepted shares:
//     aim = Σ difficulty / seconds spanned × 10 s; the difficulty changes
//     when aim is outside [d/2, 2d], to the power of two at or below aim
//     (with public-pool's ×100 steps below 1, floor 0.00001). With fewer
//     than 5 shares after 60 s it divides by 6.
//   - A change applies at once, with no grace: shares are judged and
//     credited at the session difficulty in force when they arrive, and the
//     change is followed by a job (public-pool builds a new one; the
//     simulation re-sends the current one, clean_jobs=false).
//   - Jobs of an earlier block are forgotten: "Job not found" (21). Shares
//     are not checked for duplicates: a repeated share is accepted and
//     paid again (counted in PoolStats.Duplicates). A share that does not
//     hash to its difficulty, whatever the cause, is "Difficulty too low"
//     (23). Rejects are {"id":…,"result":null,"error":[code,"msg",""]}.
//     A submit before the session is initialised closes the connection;
//     unknown methods and mining.extranonce.subscribe are not answered.
//   - Only a share accepted at the session difficulty is submitted as a
//     block.
//
// ProfileMiningcore, after miningcore src/Miningcore/Blockchain/Bitcoin/
// (BitcoinPool.cs, BitcoinJob.cs, BitcoinJobManager.cs,
// BitcoinExtraNonceProvider.cs), VarDiff/VarDiffManager.cs and
// JsonRpc/JsonRpcResponse.cs:
//   - extranonce1 4 bytes, extranonce2 4 (an 8-byte placeholder less 4);
//     the starting difficulty is each port's configured one (1 here).
//   - The subscribe answer is followed at once by mining.set_difficulty and
//     the current job; later jobs go to subscribed and authorized
//     connections.
//   - Vardiff on each accepted share: the mean of the last 10 intervals
//     between shares (and the time since the last one) against a 15 s
//     target with 30 % variance, at most once per 90 s retarget time; the
//     new difficulty is d × target / mean. (miningcore also retargets idle
//     connections on a timer; that is not modelled.)
//   - A change applies at once (mining.set_difficulty then the current job
//     again); a share that misses the new difficulty but meets the previous
//     one is accepted and credited at the previous one. A share passes at
//     99 % of its difficulty; block candidates pass whatever their
//     difficulty.
//   - Jobs are not refused as stale: any of the 4 most recent jobs is
//     accepted, older ones are "job not found". Rejects are
//     {"result":false,"error":{"code":23,"message":"low difficulty share
//     (…)","data":null},"id":…}; accepted shares are {"result":true,"id":…}
//     with no error member.
//   - mining.extranonce.subscribe is answered true, but mining.set_extranonce
//     is never sent; unknown methods get 20 "Unsupported request …".
//
// ProfileNiceHash, after NiceHash's public stratum notes and the wire logs
// in bitaxeorg/ESP-Miner issue #193 and pull request #1064 and
// nicehash/Specifications issues #17 and #18:
//   - extranonce1 5 bytes, extranonce2 3 (NiceHash takes a byte of the
//     buyer's pool's extranonce2 for itself).
//   - The authorize answer, then mining.set_difficulty, then the job.
//   - A new difficulty applies from the next job: a share is judged and
//     credited at the difficulty its job was sent under.
//   - mining.set_extranonce goes to every subscribed connection, whether it
//     sent mining.extranonce.subscribe or not; client.reconnect carries a
//     host and port.
//   - Rejects are {"id":…,"result":false,"error":[code,"Msg."]}: 1 "Share
//     above target.", 2 "Job not found." as seen in those logs; the codes of
//     the rarer ones are the simulation's.
//   - No vardiff: NiceHash's is not public.
//
// None of the four sends mining.ping in the sources read (ckpool only
// recognises a "pong" result); PoolConfig.PingInterval adds pings to any
// profile.
const (
	ProfileCkpool     = "ckpool"
	ProfilePublicPool = "public-pool"
	ProfileMiningcore = "miningcore"
	ProfileNiceHash   = "nicehash"
)

// poolPingMethod is the keepalive some pools send; miners answer "pong".
const poolPingMethod = "mining.ping"

// Profiles lists the profile names PoolConfig.Profile accepts besides "".
func Profiles() []string {
	return []string{ProfileCkpool, ProfilePublicPool, ProfileMiningcore, ProfileNiceHash}
}

// ParseProfile returns the profile called s: "" (stratumsim's own) or one of
// Profiles, ignoring case.
func ParseProfile(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || slices.Contains(Profiles(), s) {
		return s, nil
	}
	return "", fmt.Errorf("sim: unknown pool profile %q (want %s, or empty for stratumsim's own)", s, strings.Join(Profiles(), ", "))
}

// Handshake is the order in which a pool sends the subscribe and authorize
// answers, the first mining.set_difficulty and the first mining.notify.
type Handshake uint8

// Handshake orders. A proxy must cope with every one of them.
const (
	HandshakeProfile        Handshake = iota // the profile's own order
	HandshakeAfterAuthorize                  // authorize answer, set_difficulty, notify (stratumsim, public-pool, NiceHash)
	HandshakeAfterSubscribe                  // subscribe answer, set_difficulty, notify; authorize answer later (ckpool, miningcore)
	HandshakeNotifyFirst                     // subscribe answer, notify; authorize answer, then set_difficulty
	numHandshakes
)

var handshakeNames = [numHandshakes]string{"profile", "after-authorize", "after-subscribe", "notify-first"}

// String returns the order's name as ParseHandshake accepts it.
func (h Handshake) String() string {
	if h < numHandshakes {
		return handshakeNames[h]
	}
	return fmt.Sprintf("handshake(%d)", uint8(h))
}

// ParseHandshake returns the order called s ("profile", "after-authorize",
// "after-subscribe" or "notify-first"; "" means "profile").
func ParseHandshake(s string) (Handshake, error) {
	if s == "" {
		return HandshakeProfile, nil
	}
	for h, name := range handshakeNames {
		if s == name {
			return Handshake(h), nil
		}
	}
	return 0, fmt.Errorf("sim: unknown handshake %q (want %s)", s, strings.Join(handshakeNames[:], ", "))
}

// Vardiff tunes a profile's pool-side difficulty retargeting; a zero field
// takes the profile's value (see the profile constants). It has no effect
// on the "" and nicehash profiles, which keep each connection's difficulty.
type Vardiff struct {
	Off      bool          // never retarget (tests pin the difficulty)
	Shares   int           // ckpool: shares since the last change before re-evaluating (72); miningcore: intervals averaged (10)
	Interval time.Duration // ckpool: or this long since the last change (240 s); public-pool: its check period (60 s); miningcore: retarget time (90 s)
	Target   time.Duration // time per share aimed at: ckpool 3.33 s, public-pool 10 s, miningcore 15 s
	Min, Max float64       // bounds of a retarget; 0: none (public-pool: 0.00001)
}

// diffRule is how a connection's difficulty change applies to shares.
type diffRule uint8

const (
	ruleLowerOfJob  diffRule = iota // stratumsim: lower of the job's difficulty and the current one
	ruleNextJob                     // ckpool: from the next job; earlier jobs at min(old, new)
	ruleJobTerms                    // NiceHash: each job at the difficulty it was sent under
	ruleAtOnce                      // public-pool: the current difficulty, no grace
	ruleAtOnceGrace                 // miningcore: the current one, else the previous one
)

type vardiffAlgo uint8

const (
	vardiffNone vardiffAlgo = iota
	vardiffCkpool
	vardiffPublicPool
	vardiffMiningcore
)

// answerStyle is the shape of a pool's answers.
type answerStyle uint8

const (
	styleStratum answerStyle = iota // {"id":…,"result":…,"error":[code,"msg",null]}
	styleCkpool
	stylePublicPool
	styleMiningcore
	styleNiceHash
)

// profile is the behaviour of one pool implementation.
type profile struct {
	name             string
	en1Size, en2Size int
	startDiff        float64
	handshake        Handshake
	rule             diffRule
	vardiff          vardiffAlgo
	vd               Vardiff
	style            answerStyle
	resendOnChange   bool    // a difficulty change is followed by the current job again
	welcome          bool    // client.show_message before the authorize answer
	silentSuggest    bool    // mining.suggest_difficulty is not answered (ckpool)
	suggestAsDiff    bool    // answered with set_difficulty, first one only (public-pool)
	ignoreSuggest    bool    // answered true, not acted on (NiceHash)
	xnsub            uint8   // xnsubAnswer, xnsubAnswerOnly, xnsubSilent or xnsubAll
	noStale          bool    // earlier blocks' jobs stay valid (miningcore)
	maxJobs          int     // jobs accepted, newest first; 0: all remembered
	acceptDuplicates bool    // no duplicate check (public-pool)
	slack            float64 // a share passes at difficulty × slack
	blockIfAccepted  bool    // only accepted shares become blocks (public-pool)
	blockBeatsDiff   bool    // a block candidate passes whatever its difficulty (miningcore)
	padExtranonce2   bool    // a wrong-length extranonce2 is cut or padded (ckpool)
	ownMask          bool    // mining.configure answers the pool's mask (ckpool)
	silentUnknown    bool    // unknown methods are not answered
	anyWorker        bool    // the submit's worker name is not checked
	closeEarlySubmit bool    // a submit before the session is ready closes it (public-pool)
	staleForgotten   bool    // a share on an earlier block's job is refused unhashed (stratumsim, public-pool)
	silentUnauth     bool    // a submit from an unauthorised connection is not answered (ckpool)
}

// mining.extranonce.subscribe handling.
const (
	xnsubAnswer     uint8 = iota // answered true; set_extranonce to the connections that asked (stratumsim)
	xnsubAnswerOnly              // answered true; set_extranonce never sent (miningcore)
	xnsubSilent                  // not answered, never sent (ckpool, public-pool)
	xnsubAll                     // answered true; set_extranonce to every subscribed connection (NiceHash)
)

// lookupProfile returns the behaviour of a profile name ParseProfile accepted.
func lookupProfile(name string) profile {
	switch name {
	case ProfileCkpool:
		return profile{
			name: name, en1Size: 4, en2Size: 8, startDiff: 42,
			handshake: HandshakeAfterSubscribe, rule: ruleNextJob,
			vardiff: vardiffCkpool, vd: Vardiff{Shares: 72, Interval: 240 * time.Second, Target: 3330 * time.Millisecond},
			style: styleCkpool, welcome: true, silentSuggest: true, xnsub: xnsubSilent,
			slack: 1, padExtranonce2: true, ownMask: true, silentUnknown: true, silentUnauth: true,
		}
	case ProfilePublicPool:
		return profile{
			name: name, en1Size: 4, en2Size: 4, startDiff: 16384,
			handshake: HandshakeAfterAuthorize, rule: ruleAtOnce,
			vardiff: vardiffPublicPool, vd: Vardiff{Shares: 5, Interval: 60 * time.Second, Target: 10 * time.Second, Min: 0.00001},
			style: stylePublicPool, resendOnChange: true, suggestAsDiff: true, xnsub: xnsubSilent,
			acceptDuplicates: true, slack: 1, blockIfAccepted: true, silentUnknown: true,
			anyWorker: true, closeEarlySubmit: true, staleForgotten: true,
		}
	case ProfileMiningcore:
		return profile{
			name: name, en1Size: 4, en2Size: 4, startDiff: 1,
			handshake: HandshakeAfterSubscribe, rule: ruleAtOnceGrace,
			vardiff: vardiffMiningcore, vd: Vardiff{Shares: 10, Interval: 90 * time.Second, Target: 15 * time.Second},
			style: styleMiningcore, resendOnChange: true, xnsub: xnsubAnswerOnly,
			noStale: true, maxJobs: 4, slack: 0.99, blockBeatsDiff: true, anyWorker: true,
		}
	case ProfileNiceHash:
		return profile{
			name: name, en1Size: 5, en2Size: 3, startDiff: DefaultDifficulty,
			handshake: HandshakeAfterAuthorize, rule: ruleJobTerms,
			style: styleNiceHash, ignoreSuggest: true, xnsub: xnsubAll, slack: 1,
		}
	}
	return profile{
		startDiff: DefaultDifficulty, handshake: HandshakeAfterAuthorize, rule: ruleLowerOfJob,
		style: styleStratum, xnsub: xnsubAnswer, slack: 1, staleForgotten: true,
	}
}

// withVardiff returns v with its zero fields taken from the profile's.
func (pr *profile) withVardiff(v Vardiff) Vardiff {
	setDefault(&v.Shares, pr.vd.Shares)
	setDefault(&v.Interval, pr.vd.Interval)
	setDefault(&v.Target, pr.vd.Target)
	setDefault(&v.Min, pr.vd.Min)
	setDefault(&v.Max, pr.vd.Max)
	if pr.vardiff == vardiffNone {
		v.Off = true
	}
	return v
}

// ---- answers ----

// appendAnswer appends a successful answer whose result is raw JSON.
func (pr *profile) appendAnswer(dst, id, raw []byte) []byte {
	id = nullIfEmpty(id)
	switch pr.style {
	case styleCkpool:
		dst = append(dst, `{"result":`...)
		dst = append(dst, raw...)
		dst = append(dst, `,"error":null,"id":`...)
		dst = append(dst, id...)
		return append(dst, "}\n"...)
	case styleMiningcore: // Newtonsoft drops the null error
		dst = append(dst, `{"result":`...)
		dst = append(dst, raw...)
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
		return append(dst, "}\n"...)
	case stylePublicPool:
		dst = append(dst, `{"id":`...)
		dst = append(dst, id...)
		dst = append(dst, `,"error":null,"result":`...)
		dst = append(dst, raw...)
		return append(dst, "}\n"...)
	}
	return stratum.AppendResultRaw(dst, id, raw)
}

func nullIfEmpty(id []byte) []byte {
	if len(id) == 0 {
		return []byte("null")
	}
	return id
}

// verdict is what a refused share is answered about.
type verdict struct {
	reason    stratum.Reason
	label     string  // ReasonPoolRejecting or ""
	shareDiff float64 // the share's own difficulty, when hashed
	detail    string  // ckpool: the parameter error's text
}

// appendReject appends the answer to a refused share, or nothing when the
// pool does not answer it.
func (pr *profile) appendReject(dst, id []byte, v verdict) []byte {
	if v.label == ReasonPoolRejecting {
		return stratum.AppendError(dst, id, stratum.CodeOther, "Pool rejecting")
	}
	id = nullIfEmpty(id)
	r := v.reason
	switch pr.style {
	case styleCkpool:
		switch r {
		case stratum.ReasonStale, stratum.ReasonDuplicate, stratum.ReasonLowDifficulty,
			stratum.ReasonUnknownJob, stratum.ReasonBadNTime:
			dst = append(dst, `{"reject-reason":`...)
			dst = strconv.AppendQuote(dst, ckpoolReason(r))
			dst = append(dst, `,"result":false,"error":null,"id":`...)
		case stratum.ReasonNotAuthorized, stratum.ReasonNotSubscribed:
			if v.detail == "" {
				return dst // an unauthorised connection's submit is dropped unanswered
			}
			fallthrough // "Worker mismatch"
		default:
			msg := v.detail
			if msg == "" {
				msg = ckpoolReason(r)
			}
			dst = append(dst, `{"result":false,"error":`...)
			dst = strconv.AppendQuote(dst, msg)
			dst = append(dst, `,"id":`...)
		}
		dst = append(dst, id...)
		return append(dst, "}\n"...)
	case stylePublicPool:
		code, msg := stratum.CodeOther, "Mining Submit validation error"
		switch r {
		case stratum.ReasonStale, stratum.ReasonUnknownJob:
			code, msg = stratum.CodeJobNotFound, "Job not found"
		case stratum.ReasonLowDifficulty:
			code, msg = stratum.CodeLowDifficulty, "Difficulty too low"
		case stratum.ReasonDuplicate:
			code, msg = stratum.CodeDuplicate, "Duplicate share"
		case stratum.ReasonNotAuthorized:
			msg = "Authorization validation error"
		}
		dst = append(dst, `{"id":`...)
		dst = append(dst, id...)
		dst = append(dst, `,"result":null,"error":[`...)
		dst = strconv.AppendInt(dst, int64(code), 10)
		dst = append(dst, ',')
		dst = strconv.AppendQuote(dst, msg)
		return append(dst, `,""]}`+"\n"...)
	case styleMiningcore:
		code, msg := miningcoreReason(r, v.shareDiff)
		if v.detail != "" {
			msg = v.detail
		}
		dst = append(dst, `{"result":false,"error":{"code":`...)
		dst = strconv.AppendInt(dst, int64(code), 10)
		dst = append(dst, `,"message":`...)
		dst = strconv.AppendQuote(dst, msg)
		dst = append(dst, `,"data":null},"id":`...)
		dst = append(dst, id...)
		return append(dst, "}\n"...)
	case styleNiceHash:
		code, msg := niceHashReason(r)
		dst = append(dst, `{"id":`...)
		dst = append(dst, id...)
		dst = append(dst, `,"result":false,"error":[`...)
		dst = strconv.AppendInt(dst, int64(code), 10)
		dst = append(dst, ',')
		dst = strconv.AppendQuote(dst, msg)
		return append(dst, "]}\n"...)
	}
	return stratum.AppendReject(dst, id, r)
}

// ckpoolReason is ckpool's share_errs text for r.
func ckpoolReason(r stratum.Reason) string {
	switch r {
	case stratum.ReasonStale:
		return "Stale"
	case stratum.ReasonDuplicate:
		return "Duplicate"
	case stratum.ReasonLowDifficulty:
		return "Above target"
	case stratum.ReasonUnknownJob:
		return "Invalid JobID"
	case stratum.ReasonBadNTime:
		return "Ntime out of range"
	case stratum.ReasonBadExtranonce2:
		return "Invalid nonce2 length"
	case stratum.ReasonBadVersion:
		return "Invalid version mask"
	case stratum.ReasonNotAuthorized:
		return "Worker mismatch"
	}
	return "Invalid array size"
}

// miningcoreReason is miningcore's StratumError code and message for r.
func miningcoreReason(r stratum.Reason, shareDiff float64) (int, string) {
	switch r {
	case stratum.ReasonStale, stratum.ReasonUnknownJob:
		return stratum.CodeJobNotFound, "job not found"
	case stratum.ReasonDuplicate:
		return stratum.CodeDuplicate, "duplicate share"
	case stratum.ReasonLowDifficulty:
		return stratum.CodeLowDifficulty, "low difficulty share (" + strconv.FormatFloat(shareDiff, 'g', -1, 64) + ")"
	case stratum.ReasonBadExtranonce2:
		return stratum.CodeOther, "incorrect size of extraNonce2"
	case stratum.ReasonBadNTime:
		return stratum.CodeOther, "ntime out of range"
	case stratum.ReasonBadVersion:
		return stratum.CodeOther, "rolling-version mask violation"
	case stratum.ReasonNotAuthorized:
		return stratum.CodeUnauthorized, "unauthorized worker"
	case stratum.ReasonNotSubscribed:
		return stratum.CodeNotSubscribed, "not subscribed"
	}
	return stratum.CodeOther, "invalid params"
}

// niceHashReason is the NiceHash-style code and message for r.
func niceHashReason(r stratum.Reason) (int, string) {
	switch r {
	case stratum.ReasonLowDifficulty:
		return 1, "Share above target."
	case stratum.ReasonStale, stratum.ReasonUnknownJob:
		return 2, "Job not found."
	case stratum.ReasonDuplicate:
		return 3, "Duplicate share."
	case stratum.ReasonNotAuthorized:
		return stratum.CodeUnauthorized, "Unauthorized worker."
	case stratum.ReasonNotSubscribed:
		return stratum.CodeNotSubscribed, "Not subscribed."
	}
	return stratum.CodeOther, r.Message() + "."
}

// ckpoolParamError is ckpool's message for a submit whose params do not
// parse, checked in ckpool's order.
func ckpoolParamError(params [][]byte) string {
	if len(params) < 5 {
		return "Invalid array size"
	}
	for i, msg := range [...]string{"No username", "No job_id", "No nonce2", "No ntime", "No nonce"} {
		v, err := stratum.StringParam(params[i])
		if err != nil || len(v) == 0 {
			return msg
		}
		if i >= 2 && !isHex(v) {
			return msg
		}
	}
	return "No nonce"
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// fitExtranonce2 cuts en2 or pads it with zero bytes to n bytes, as ckpool
// does for clients that send the wrong length.
func fitExtranonce2(en2 []byte, n int) []byte {
	if len(en2) == n {
		return en2
	}
	out := make([]byte, n)
	copy(out, en2)
	return out
}

// nearestPowerOfTwo is public-pool's rounding of a vardiff aim: the power
// of two at or below v for v >= 1, and for v < 1 the same taken on v×100
// and divided by 100 again, never below floor.
func nearestPowerOfTwo(v, floor float64) float64 {
	scale := 1.0
	for range 8 {
		switch {
		case !(v > 0):
			return 0
		case v < floor:
			return floor / scale
		case v >= 1:
			n := uint64(math.Min(v, 1<<62))
			return float64(uint64(1)<<(63-bits.LeadingZeros64(n))) / scale
		}
		v *= 100
		scale *= 100
	}
	return floor / scale
}

// ---- pool-wide hooks ----

// SetDifficulty changes every connection's difficulty to d now and sends
// mining.set_difficulty (connections still in their handshake get d with
// their first one). How the change applies to shares on jobs sent before it
// follows the profile: see the Profile constants. It returns how many
// connections were changed.
func (p *Pool) SetDifficulty(d float64) (int, error) {
	if !(d > 0) || math.IsInf(d, 1) {
		return 0, fmt.Errorf("sim: difficulty %g: want a positive number", d)
	}
	n := 0
	now := time.Now()
	for _, c := range p.connList() {
		c.mu.Lock()
		if c.retargetLocked(d, now, true) {
			n++
		}
		c.mu.Unlock()
	}
	p.log.Info().Float64("difficulty", d).Int("connections", n).Msg("difficulty set")
	return n, nil
}

// ResendJob sends the current job again to every connection that has had
// it: same job id, same content, clean_jobs=true, as ckpool does when it
// refreshes a client. Shares on that job keep being judged as before (it is
// the same job). It returns how many connections got it.
func (p *Pool) ResendJob() int {
	pj := p.currentJob()
	if pj == nil {
		return 0
	}
	n := 0
	for _, c := range p.connList() {
		c.mu.Lock()
		if c.resendLocked(pj, true) {
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// jobAge returns how many jobs were issued after the one with id (0: the
// current job) and false when id is not remembered.
func (p *Pool) jobAge(id string) (int, bool) {
	p.jobsMu.RLock()
	defer p.jobsMu.RUnlock()
	i := slices.Index(p.order, id)
	if i < 0 {
		return 0, false
	}
	return len(p.order) - 1 - i, true
}

// profileLoop runs the pool-wide timers of a profile: public-pool's vardiff
// check and mining.ping.
func (p *Pool) profileLoop(vardiff, ping time.Duration) {
	defer p.wg.Done()
	var vt, pt <-chan time.Time
	if vardiff > 0 {
		t := time.NewTicker(vardiff)
		defer t.Stop()
		vt = t.C
	}
	if ping > 0 {
		t := time.NewTicker(ping)
		defer t.Stop()
		pt = t.C
	}
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-vt:
			for _, c := range p.connList() {
				c.publicPoolTick(now)
			}
		case <-pt:
			for _, c := range p.connList() {
				c.ping()
			}
		}
	}
}
