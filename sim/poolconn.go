package sim

import (
	"encoding/hex"
	"errors"
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
	subscribed    bool
	extranonceSub bool
	workers       map[string]bool
	ready         bool             // subscribed and authorized: gets jobs
	sent          map[string]terms // jobs sent here, with the terms they were sent under
	dedup         stratum.Dedup
	out           []outItem
	wake          chan struct{}
}

// terms are what a job was sent to a connection with.
type terms struct {
	en1     []byte
	en2Size int
	diff    float64
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

// sendJob sends pj if the connection is ready and has not had it yet,
// recording the terms it goes out under. The first job of a connection
// goes out with clean_jobs=true.
func (c *poolConn) sendJob(pj *poolJob, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendJobLocked(pj, first)
}

func (c *poolConn) sendJobLocked(pj *poolJob, first bool) {
	id := pj.job.ID
	if _, ok := c.sent[id]; ok || !c.ready {
		return
	}
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
	c.sent[id] = terms{en1: c.en1, en2Size: c.en2Size, diff: c.diff}
	if first {
		c.queueLocked(pj.cleanLine)
	} else {
		c.queueLocked(pj.line)
	}
}

// becomeReadyLocked starts the job feed once the connection is subscribed
// and authorized: set_difficulty first, then the current job.
func (c *poolConn) becomeReadyLocked() {
	if c.ready || !c.subscribed || len(c.workers) == 0 {
		return
	}
	c.ready = true
	c.queueLocked(stratum.AppendSetDifficulty(nil, c.diff))
	if pj := c.p.currentJob(); pj != nil {
		c.sendJobLocked(pj, true)
	}
}

func (c *poolConn) renewExtranonce(en2Size int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.subscribed || !c.extranonceSub {
		return false
	}
	c.en1 = c.p.extranonce1()
	if en2Size > 0 {
		c.en2Size = en2Size
	}
	c.queueLocked(stratum.AppendSetExtranonce(nil, c.en1, c.en2Size))
	return true
}

// handle answers one request; notifications (no id) are acted on but not
// answered, and responses are ignored (the pool sends no requests).
func (c *poolConn) handle(m *stratum.Message) {
	if m.IsResponse() {
		return
	}
	id := m.IDOrNull()
	var out []byte
	switch string(m.Method) {
	case stratum.MethodSubmit:
		out = c.submit(id, m.Params)
	case stratum.MethodSubscribe: // the user agent and session id are not used
		c.mu.Lock()
		c.subscribed = true
		out = stratum.AppendSubscribeResult(nil, id, strconv.FormatUint(c.id, 16), c.en1, c.en2Size)
		c.queueLocked(out) // before the job feed becomeReady may start
		c.becomeReadyLocked()
		c.mu.Unlock()
		return
	case stratum.MethodAuthorize:
		user, _, err := stratum.ParseAuthorize(m.Params)
		switch {
		case err != nil:
			out = stratum.AppendReject(nil, id, stratum.ReasonMalformed)
		case c.p.users != nil && !c.p.users[user] && !c.p.users[account(user)]:
			out = stratum.AppendReject(nil, id, stratum.ReasonNotAuthorized)
		default:
			c.mu.Lock()
			c.workers[user] = true
			c.queueLocked(stratum.AppendResult(nil, id, true))
			c.becomeReadyLocked()
			c.mu.Unlock()
			return
		}
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
			out = stratum.AppendReject(nil, id, stratum.ReasonMalformed)
			break
		}
		d = max(d, c.p.cfg.Difficulty)
		c.mu.Lock()
		if d != c.diff {
			c.diff = d
			if c.ready {
				c.queueLocked(stratum.AppendSetDifficulty(nil, d))
			}
		}
		c.mu.Unlock()
		out = stratum.AppendResult(nil, id, true)
	case stratum.MethodExtranonceSubscribe:
		c.mu.Lock()
		c.extranonceSub = true
		c.mu.Unlock()
		out = stratum.AppendResult(nil, id, true)
	case stratum.MethodGetVersion:
		out = stratum.AppendResultRaw(nil, id, []byte(`"`+poolVersion+`"`))
	default:
		out = stratum.AppendError(nil, id, stratum.CodeOther, "Unknown method")
	}
	if len(m.ID) > 0 && string(m.ID) != "null" {
		c.send(out)
	}
}

