package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"switchyard/config"
	"switchyard/sim"
	"switchyard/stratum"
)

// The tests in this file pin how switchyard treats the pool side as real
// pools behave (ckpool src/stratifier.c, public-pool
// src/models/StratumV1Client.ts) and the miner side as real firmware does
// (cgminer util.c keeps each work item's difficulty; ESP-Miner restarts
// its extranonce2 on every notify). The pool is scripted line by line, so
// each test controls exactly what the pool says and when.

// scriptPool is a raw TCP pool whose lines after the handshake are written
// by the test. It answers mining.configure with mask, mining.subscribe
// with extranonce1 0a0b0c0d and extranonce2 size en2, mining.authorize
// with true followed by afterAuth, and every submit with true, recording
// it.
type scriptPool struct {
	t         *testing.T
	ln        net.Listener
	en2       int
	mask      uint32
	afterAuth func() string

	mu      sync.Mutex
	conn    net.Conn
	submits []stratum.Submit
}

func startScriptPool(t *testing.T, en2 int, mask uint32, afterAuth func() string) *scriptPool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptPool{t: t, ln: ln, en2: en2, mask: mask, afterAuth: afterAuth}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		if p.conn != nil {
			_ = p.conn.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conn = c
			p.mu.Unlock()
			go p.serve(c)
		}
	}()
	return p
}

func (p *scriptPool) addr() string { return p.ln.Addr().String() }

// write sends raw lines to the current connection.
func (p *scriptPool) write(s string) {
	p.mu.Lock()
	c := p.conn
	p.mu.Unlock()
	if c == nil {
		p.t.Fatal("script pool: no connection")
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *scriptPool) submitCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.submits)
}

func (p *scriptPool) serve(c net.Conn) {
	defer c.Close()
	rd := stratum.NewLineReader(c, 1<<20)
	for {
		line, err := rd.ReadLine()
		if err != nil {
			return
		}
		var m stratum.Message
		if m.Decode(line) != nil || m.IsResponse() {
			continue
		}
		id := string(m.IDOrNull())
		var out string
		switch string(m.Method) {
		case stratum.MethodConfigure:
			out = fmt.Sprintf(`{"id":%s,"result":{"version-rolling":true,"version-rolling.mask":"%08x"},"error":null}`+"\n", id, p.mask)
		case stratum.MethodSubscribe:
			out = fmt.Sprintf(`{"id":%s,"result":[[["mining.notify","s1"]],"0a0b0c0d",%d],"error":null}`+"\n", id, p.en2)
		case stratum.MethodAuthorize:
			out = `{"id":` + id + `,"result":true,"error":null}` + "\n" + p.afterAuth()
		case stratum.MethodSubmit:
			var s stratum.Submit
			if err := s.Decode(m.Params); err == nil {
				s.JobID = append([]byte(nil), s.JobID...)
				p.mu.Lock()
				p.submits = append(p.submits, s)
				p.mu.Unlock()
			}
			out = `{"id":` + id + `,"result":true,"error":null}` + "\n"
		default:
			if id != "null" {
				out = `{"id":` + id + `,"result":null,"error":[20,"Unknown method",null]}` + "\n"
			}
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(out)); err != nil {
			return
		}
	}
}

// scriptJob is a mining.notify of the script pool: prevhash block tells
// blocks apart, n numbers jobs; nbits 0x207fffff makes every hash a block
// candidate (regtest), 0x17034219 almost none (mainnet).
func scriptJob(id string, block byte, nbits uint32, clean bool) *stratum.Notify {
	n := &stratum.Notify{
		JobID:   id,
		Coinb1:  bytes.Repeat([]byte{0x01}, 60),
		Coinb2:  bytes.Repeat([]byte{0x02}, 50),
		Branch:  make([][32]byte, 3),
		Version: 0x20000000,
		NBits:   nbits,
		NTime:   uint32(time.Now().Unix()),
		Clean:   clean,
	}
	n.PrevHash[0] = block
	n.Branch[1][5] = id[len(id)-1]
	return n
}

func line(n *stratum.Notify) string { return string(n.AppendJSON(nil)) }

const mainnetBits = 0x17034219

