package sim

import (
	"encoding/hex"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchyard/stratum"
)

// poolConn is one miner (or proxy) connection to the pool: a reader
// goroutine that handles requests and a writer goroutine that sends queued
// lines, so a slow fault never stalls reading.
type poolConn struct {
	p    *Pool
	id   uint64
	nc   net.Conn
	done chan struct{} // closed when the connection ends
	once sync.Once

	mu            sync.Mutex // guards the fields below
	en1           []byte
	en2Size       int
	mask          uint32 // negotiated with mining.configure
	diff          float64
	oldDiff       float64 // the difficulty before the last change (ckpool, miningcore); 0: none
	changeSeq     uint64  // ckpool: jobs sent before this sequence number predate the last change
	jobSeq        uint64  // jobs sent on this connection so far
	subscribed    bool
	extranonceSub bool
	workers       map[string]bool
	diffSent      bool             // the first mining.set_difficulty went out
	fed           bool             // the first job went out
	ready         bool             // subscribed and authorized: gets every new job
	suggested     bool             // public-pool: a suggestion was taken
	sent          map[string]terms // jobs sent here, with the terms they were sent under
	dedup         stratum.Dedup
	vd            vdState
	pingID        uint64 // the last mining.ping sent
	pingOut       bool   // and it is unanswered
	out           []outItem
	wake          chan struct{}
}

// terms are what a job was sent to a connection with.
type terms struct {
	en1     []byte
	en2Size int
	diff    float64
	seq     uint64 // the connection's job sequence number
}

type outItem struct {
	line []byte    // not modified after queueing
	due  time.Time // FaultSlow: not before
}

func newPoolConn(p *Pool, nc net.Conn) *poolConn {
	return &poolConn{
		p:       p,
		id:      p.connIDs.Add(1),
		nc:      nc,
		done:    make(chan struct{}),
		en1:     p.extranonce1(),
		en2Size: p.cfg.Extranonce2Size,
		diff:    p.cfg.Difficulty,
		workers: make(map[string]bool),
		sent:    make(map[string]terms),
		wake:    make(chan struct{}, 1),
	}
}

func (c *poolConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
	})
}

func (c *poolConn) readLoop() {
	defer c.p.wg.Done()
	defer c.p.dropConn(c)
	defer c.finish()
	lr := stratum.NewLineReader(c.nc, stratum.DefaultMaxLineLen)
	var m stratum.Message
	for {
		line, err := lr.ReadLine()
		if err != nil {
			return
		}
		if !c.p.hold(c.done) {
			return
		}
		if err := m.Decode(line); err != nil {
			c.p.st.malformed.Add(1)
			continue
		}
		c.handle(&m)
	}
}

// finish counts what the connection leaves unanswered.
func (c *poolConn) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingOut {
		c.pingOut = false
		c.p.st.pingsMissed.Add(1)
	}
}

func (c *poolConn) writeLoop() {
	defer c.p.wg.Done()
	var batch []outItem
	var buf []byte
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.out = c.out, batch[:0]
		c.mu.Unlock()
		for i := 0; i < len(batch); {
			if d := time.Until(batch[i].due); d > 0 && !sleep(d, c.done) {
				return
			}
			if !c.p.hold(c.done) {
				return
			}
			buf = buf[:0]
			now := time.Now()
			for ; i < len(batch) && !batch[i].due.After(now); i++ {
				buf = append(buf, batch[i].line...)
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.close()
				return
			}
		}
		clear(batch)
	}
}

// sleep waits d or until done is closed, which it reports as false.
func sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// queueLocked queues line (which must not change afterwards) for the writer.
func (c *poolConn) queueLocked(line []byte) {
	if len(c.out) >= maxOutQueue {
		c.close() // a peer that reads nothing while we keep talking
		return
	}
	it := outItem{line: line}
	if f := c.p.faultNow.Load(); f.Mode == FaultSlow {
		it.due = time.Now().Add(f.Delay)
	}
	c.out = append(c.out, it)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *poolConn) send(line []byte) {
	c.mu.Lock()
	c.queueLocked(line)
	c.mu.Unlock()
}

func (c *poolConn) sendIfSubscribed(line []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subscribed {
		c.queueLocked(line)
	}
	return c.subscribed
}