// submit judges one mining.submit, counts it, writes its ledger line and
// returns the answer.
func (c *poolConn) submit(id []byte, params [][]byte) []byte {
	p := c.p
	var s stratum.Submit
	err := s.Decode(params)
	c.mu.Lock()
	subscribed := c.subscribed
	authorized := err == nil && c.workers[string(s.Worker)]
	en1 := c.en1
	c.mu.Unlock()

	var (
		reason stratum.Reason
		label  string
		diff   float64
	)
	switch {
	case err != nil:
		reason = stratum.ReasonMalformed
	case !subscribed:
		reason = stratum.ReasonNotSubscribed
	case !authorized:
		reason = stratum.ReasonNotAuthorized
	case p.faultNow.Load().Mode == FaultReject:
		label = ReasonPoolRejecting
	default:
		reason, diff, en1 = c.check(&s, en1)
	}
	if label == "" && reason != stratum.ReasonNone {
		label = reason.String()
	}

	p.st.submits.Add(1)
	var out []byte
	switch {
	case label == ReasonPoolRejecting:
		p.st.rejected.add(label)
		out = stratum.AppendError(nil, id, stratum.CodeOther, "Pool rejecting")
	case label != "":
		p.st.rejected.add(label)
		out = stratum.AppendReject(nil, id, reason)
	default:
		p.st.accepted.Add(1)
		p.st.acceptedDiff.Add(diff)
		out = stratum.AppendResult(nil, id, true)
	}
	if p.ledger != nil {
		e := LedgerEntry{
			T:           time.Now(),
			Conn:        c.id,
			Worker:      string(s.Worker),
			JobID:       string(s.JobID),
			Extranonce1: hex.EncodeToString(en1),
			Extranonce2: hex.EncodeToString(s.Extranonce2),
			Result:      ResultAccepted,
			Reason:      label,
			Difficulty:  diff,
		}
		if err == nil {
			e.NTime, e.Nonce = hex32(s.NTime), hex32(s.Nonce)
			if s.HasVersion {
				e.Version = hex32(s.Version)
			}
		}
		if label != "" {
			e.Result = ResultRejected
		}
		p.ledger.write(&e)
	}
	return out
}

// check validates a decoded share against the job and terms it was sent
// under; it returns the reason (ReasonNone: accepted), the difficulty it was
// held to and the extranonce1 it was hashed with.
func (c *poolConn) check(s *stratum.Submit, en1 []byte) (stratum.Reason, float64, []byte) {
	pj, stale := c.p.job(string(s.JobID))
	c.mu.Lock()
	t, sent := c.sent[string(s.JobID)]
	cur, mask := c.diff, c.mask
	c.mu.Unlock()
	if pj == nil || !sent {
		return stratum.ReasonUnknownJob, 0, en1
	}
	diff := min(t.diff, cur)
	if stale {
		return stratum.ReasonStale, diff, t.en1
	}
	share := stratum.Share{
		Extranonce1: t.en1,
		Extranonce2: s.Extranonce2,
		NTime:       s.NTime,
		Nonce:       s.Nonce,
		VersionBits: s.Version,
		HasVersion:  s.HasVersion,
	}
	params := stratum.CheckParams{
		Extranonce2Size: t.en2Size,
		VersionMask:     mask,
		Difficulty:      diff,
		NTimeMaxAhead:   c.p.cfg.NTimeMaxAhead,
	}
	var res stratum.Result
	err := pj.job.Check(&share, params, &res)
	if res.Block {
		c.p.offerBlock(pj.job, &share, &res) // to the WorkSource (a node), whatever the verdict
	}
	if err != nil {
		if res.Block {
			c.p.log.Warn().Str("job_id", pj.job.ID).Msg("block candidate below the share difficulty")
		}
		var re *stratum.RejectError
		if errors.As(err, &re) {
			return re.Reason, diff, t.en1
		}
		return stratum.ReasonMalformed, diff, t.en1
	}
	if res.Block {
		c.p.log.Warn().Str("job_id", pj.job.ID).Str("hash", res.Hash.String()).Msg("block candidate")
	}
	c.mu.Lock()
	dup := c.dedup.Seen(&res.Hash)
	c.mu.Unlock()
	if dup {
		return stratum.ReasonDuplicate, diff, t.en1
	}
	return stratum.ReasonNone, diff, t.en1
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