// scriptRig is switchyard in front of one script pool, with vardiff pinned
// at diff (initial = min) up to max.
func scriptRig(t *testing.T, p *scriptPool, diff, max float64, mutate func(c *config.Config)) *rig {
	t.Helper()
	r := &rig{t: t}
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Server.Extranonce1Size = 2
	cfg.Server.MaxSubmitsPerSecond = 0
	cfg.Server.EventLoops = 1
	cfg.Difficulty.Initial, cfg.Difficulty.Min, cfg.Difficulty.Max = diff, diff, max
	cfg.Difficulty.RetargetInterval = config.Duration(time.Hour)
	cfg.Failover.DialTimeout = config.Duration(time.Second)
	cfg.Failover.SubmitTimeout = config.Duration(time.Second)
	cfg.Failover.BackoffMin = config.Duration(100 * time.Millisecond)
	cfg.Failover.BackoffMax = config.Duration(500 * time.Millisecond)
	cfg.Failover.Standby = 0
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Pools = []config.Pool{{Name: "s", URL: "stratum+tcp://" + p.addr(), User: "acct.farm", Password: "x"}}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r.cfg = cfg
	r.app = startApp(t, cfg)
	r.waitActive(cfg.Pools[0].Name, 10*time.Second)
	return r
}

// readFor reads the client's lines until a notify arrives or d
// passes and returns the methods seen, in order.
func (c *client) readFor(d time.Duration) []string {
	c.t.Helper()
	var seen []string
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l, err := c.readLine(time.Until(deadline))
		if err != nil {
			break
		}
		m := &stratum.Message{}
		if err := m.Decode([]byte(l)); err != nil {
			c.t.Fatalf("bad line %q: %v", l, err)
		}
		c.note(m)
		seen = append(seen, string(m.Method))
	}
	return seen
}

// TestMinerCappedAtPoolDifficulty: a miner is never set above the pool
// difficulty of the job it works on (the pool credits each share at its
// own difficulty: above it, the miner's extra work is never paid). When
// the pool lowers its difficulty, the miner is lowered before the job it
// applies to, which flushes the miner's work; when the pool raises it
// again, the miner goes back up to vardiff's choice, never past the pool's.
func TestMinerCappedAtPoolDifficulty(t *testing.T) {
	const pool = 1e-6
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, pool)) + line(scriptJob("j1", 1, mainnetBits, true))
	})
	r := scriptRig(t, p, 16*pool, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	if c.diff != pool {
		t.Fatalf("first difficulty %g, want the pool's %g (vardiff wanted %g)", c.diff, pool, 16*pool)
	}

	p.write(string(stratum.AppendSetDifficulty(nil, pool/4)) + line(scriptJob("j2", 1, mainnetBits, false)))
	c.pending = nil
	c.waitJobs(2)
	if c.diff != pool/4 {
		t.Fatalf("after the pool lowered to %g: miner at %g", pool/4, c.diff)
	}
	if i, j := index(c.pending, stratum.MethodSetDifficulty), index(c.pending, stratum.MethodNotify); i < 0 || i > j {
		t.Fatalf("lowered difficulty must come before the job it applies to: %v", c.pending)
	}
	// The pool now pays less for the work miners hold (ckpool credits the
	// lower difficulty until its next job): they are told to drop it, yet
	// a late share on it still counts.
	if !c.jobs[1].Clean {
		t.Fatal("the job at a lowered pool difficulty went out with clean_jobs=false: miners keep work the pool now pays less for")
	}
	if code := c.submit("rig.1", c.grind(c.jobs[0], c.en2(1), 0, 0)); code != 0 {
		t.Fatalf("late share on the job before the drop answered code %d, want accepted", code)
	}

	p.write(string(stratum.AppendSetDifficulty(nil, 4*pool)) + line(scriptJob("j3", 1, mainnetBits, false)))
	c.waitJobs(3)
	if c.diff != 4*pool {
		t.Fatalf("after the pool raised to %g: miner at %g, want %g", 4*pool, c.diff, 4*pool)
	}
	p.write(string(stratum.AppendSetDifficulty(nil, 64*pool)) + line(scriptJob("j4", 1, mainnetBits, false)))
	c.waitJobs(4)
	if c.diff != 16*pool {
		t.Fatalf("pool at %g, vardiff at %g: miner at %g, want vardiff's", 64*pool, 16*pool, c.diff)
	}
}