// sendJob sends a newly issued job to a connection that gets the job feed
// (ready) and has not had it yet.
func (c *poolConn) sendJob(pj *poolJob, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return
	}
	if _, ok := c.sent[pj.job.ID]; ok {
		return
	}
	c.sendJobLocked(pj, first)
}

// sendJobLocked sends pj, recording the terms it goes out under; clean
// sends it with clean_jobs=true whatever the job says.
func (c *poolConn) sendJobLocked(pj *poolJob, clean bool) {
	id := pj.job.ID
	if pj.job.Clean {
		c.dedup.Reset()
	}
	if len(c.sent) >= 2*keepJobs {
		for old := range c.sent {
			if pj, _ := c.p.job(old); pj == nil {
				delete(c.sent, old)
			}
		}
	}
	c.jobSeq++
	c.sent[id] = terms{en1: c.en1, en2Size: c.en2Size, diff: c.diff, seq: c.jobSeq}
	if clean {
		c.queueLocked(pj.cleanLine)
	} else {
		c.queueLocked(pj.line)
	}
}

// resendLocked sends pj again, keeping the terms it was first sent under
// (it is the same job); one never sent here goes out as new. Connections
// still before their first job are skipped.
func (c *poolConn) resendLocked(pj *poolJob, clean bool) bool {
	if !c.fed {
		return false
	}
	if _, ok := c.sent[pj.job.ID]; !ok {
		c.sendJobLocked(pj, clean)
		return true
	}
	if clean {
		c.queueLocked(pj.cleanLine)
	} else {
		c.queueLocked(pj.line)
	}
	return true
}

// sendDiffLocked sends the first mining.set_difficulty, once.
func (c *poolConn) sendDiffLocked() {
	if c.diffSent {
		return
	}
	c.diffSent = true
	c.queueLocked(stratum.AppendSetDifficulty(nil, c.diff))
}

// feedLocked sends the first job, once, with clean_jobs=true.
func (c *poolConn) feedLocked() {
	if c.fed {
		return
	}
	c.fed = true
	if pj := c.p.currentJob(); pj != nil {
		c.sendJobLocked(pj, true)
	}
}

// onSubscribedLocked runs once the subscribe answer is queued: the
// handshake order decides what follows it.
func (c *poolConn) onSubscribedLocked() {
	switch c.p.hs {
	case HandshakeAfterSubscribe:
		c.sendDiffLocked()
		c.feedLocked()
	case HandshakeNotifyFirst:
		c.feedLocked()
	}
	c.becomeReadyLocked()
}

// becomeReadyLocked starts the job feed once the connection is subscribed
// and authorized: set_difficulty first, then the current job, unless the
// handshake order already sent them.
func (c *poolConn) becomeReadyLocked() {
	if c.ready || !c.subscribed || len(c.workers) == 0 {
		return
	}
	c.ready = true
	c.sendDiffLocked()
	c.feedLocked()
	c.vd.begin(time.Now())
}

func (c *poolConn) renewExtranonce(en2Size int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.p.prof.xnsub {
	case xnsubSilent, xnsubAnswerOnly:
		return false
	case xnsubAnswer:
		if !c.extranonceSub {
			return false
		}
	}
	if !c.subscribed {
		return false
	}
	c.en1 = c.p.extranonce1()
	if en2Size > 0 {
		c.en2Size = en2Size
	}
	c.queueLocked(stratum.AppendSetExtranonce(nil, c.en1, c.en2Size))
	return true
}

// retargetLocked moves the connection to difficulty d under the profile's
// rule and, once the handshake sent a difficulty, tells the miner (then
// re-sends the current job if the profile does and job is true). It
// reports whether anything changed.
func (c *poolConn) retargetLocked(d float64, now time.Time, job bool) bool {
	if d == c.diff {
		return false
	}
	switch c.p.prof.rule {
	case ruleNextJob:
		c.oldDiff, c.changeSeq = c.diff, c.jobSeq+1
	case ruleAtOnceGrace:
		c.oldDiff = c.diff
	}
	c.diff = d
	c.vd.changed(now)
	c.p.st.retargets.Add(1)
	if c.diffSent {
		c.queueLocked(stratum.AppendSetDifficulty(nil, d))
		if job && c.p.prof.resendOnChange {
			if pj := c.p.currentJob(); pj != nil {
				c.resendLocked(pj, false)
			}
		}
	}
	return true
}

// bar is a difficulty a share must meet and what it is credited if it does.
type bar struct{ need, credit float64 }

// barsLocked returns the difficulty a share on a job sent under t is
// judged at, and a second, easier one the profile also accepts (ok2).
func (c *poolConn) barsLocked(t terms) (first, second bar, ok2 bool) {
	pr := &c.p.prof
	d := c.diff
	switch pr.rule {
	case ruleLowerOfJob:
		d = min(t.diff, c.diff)
	case ruleNextJob:
		if c.oldDiff > 0 && t.seq < c.changeSeq {
			d = min(d, c.oldDiff)
		}
	case ruleJobTerms:
		d = t.diff
	case ruleAtOnceGrace:
		if c.oldDiff > 0 {
			second, ok2 = bar{c.oldDiff * pr.slack, c.oldDiff}, true
		}
	}
	return bar{d * pr.slack, d}, second, ok2
}

// ping sends mining.ping to a connection that gets jobs, counting the
// previous one as missed if it is still unanswered.
func (c *poolConn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return
	}
	if c.pingOut {
		c.p.st.pingsMissed.Add(1)
	}
	c.pingID++
	c.pingOut = true
	c.queueLocked(stratum.AppendCall(nil, c.pingID, poolPingMethod))
	c.p.st.pings.Add(1)
}

// response handles an answer from the miner: the pool's only requests are
// pings.
func (c *poolConn) response(m *stratum.Message) {
	n, err := strconv.ParseUint(string(m.ID), 10, 64)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingOut && n == c.pingID {
		c.pingOut = false
		c.p.st.pingAnswers.Add(1)
	}
}

// handle answers one request; notifications (no id) are acted on but not
// answered, and responses are matched to the pool's pings.
func (c *poolConn) handle(m *stratum.Message) {
	if m.IsResponse() {
		c.response(m)
		return
	}
	pr := &c.p.prof
	id := m.IDOrNull()
	var out []byte
	switch string(m.Method) {
	case stratum.MethodSubmit:
		var (
			drop bool
			o    outcome
		)
		out, drop, o = c.submit(id, m.Params)
		if drop {
			c.close()
			return
		}
		if o.counted && pr.vardiff == vardiffMiningcore { // it answers first, then retargets
			if len(m.ID) > 0 && string(m.ID) != "null" {
				c.send(out)
			}
			c.afterShare(o, time.Now())
			return
		}
		if o.counted { // ckpool's set_difficulty goes out before the share's answer
			c.afterShare(o, time.Now())
		}
	case stratum.MethodSubscribe: // the user agent and session id are not used
		c.mu.Lock()
		c.subscribed = true
		c.queueLocked(c.subscribeAnswer(id)) // before the job feed
		c.onSubscribedLocked()
		c.mu.Unlock()
		return
	case stratum.MethodAuthorize:
		c.authorize(id, m.Params)
		return
	case stratum.MethodConfigure:
		req, err := stratum.ParseConfigure(m.Params)
		if err != nil {
			out = stratum.AppendReject(nil, id, stratum.ReasonMalformed)
			break
		}
		var res stratum.ConfigureResult
		c.mu.Lock()
		if req.VersionRolling {
			c.mask = stratum.NegotiateMask(req.VersionMask, c.p.cfg.VersionMask)
			if pr.ownMask {
				c.mask = c.p.cfg.VersionMask
			}
			res.VersionRolling, res.VersionMask = c.mask != 0, c.mask
		}
		if req.SubscribeExtranonce {
			c.extranonceSub, res.SubscribeExtranonce = true, true
		}
		c.mu.Unlock()
		out = stratum.AppendConfigureResult(nil, id, &req, res)
	case stratum.MethodSuggestDifficulty:
		d, err := stratum.ParseDifficulty(m.Params)
		if err != nil {
			if pr.silentSuggest || pr.suggestAsDiff {
				return
			}
			out = stratum.AppendReject(nil, id, stratum.ReasonMalformed)
			break
		}
		if out = c.suggest(id, d); out == nil {
			return
		}
	case stratum.MethodExtranonceSubscribe:
		if pr.xnsub == xnsubSilent {
			return
		}
		c.mu.Lock()
		c.extranonceSub = true
		c.mu.Unlock()
		out = pr.appendAnswer(nil, id, []byte("true"))
	case stratum.MethodGetVersion:
		out = pr.appendAnswer(nil, id, []byte(`"`+poolVersion+`"`))
	default:
		switch {
		case pr.silentUnknown:
			return
		case pr.style == styleMiningcore:
			out = pr.appendReject(nil, id, verdict{reason: stratum.ReasonMalformed, detail: "Unsupported request " + string(m.Method)})
		default:
			out = stratum.AppendError(nil, id, stratum.CodeOther, "Unknown method")
		}
	}
	if len(out) > 0 && len(m.ID) > 0 && string(m.ID) != "null" {
		c.send(out)
	}
}