// TestFirstJobAtPoolDifficulty: a pool may send its first job before its
// difficulty, after the authorize answer (an order real pools use); the
// job still goes to miners at the pool's difficulty, not at the protocol
// default of 1.
func TestFirstJobAtPoolDifficulty(t *testing.T) {
	const pool = 1e-6
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return line(scriptJob("j1", 1, mainnetBits, true)) + string(stratum.AppendSetDifficulty(nil, pool))
	})
	r := scriptRig(t, p, 16*pool, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	if c.diff != pool {
		t.Fatalf("first job sent at difficulty %g, want the pool's %g", c.diff, pool)
	}
}

// TestRetargetKeepsJob: a new difficulty does not re-send the job the
// miner has (ESP-Miner restarts its extranonce2 at 0 on every notify and
// would redo the same work as duplicates; clean_jobs flushes every
// firmware's queue). Shares on a job are judged at the lowest difficulty
// sent for it since it went out: a miner that keeps each work item's
// difficulty (cgminer) is not refused after two raises.
func TestRetargetKeepsJob(t *testing.T) {
	const d1 = 1e-7
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, 1)) + line(scriptJob("j1", 1, mainnetBits, true))
	})
	r := scriptRig(t, p, d1, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	j1 := c.waitJobs(1)
	if c.diff != d1 {
		t.Fatalf("difficulty %g, want %g", c.diff, d1)
	}
	// The share is found at d1, the job's difficulty, and held back while
	// the difficulty rises twice, as a queued work item is.
	sh := c.grind(j1, c.en2(1), 0, 0)

	c.pending = nil
	m := c.call(stratum.MethodSuggestDifficulty, `[4e-7]`)
	if !stratum.IsTrue(m.Result) {
		t.Fatalf("suggest_difficulty answered %s %s", m.Result, m.Error)
	}
	if seen := c.readFor(300 * time.Millisecond); index(c.pending, stratum.MethodNotify) >= 0 || index(seen, stratum.MethodNotify) >= 0 {
		t.Fatalf("a retarget re-sent the job: %v %v", c.pending, seen)
	}
	if c.diff != 4e-7 {
		t.Fatalf("difficulty after suggest %g, want 4e-7", c.diff)
	}
	p.write(line(scriptJob("j2", 1, mainnetBits, false)))
	c.waitJobs(2)
	c.call(stratum.MethodSuggestDifficulty, `[1.6e-6]`)
	if c.diff != 1.6e-6 {
		t.Fatalf("difficulty after second suggest %g, want 1.6e-6", c.diff)
	}
	if code := c.submit("rig.1", sh); code != 0 {
		t.Fatalf("share on j1 found at its difficulty %g refused after two raises: code %d", d1, code)
	}
}

// TestNewPrevhashIsStale: a job on a new previous block hash makes every
// older job stale even when the pool's clean_jobs says false, and miners
// get it with clean_jobs=true.
func TestNewPrevhashIsStale(t *testing.T) {
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, 1)) + line(scriptJob("j1", 1, mainnetBits, true))
	})
	r := scriptRig(t, p, 1e-7, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	j1 := c.waitJobs(1)
	sh := c.grind(j1, c.en2(1), 0, 0)
	p.write(line(scriptJob("j2", 2, mainnetBits, false)))
	if j2 := c.waitJobs(2); !j2.Clean {
		t.Fatal("a job on a new prevhash went out with clean_jobs=false")
	}
	if code := c.submit("rig.1", sh); code != 21 {
		t.Fatalf("share on the previous block's job answered code %d, want 21 (stale)", code)
	}
}

// TestResentJobKeepsShares: a pool that re-sends the job it already sent
// (same id and content, clean_jobs=true, as ckpool does) changes nothing
// for miners: no new job is sent, and shares on the job they have still
// count (cpuminer keeps hashing identical work under the id it has).
func TestResentJobKeepsShares(t *testing.T) {
	j1 := scriptJob("j1", 1, mainnetBits, true)
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, 1)) + line(j1)
	})
	r := scriptRig(t, p, 1e-7, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	mj := c.waitJobs(1)
	p.write(line(j1))
	if seen := c.readFor(300 * time.Millisecond); index(seen, stratum.MethodNotify) >= 0 {
		t.Fatalf("a re-sent pool job was sent to miners again: %v", seen)
	}
	if code := c.submit("rig.1", c.grind(mj, c.en2(1), 0, 0)); code != 0 {
		t.Fatalf("share on the re-sent job answered code %d, want accepted", code)
	}
}