// subscribeAnswer is the answer to mining.subscribe in the profile's shape.
func (c *poolConn) subscribeAnswer(id []byte) []byte {
	pr := &c.p.prof
	sub := strconv.FormatUint(c.id, 16)
	if pr.style == styleStratum {
		return stratum.AppendSubscribeResult(nil, id, sub, c.en1, c.en2Size)
	}
	en1 := hex.EncodeToString(c.en1)
	var raw []byte
	switch pr.style {
	case styleCkpool, stylePublicPool: // one subscription, named after the session
		raw = append(raw, `[[["mining.notify",`...)
		raw = strconv.AppendQuote(raw, en1)
		raw = append(raw, `]],`...)
	case styleNiceHash:
		sub = en1
		fallthrough
	default:
		raw = append(raw, `[[["mining.set_difficulty",`...)
		raw = strconv.AppendQuote(raw, sub)
		raw = append(raw, `],["mining.notify",`...)
		raw = strconv.AppendQuote(raw, sub)
		raw = append(raw, `]],`...)
	}
	raw = strconv.AppendQuote(raw, en1)
	raw = append(raw, ',')
	raw = strconv.AppendInt(raw, int64(c.en2Size), 10)
	raw = append(raw, ']')
	return pr.appendAnswer(nil, id, raw)
}

// authorize answers mining.authorize in the profile's way.
func (c *poolConn) authorize(id []byte, params [][]byte) {
	p, pr := c.p, &c.p.prof
	user, _, err := stratum.ParseAuthorize(params)
	ok := err == nil && (p.users == nil || p.users[user] || p.users[account(user)])
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		if pr.welcome {
			c.queueLocked(stratum.AppendShowMessage(nil, "Authorised, welcome to stratumsim "+account(user)+"!"))
		}
		c.workers[user] = true
		c.queueLocked(pr.appendAnswer(nil, id, []byte("true")))
		c.becomeReadyLocked()
		return
	}
	reason := stratum.ReasonNotAuthorized
	if err != nil {
		reason = stratum.ReasonMalformed
	}
	switch pr.style {
	case styleCkpool:
		c.queueLocked(stratum.AppendShowMessage(nil, "Failed authorisation :("))
		c.queueLocked(pr.appendAnswer(nil, id, []byte("false")))
	case stylePublicPool:
		c.queueLocked(pr.appendReject(nil, id, verdict{reason: stratum.ReasonNotAuthorized}))
	case styleMiningcore: // answered, then banned and disconnected
		c.queueLocked(pr.appendReject(nil, id, verdict{reason: stratum.ReasonNotAuthorized, detail: "Authorization failed"}))
		p.wg.Add(1) // the reader holding this connection keeps the count above zero
		go func() {
			defer p.wg.Done()
			select {
			case <-time.After(100 * time.Millisecond): // let the writer send the answer
			case <-c.done:
			}
			c.close()
		}()
	case styleNiceHash:
		c.queueLocked(pr.appendReject(nil, id, verdict{reason: reason}))
	default:
		c.queueLocked(stratum.AppendReject(nil, id, reason))
	}
}

// suggest handles mining.suggest_difficulty d and returns the answer, or nil
// for none.
func (c *poolConn) suggest(id []byte, d float64) []byte {
	p, pr := c.p, &c.p.prof
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pr.silentSuggest: // ckpool: authorised connections only, clamped to mindiff, never answered
		if len(c.workers) > 0 {
			c.retargetLocked(max(d, p.vd.Min), now, false)
		}
		return nil
	case pr.suggestAsDiff: // public-pool: the first one only, answered with set_difficulty
		if c.suggested {
			return nil
		}
		c.suggested = true
		c.diff = d
		c.diffSent = true
		c.queueLocked(stratum.AppendSetDifficulty(nil, d))
		return nil
	case pr.ignoreSuggest:
	case pr.style == styleMiningcore: // above the port's difficulty only
		if d > p.cfg.Difficulty {
			c.retargetLocked(d, now, false)
		}
	default:
		d = max(d, p.cfg.Difficulty)
		if d != c.diff {
			c.diff = d
			p.st.retargets.Add(1)
			if c.diffSent {
				c.queueLocked(stratum.AppendSetDifficulty(nil, d))
			}
		}
	}
	return pr.appendAnswer(nil, id, []byte("true"))
}

// outcome is how a share was judged.
type outcome struct {
	reason     stratum.Reason
	label      string
	held       float64 // the difficulty the share was held to
	credit     float64 // what it is credited when accepted
	shareDiff  float64
	en1        []byte
	block      bool // submitted as a block
	blockStale bool // … on a stale job
	dup        bool // repeated an earlier share
	counted    bool // counts towards vardiff (accepted, or stale for ckpool)
	detail     string
}

// submit judges one mining.submit, counts it, writes its ledger line and
// returns the answer (nil: none) and the outcome; drop asks to close the
// connection.
func (c *poolConn) submit(id []byte, params [][]byte) (answer []byte, drop bool, o outcome) {
	p, pr := c.p, &c.p.prof
	var s stratum.Submit
	err := s.Decode(params)
	c.mu.Lock()
	subscribed, ready := c.subscribed, c.ready
	authorized := err == nil && c.workers[string(s.Worker)]
	if pr.anyWorker {
		authorized = len(c.workers) > 0
	}
	en1 := c.en1
	c.mu.Unlock()

	o = outcome{en1: en1}
	switch {
	case pr.closeEarlySubmit && !ready:
		o.reason, drop = stratum.ReasonNotAuthorized, true
		if !subscribed {
			o.reason = stratum.ReasonNotSubscribed
		}
	case err != nil:
		o.reason = stratum.ReasonMalformed
		if pr.style == styleCkpool {
			o.detail = ckpoolParamError(params)
		}
	case !subscribed:
		o.reason = stratum.ReasonNotSubscribed
	case !authorized:
		o.reason = stratum.ReasonNotAuthorized
		if pr.style == styleCkpool && ready {
			o.detail = "Worker mismatch"
		}
	case p.faultNow.Load().Mode == FaultReject:
		o.label = ReasonPoolRejecting
	default:
		o = c.check(&s, en1)
	}
	if o.label == "" && o.reason != stratum.ReasonNone {
		o.label = o.reason.String()
	}

	p.st.submits.Add(1)
	if o.dup {
		p.st.duplicates.Add(1)
	}
	if o.block {
		p.st.blocks.Add(1)
		if o.blockStale {
			p.st.blocksStale.Add(1)
		}
	}
	if o.label != "" {
		p.st.rejected.add(o.label)
		if !drop {
			answer = pr.appendReject(nil, id, verdict{reason: o.reason, label: o.label, shareDiff: o.shareDiff, detail: o.detail})
		}
	} else {
		p.st.accepted.Add(1)
		p.st.acceptedDiff.Add(o.credit)
		answer = pr.appendAnswer(nil, id, []byte("true"))
	}
	if p.ledger != nil {
		e := LedgerEntry{
			T:           time.Now(),
			Conn:        c.id,
			Worker:      string(s.Worker),
			JobID:       string(s.JobID),
			Extranonce1: hex.EncodeToString(o.en1),
			Extranonce2: hex.EncodeToString(s.Extranonce2),
			Result:      ResultAccepted,
			Reason:      o.label,
			Difficulty:  o.held,
			Block:       o.block,
		}
		if err == nil {
			e.NTime, e.Nonce = hex32(s.NTime), hex32(s.Nonce)
			if s.HasVersion {
				e.Version = hex32(s.Version)
			}
		}
		if o.label != "" {
			e.Result = ResultRejected
		} else {
			e.Credited = o.credit
		}
		p.ledger.write(&e)
	}
	return answer, drop, o
}