// TestBlockOnStaleJobForwarded: a share that meets the network target is
// forwarded to the pool that issued its job even when a new block made the
// job stale for miners (ckpool submits such solves too), and answered true.
func TestBlockOnStaleJobForwarded(t *testing.T) {
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, 1e-3)) + line(scriptJob("j1", 1, 0x207fffff, true))
	})
	r := scriptRig(t, p, 1e-7, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	j1 := c.waitJobs(1)
	sh := c.grind(j1, c.en2(1), 0, 0) // every hash is a block at 0x207fffff
	p.write(line(scriptJob("j2", 2, 0x207fffff, true)))
	c.waitJobs(2)
	if code := c.submit("rig.1", sh); code != 0 {
		t.Fatalf("block candidate on a stale job answered code %d, want accepted", code)
	}
	waitFor(t, 5*time.Second, "the block candidate at the pool", func() bool { return p.submitCount() == 1 })
	p.mu.Lock()
	got := string(p.submits[0].JobID)
	p.mu.Unlock()
	if got != "j1" {
		t.Fatalf("block forwarded for job %q, want j1", got)
	}
	if n := r.counter("switchyard_blocks_found_total"); n != 1 {
		t.Fatalf("switchyard_blocks_found_total = %g, want 1", n)
	}
}

// TestVersionMaskFollowsPool: when the pool narrows its version-rolling
// mask, miners are told before the next job; when it widens it again, so
// are they (BIP310 mining.set_version_mask both ways).
func TestVersionMaskFollowsPool(t *testing.T) {
	p := startScriptPool(t, 8, 0x1fffe000, func() string {
		return string(stratum.AppendSetDifficulty(nil, 1)) + line(scriptJob("j1", 1, mainnetBits, true))
	})
	r := scriptRig(t, p, 1e-7, 1, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	if c.mask != 0x1fffe000 {
		t.Fatalf("agreed mask %08x, want 1fffe000", c.mask)
	}
	p.write(`{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}` + "\n" + line(scriptJob("j2", 1, mainnetBits, false)))
	c.waitJobs(2)
	p.write(`{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}` + "\n" + line(scriptJob("j3", 1, mainnetBits, false)))
	c.waitJobs(3)
	if got := c.masks; len(got) != 2 || got[0] != 0x00ffe000 || got[1] != 0x1fffe000 {
		t.Fatalf("masks told to the miner %08x, want narrowed to 00ffe000 then widened to 1fffe000", got)
	}
}

// en2 is extranonce2 number n at the size the miner was given.
func (c *client) en2(n byte) []byte {
	b := make([]byte, c.en2Size)
	b[len(b)-1] = n
	return b
}

// TestMinerExtranonce2Fixed: every miner gets min_pool_extranonce2_size -
// extranonce1_size bytes of extranonce2 whatever pools are up when it
// connects, so a pool with a smaller extranonce2 that comes later (here:
// added by reload, ranked first) takes the miners with a new job: no
// client.reconnect, no mining.set_extranonce, the connection kept. A pool
// too small for that is refused with reason extranonce2_too_small and the
// miners are left alone.
func TestMinerExtranonce2Fixed(t *testing.T) {
	hello := func() string {
		return string(stratum.AppendSetDifficulty(nil, 1e-7)) + line(scriptJob("j1", 1, mainnetBits, true))
	}
	big := startScriptPool(t, 8, 0x1fffe000, hello)
	small := startScriptPool(t, 4, 0x1fffe000, hello)
	tiny := startScriptPool(t, 3, 0x1fffe000, hello)
	poolCfg := func(name string, p *scriptPool) config.Pool {
		return config.Pool{Name: name, URL: "stratum+tcp://" + p.addr(), User: "acct.farm", Password: "x"}
	}
	r := scriptRig(t, big, 1e-7, 1, func(c *config.Config) {
		c.Pools = []config.Pool{poolCfg("big", big)}
		c.Failover.FailbackAfter = config.Duration(200 * time.Millisecond)
	})
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	if want := 4 - r.cfg.Server.Extranonce1Size; c.en2Size != want { // min_pool_extranonce2_size = 4
		t.Fatalf("miner extranonce2 size %d with only an 8-byte pool up, want %d", c.en2Size, want)
	}

	reload := func(pools ...config.Pool) {
		cfg := *r.cfg
		cfg.Pools = pools
		for i := range cfg.Pools {
			cfg.Pools[i].Index = i
		}
		if _, err := r.app.Reload(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload(poolCfg("small", small), poolCfg("big", big))
	r.waitActive("small", 10*time.Second)
	c.pending = nil
	j := c.waitJobs(2)
	if !j.Clean {
		t.Fatal("the switch to the new pool was not a clean job")
	}
	for _, m := range c.pending {
		if m == stratum.MethodReconnect || m == stratum.MethodSetExtranonce {
			t.Fatalf("miner told %s on a switch to a smaller pool: %v", m, c.pending)
		}
	}
	if code := c.submit("rig.1", c.grind(j, c.en2(1), 0, 0)); code != 0 {
		t.Fatalf("share on the small pool's job answered code %d", code)
	}
	waitFor(t, 5*time.Second, "the share at the small pool", func() bool { return small.submitCount() == 1 })
	small.mu.Lock()
	got := len(small.submits[0].Extranonce2)
	small.mu.Unlock()
	if got != 4 {
		t.Fatalf("share reached the pool with a %d-byte extranonce2, want its 4", got)
	}

	reload(poolCfg("tiny", tiny), poolCfg("small", small), poolCfg("big", big))
	waitFor(t, 5*time.Second, "the tiny pool refused", func() bool {
		for _, ps := range r.app.Pools.Status() {
			if ps.Name == "tiny" {
				return ps.Reason == "extranonce2_too_small"
			}
		}
		return false
	})
	if a := r.app.Pools.Active(); a != "small" {
		t.Fatalf("active pool %q after adding a pool too small, want small", a)
	}
	if seen := c.readFor(300 * time.Millisecond); index(seen, stratum.MethodReconnect) >= 0 || index(seen, stratum.MethodSetExtranonce) >= 0 {
		t.Fatalf("miner told %v when a too-small pool was added", seen)
	}
	if code := c.submit("rig.1", c.grind(j, c.en2(2), 0, 0)); code != 0 {
		t.Fatalf("miner no longer mining after a too-small pool was added: code %d", code)
	}
}

// TestJobHistoryPerMiner: a miner's shares on any of its 16 most recent
// jobs count however many lanes are open. (The jobs were once kept in one
// ring per lane indexed by an id all lanes share: with 8 lanes each kept
// about 4 jobs, with 16 lanes 2.)
func TestJobHistoryPerMiner(t *testing.T) {
	const lanes, jobs = 8, 15
	r := newRig(t, 1, nil, func(c *config.Config) { c.Server.Extranonce1Size = 1 })
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	f, err := sim.StartFleet(context.Background(), sim.FleetConfig{Addr: r.app.MinerAddr(), Miners: 256 * (lanes - 1), Idle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitFor(t, 20*time.Second, "every lane's pool session live", func() bool {
		return r.app.Proxy.LaneCount() >= lanes && r.counter("switchyard_pool_sessions", "pool", "p0") >= lanes &&
			f.Stats().Ready == int64(256*(lanes-1))
	})
	for i := 0; i < jobs; i++ {
		r.pools[0].PushJob(false)
		c.waitJobs(2 + i)
	}
	for i, j := range c.jobs { // all 16, oldest first
		if code := c.submit("rig.1", c.grind(j, c.en2(byte(i+1)), 0, 0)); code != 0 {
			t.Fatalf("share on the miner's job %d jobs back answered code %d, want accepted", len(c.jobs)-1-i, code)
		}
	}
}

// TestMinerHangUpIsEOF: a miner closing its connection is counted and
// logged as reason "eof" (the miner's side), not "error".
func TestMinerHangUpIsEOF(t *testing.T) {
	r := newRig(t, 1, nil, nil)
	c := dialClient(t, r.app.MinerAddr())
	c.handshake("rig.1")
	c.waitJobs(1)
	_ = c.conn.Close()
	waitFor(t, 5*time.Second, "the connection counted closed", func() bool {
		return r.counter("switchyard_miner_connections_closed_total") == 1
	})
	if n := r.counter("switchyard_miner_connections_closed_total", "reason", "eof"); n != 1 {
		t.Fatalf("a miner's hang-up: closed_total{reason=eof} = %v (error: %v)", n,
			r.counter("switchyard_miner_connections_closed_total", "reason", "error"))
	}
}