// check validates a decoded share against the job and terms it was sent
// under and the profile's rules.
func (c *poolConn) check(s *stratum.Submit, en1 []byte) outcome {
	p, pr := c.p, &c.p.prof
	jobID := string(s.JobID)
	pj, stale := p.job(jobID)
	c.mu.Lock()
	t, sent := c.sent[jobID]
	first, second, ok2 := c.barsLocked(t)
	mask := c.mask
	c.mu.Unlock()
	o := outcome{en1: en1, held: first.credit, credit: first.credit}
	if pj == nil || !sent {
		o.reason = stratum.ReasonUnknownJob
		return o
	}
	o.en1 = t.en1
	if pr.maxJobs > 0 {
		if age, ok := p.jobAge(jobID); !ok || age >= pr.maxJobs {
			o.reason = stratum.ReasonUnknownJob
			return o
		}
	}
	jobStale := stale
	if pr.noStale {
		stale = false
	}
	if stale && pr.staleForgotten {
		o.reason = stratum.ReasonStale
		return o
	}
	en2 := s.Extranonce2
	if pr.padExtranonce2 {
		en2 = fitExtranonce2(en2, t.en2Size)
	}
	share := stratum.Share{
		Extranonce1: t.en1,
		Extranonce2: en2,
		NTime:       s.NTime,
		Nonce:       s.Nonce,
		VersionBits: s.Version,
		HasVersion:  s.HasVersion,
	}
	params := stratum.CheckParams{ // difficulty 0: hash it whatever, judged below
		Extranonce2Size: t.en2Size,
		VersionMask:     mask,
		NTimeMaxAhead:   p.cfg.NTimeMaxAhead,
	}
	var res stratum.Result
	err := pj.job.Check(&share, params, &res)
	hashed := err == nil
	block := hashed && p.isBlock(&res)
	if hashed {
		o.shareDiff = res.Difficulty
	}
	switch {
	case stale:
		o.reason = stratum.ReasonStale
	case err != nil:
		o.reason = stratum.ReasonMalformed
		var re *stratum.RejectError
		if errors.As(err, &re) {
			o.reason = re.Reason
		}
		if pr.style == stylePublicPool {
			o.reason = stratum.ReasonLowDifficulty // it hashes whatever it is sent
		}
	default:
		meets := stratum.DifficultyTarget(first.need).Meets(&res.Hash)
		if !meets && ok2 && stratum.DifficultyTarget(second.need).Meets(&res.Hash) {
			meets, o.held, o.credit = true, second.credit, second.credit
		}
		if !meets && block && pr.blockBeatsDiff {
			meets = true
		}
		if !meets {
			o.reason = stratum.ReasonLowDifficulty
			break
		}
		c.mu.Lock()
		o.dup = c.dedup.Seen(&res.Hash)
		c.mu.Unlock()
		if o.dup && !pr.acceptDuplicates {
			o.reason = stratum.ReasonDuplicate
		}
	}
	switch {
	case !block:
	case pr.blockIfAccepted && o.reason != stratum.ReasonNone:
		block = false
	case pr.noStale && o.dup: // miningcore checks duplicates before it hashes
		block = false
	}
	if block {
		o.block, o.blockStale = true, jobStale
		p.offerBlock(pj.job, &share, &res) // to the WorkSource (a node), whatever the verdict
		p.log.Warn().Str("job_id", jobID).Str("hash", res.Hash.String()).Bool("stale", jobStale).
			Str("reason", o.reason.String()).Msg("block candidate")
	}
	o.counted = o.reason == stratum.ReasonNone || (o.reason == stratum.ReasonStale && pr.vardiff == vardiffCkpool)
	return o
}

// isBlock reports whether a hashed share meets the network target.
func (p *Pool) isBlock(res *stratum.Result) bool {
	if p.cfg.NetworkDifficulty > 0 {
		return p.netTarget.Meets(&res.Hash)
	}
	return res.Block
}

// ---- vardiff ----

// vdState is a connection's vardiff window.
type vdState struct {
	since   time.Time   // ckpool: the last change (or the session start)
	shares  int         // ckpool: shares since the last change
	sum     float64     // ckpool: Σ difficulty of those shares
	start   time.Time   // public-pool: the session start
	cache   []shareMark // public-pool: the last 31 accepted shares
	lastTs  time.Time   // miningcore: the last share
	lastRtc time.Time   // miningcore: the last retarget
	buf     []float64   // miningcore: seconds between the last shares
}

type shareMark struct {
	t time.Time
	d float64
}

func (v *vdState) begin(now time.Time) { v.since, v.start = now, now }

func (v *vdState) changed(now time.Time) {
	v.since, v.shares, v.sum = now, 0, 0
	v.lastRtc, v.buf = now, v.buf[:0]
}

// afterShare feeds a share to the per-share vardiff of ckpool or
// miningcore and to public-pool's share cache.
func (c *poolConn) afterShare(o outcome, now time.Time) {
	p, vd := c.p, &c.p.vd
	if vd.Off {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &c.vd
	switch p.prof.vardiff {
	case vardiffCkpool:
		v.shares++
		v.sum += o.credit
		elapsed := now.Sub(v.since)
		if v.shares < vd.Shares && elapsed < vd.Interval {
			return
		}
		if o.credit != c.diff { // judged at an older difficulty: start counting again
			v.shares = 0
			return
		}
		if c.changeSeq > c.jobSeq { // the last change waits for the next job
			return
		}
		rate := v.sum / max(elapsed.Seconds(), 0.001)
		drr, aim := rate/c.diff, 1/vd.Target.Seconds()
		if drr > aim/2 && drr < aim*4/3 { // ckpool's 0.15 < drr < 0.4 around 0.3
			return
		}
		next := c.clampLocked(rate * vd.Target.Seconds())
		if next == c.diff {
			return
		}
		if next < c.diff && v.shares == 1 { // first share after a lull: restart the window
			v.since = now
			return
		}
		c.retargetLocked(next, now, true)
	case vardiffPublicPool:
		if len(v.cache) > 30 {
			v.cache = v.cache[1:]
		}
		v.cache = append(v.cache, shareMark{now, o.credit})
	case vardiffMiningcore:
		if v.lastTs.IsZero() {
			v.lastTs, v.lastRtc = now, now
			return
		}
		since := now.Sub(v.lastTs).Seconds()
		total := since
		for _, s := range v.buf {
			total += s
		}
		avg := total / float64(len(v.buf)+1)
		if len(v.buf) >= vd.Shares {
			v.buf = v.buf[1:]
		}
		v.buf = append(v.buf, since)
		v.lastTs = now
		target := vd.Target.Seconds()
		if now.Sub(v.lastRtc) < vd.Interval || (avg >= target*0.7 && avg <= target*1.3) {
			return
		}
		c.retargetLocked(c.clampLocked(c.diff*target/max(avg, 1e-6)), now, true)
	}
}

// publicPoolTick is public-pool's per-connection vardiff check.
func (c *poolConn) publicPoolTick(now time.Time) {
	vd := &c.p.vd
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready || vd.Off {
		return
	}
	v := &c.vd
	var next float64
	if len(v.cache) < vd.Shares {
		if now.Sub(v.start) <= vd.Interval {
			return
		}
		next = nearestPowerOfTwo(c.diff/6, vd.Min) // hardly any shares: much easier
	} else {
		var sum float64
		for _, s := range v.cache {
			sum += s.d
		}
		span := v.cache[len(v.cache)-1].t.Sub(v.cache[0].t).Seconds()
		if span <= 0 {
			return
		}
		aim := sum / span * vd.Target.Seconds()
		if !(c.diff*2 < aim || c.diff/2 > aim) {
			return
		}
		next = nearestPowerOfTwo(aim, vd.Min)
	}
	if vd.Max > 0 {
		next = min(next, vd.Max)
	}
	if next > 0 {
		c.retargetLocked(next, now, true)
	}
}

// clampLocked bounds a vardiff result by Vardiff.Min/Max and the network
// difficulty.
func (c *poolConn) clampLocked(d float64) float64 {
	vd := &c.p.vd
	if vd.Max > 0 {
		d = min(d, vd.Max)
	}
	if nd := c.p.cfg.NetworkDifficulty; nd > 0 {
		d = min(d, nd)
	}
	d = max(d, vd.Min)
	if math.IsNaN(d) || d <= 0 {
		return c.diff
	}
	return d
}

func hex32(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// account is the part of a worker name before its first dot: "acct" for
// "acct.rig7". Pools authorize the account and take the rest as a label.
func account(user string) string {
	if i := strings.IndexByte(user, '.'); i >= 0 {
		return user[:i]
	}
	return user
}
