package sim

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/chainhash"

	"switchyard/stratum"
)

// Difficulties of the scripted runs: powers of two, so that every sum of
// difficulty × 2^32 is exact in a float64. fwDiff is a share per 512
// hashes, fwHard one per 8192.
const (
	fwDiff = 0x1p-23
	fwHard = 0x1p-19
)

// fakePool is a Stratum server a test scripts line by line over real TCP:
// it accepts connections and hands each to the test.
type fakePool struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
}

func newFakePool(t *testing.T) *fakePool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePool{t: t, ln: ln, conns: make(chan net.Conn, 16)}
	var mu sync.Mutex
	var all []net.Conn
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			all = append(all, nc)
			mu.Unlock()
			p.conns <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range all {
			nc.Close()
		}
	})
	return p
}

func (p *fakePool) addr() string { return p.ln.Addr().String() }

// fakeShare is a mining.submit the fake pool received.
type fakeShare struct {
	job      string
	en2      string // hex, as sent
	nonce    uint32
	bits     uint32
	version  bool // the sixth param was sent
	barriers int  // barriers answered before it arrived
}

// key identifies the header a share hashed when jobs have the same content.
func (s fakeShare) key() string { return s.en2 + "/" + hex32(s.nonce) }

// fakeConn is one miner connection of a fakePool. It answers the
// handshake, records and answers every submit, and counts barriers: a
// request the firmware answers (mining.ping or client.get_version), sent
// after a script step; whatever the miner writes after the answer, it
// wrote after it had read that step.
type fakeConn struct {
	t     *testing.T
	nc    net.Conn
	lines chan string // closed at EOF

	// Terms of the handshake, set before it.
	en1          []byte
	en2Size      int
	rollMask     uint32 // mining.configure answer; 0: an error
	barrierCall  string // stratum.MethodGetVersion or methodPing
	barriers     int
	nextBarrier  uint64
	barrierFound bool

	calls  []string // methods of the requests received, in order
	params map[string][]string
	jobs   map[string]*stratum.Job
	shares []fakeShare
	reject func(fakeShare) bool // answer the share "Duplicate share" when true
}

func (p *fakePool) accept() *fakeConn {
	p.t.Helper()
	select {
	case nc := <-p.conns:
		c := &fakeConn{t: p.t, nc: nc, lines: make(chan string, 1<<14), jobs: map[string]*stratum.Job{},
			params: map[string][]string{}, en1: []byte{0xaa, 0xbb, 0xcc, 0xdd}, en2Size: 4,
			barrierCall: methodPing, nextBarrier: 9000}
		go func() {
			defer close(c.lines)
			r := bufio.NewReaderSize(nc, 1<<16)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				c.lines <- strings.TrimSpace(line)
			}
		}()
		return c
	case <-time.After(5 * time.Second):
		p.t.Fatal("no connection within 5s")
		return nil
	}
}

func (c *fakeConn) send(lines ...string) {
	c.t.Helper()
	c.write([]byte(strings.Join(lines, "\n") + "\n"))
}

func (c *fakeConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// sendBarrier sends the next barrier request.
func (c *fakeConn) sendBarrier() {
	c.t.Helper()
	c.nextBarrier++
	c.barrierFound = false
	c.write(stratum.AppendCall(nil, c.nextBarrier, c.barrierCall))
}

// recv returns the next line; ok is false at EOF.
func (c *fakeConn) recv() (stratum.Message, string, bool) {
	c.t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			return stratum.Message{}, "", false
		}
		var m stratum.Message
		if err := m.Decode([]byte(line)); err != nil {
			c.t.Fatalf("miner sent %q: %v", line, err)
		}
		return m, line, true
	case <-time.After(5 * time.Second):
		c.t.Fatal("nothing from the miner within 5s")
		return stratum.Message{}, "", false
	}
}

// handle answers one line from the miner and records it.
func (c *fakeConn) handle(m *stratum.Message, line string) error {
	if m.IsResponse() {
		return fmt.Errorf("unexpected answer %s", line)
	}
	method := string(m.Method)
	if method != "pong" && method != stratum.MethodSubmit {
		c.calls = append(c.calls, method)
		c.params[method] = append(c.params[method], line)
	}
	var out []byte
	switch method {
	case stratum.MethodConfigure:
		if c.rollMask == 0 {
			out = stratum.AppendError(nil, m.ID, stratum.CodeOther, "Unsupported method")
		} else {
			out = stratum.AppendResultRaw(nil, m.ID, []byte(fmt.Sprintf(`{"version-rolling":true,"version-rolling.mask":"%08x"}`, c.rollMask)))
		}
	case stratum.MethodSubscribe:
		out = stratum.AppendSubscribeResult(nil, m.ID, "1", c.en1, c.en2Size)
	case stratum.MethodAuthorize, stratum.MethodSuggestDifficulty, stratum.MethodExtranonceSubscribe:
		out = stratum.AppendResult(nil, m.ID, true)
	case stratum.MethodSubmit:
		var sub stratum.Submit
		if err := sub.Decode(m.Params); err != nil {
			return fmt.Errorf("submit %s: %v", line, err)
		}
		s := fakeShare{job: string(sub.JobID), en2: hex.EncodeToString(sub.Extranonce2), nonce: sub.Nonce,
			bits: sub.Version, version: sub.HasVersion, barriers: c.barriers}
		c.shares = append(c.shares, s)
		if c.reject != nil && c.reject(s) {
			out = stratum.AppendReject(nil, m.ID, stratum.ReasonDuplicate)
		} else {
			out = stratum.AppendResult(nil, m.ID, true)
		}
	case "pong":
		if id, _ := stratum.IntParam(m.ID); uint64(id) == c.nextBarrier {
			c.barrierFound = true
		}
	}
	if out != nil {
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
	}
	return nil
}

// pump handles lines until stop holds for one (true at EOF too, with ok
// false).
func (c *fakeConn) pump(stop func(m *stratum.Message) bool) (ok bool) {
	c.t.Helper()
	for {
		m, line, ok := c.recv()
		if !ok {
			return false
		}
		if m.IsResponse() {
			if id, _ := stratum.IntParam(m.ID); uint64(id) == c.nextBarrier {
				c.barrierFound = true
			} else {
				c.t.Fatalf("unexpected answer %s", line)
			}
		} else if err := c.handle(&m, line); err != nil {
			c.t.Fatal(err)
		}
		if c.barrierFound || stop(&m) {
			return true
		}
	}
}

// handshake answers the miner until it has sent mining.authorize.
func (c *fakeConn) handshake() {
	c.t.Helper()
	if !c.pump(func(m *stratum.Message) bool { return string(m.Method) == stratum.MethodAuthorize }) {
		c.t.Fatalf("connection closed during the handshake; calls %v", c.calls)
	}
}

// barrier sends the barrier request and handles lines until its answer.
func (c *fakeConn) barrier() {
	c.t.Helper()
	c.sendBarrier()
	if !c.pump(func(*stratum.Message) bool { return false }) {
		c.t.Fatal("connection closed before the barrier's answer")
	}
	c.barrierFound = false
	c.barriers++
}

// sharesUntil handles lines until cond holds for a share just received.
func (c *fakeConn) sharesUntil(what string, cond func(s fakeShare) bool) fakeShare {
	c.t.Helper()
	var got fakeShare
	n := len(c.shares)
	ok := c.pump(func(m *stratum.Message) bool {
		for ; n < len(c.shares); n++ {
			if cond(c.shares[n]) {
				got = c.shares[n]
				return true
			}
		}
		return false
	})
	if !ok {
		c.t.Fatalf("connection closed waiting for %s", what)
	}
	return got
}

// serveRest answers the miner in the background until EOF and then closes
// the returned channel; the test must not use c until then.
func (c *fakeConn) serveRest() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for line := range c.lines {
			var m stratum.Message
			if err := m.Decode([]byte(line)); err != nil {
				c.t.Errorf("miner sent %q: %v", line, err)
				continue
			}
			if m.IsResponse() {
				continue
			}
			if err := c.handle(&m, line); err != nil {
				return
			}
		}
	}()
	return done
}

// fwNotify is a job of the given block: jobs of one block share their
// previous block hash, and two with the same block and clean flag differ
// only in their id.
func fwNotify(id string, block byte, clean bool) *stratum.Notify {
	n := &stratum.Notify{
		JobID:   id,
		Coinb1:  []byte{0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x20, 0x03, 0x40, 0x42, 0x0f},
		Coinb2:  []byte{0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0xf2, 0x05, 0x2a, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		Version: 0x20000000,
		NBits:   0x1d00ffff,
		NTime:   0x6543ae11,
		Clean:   clean,
	}
	for i := range n.PrevHash {
		n.PrevHash[i] = block + byte(i)
	}
	return n
}

func (c *fakeConn) notify(n *stratum.Notify) {
	c.t.Helper()
	j, err := stratum.NewJob(n)
	if err != nil {
		c.t.Fatal(err)
	}
	c.jobs[n.JobID] = j
	c.write(n.AppendJSON(nil))
}

func (c *fakeConn) setDifficulty(d float64) {
	c.t.Helper()
	c.write(stratum.AppendSetDifficulty(nil, d))
}

// closeFleet closes f while c answers the shares still in flight, then
// waits for the connection to end.
func closeFleet(t *testing.T, f *Fleet, c *fakeConn) {
	t.Helper()
	done := c.serveRest()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
}

// hash returns the double SHA-256 of s's header with en1 and the job's
// version, rolled by s's bits under mask.
func (c *fakeConn) hash(s fakeShare, en1 []byte, mask uint32) chainhash.Hash {
	c.t.Helper()
	j := c.jobs[s.job]
	if j == nil {
		c.t.Fatalf("share for unknown job %q", s.job)
	}
	en2, err := hex.DecodeString(s.en2)
	if err != nil {
		c.t.Fatal(err)
	}
	version := j.Version
	if s.version {
		version = j.Version&^mask | s.bits
	}
	var hdr [80]byte
	j.Header(&hdr, en1, en2, j.NTime, s.nonce, version)
	return chainhash.DoubleHashH(hdr[:])
}

// meets reports whether s, hashed with the connection's extranonce1,
// meets difficulty d.
func (c *fakeConn) meets(s fakeShare, d float64) bool {
	h := c.hash(s, c.en1, 0)
	return stratum.DifficultyTarget(d).Meets(&h)
}

// fwName names a firmware in subtest names.
func fwName(fw string) string {
	if fw == "" {
		return "stratumsim"
	}
	return fw
}

// startFwFleet starts one miner of firmware fw against the fake pool.
func startFwFleet(t *testing.T, p *fakePool, fw string, mod func(*FleetConfig)) (*Fleet, *fakeConn, *syncBuffer) {
	t.Helper()
	led := new(syncBuffer)
	cfg := FleetConfig{Addr: p.addr(), Firmware: fw, RetryDelay: 10 * time.Millisecond, Ledger: led}
	if mod != nil {
		mod(&cfg)
	}
	f := startFleet(t, cfg)
	c := p.accept()
	if fw == FirmwareCPUMiner {
		c.barrierCall = stratum.MethodGetVersion // cpuminer does not answer mining.ping
	}
	return f, c, led
}

func TestParseFirmware(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"cgminer", FirmwareCgminer}, {"CGMiner", FirmwareCgminer}, {"bmminer", FirmwareCgminer},
		{"btminer", FirmwareCgminer}, {"avalon", FirmwareCgminer}, {"esp-miner", FirmwareESPMiner},
		{"Bitaxe", FirmwareESPMiner}, {"braiins", FirmwareBraiins}, {"bosminer", FirmwareBraiins},
		{" cpuminer ", FirmwareCPUMiner}, {"minerd", FirmwareCPUMiner},
	} {
		got, err := ParseFirmware(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseFirmware(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, fw := range Firmwares() {
		if got, err := ParseFirmware(fw); err != nil || got != fw {
			t.Errorf("ParseFirmware(%q) = %q, %v", fw, got, err)
		}
	}
	if _, err := ParseFirmware("antminer-x"); err == nil || !strings.Contains(err.Error(), "esp-miner") {
		t.Errorf("ParseFirmware(antminer-x): %v", err)
	}
	if _, err := StartFleet(t.Context(), FleetConfig{Addr: "127.0.0.1:1", Firmware: "antminer-x"}); err == nil {
		t.Error("StartFleet with an unknown firmware succeeded")
	}
}

// TestFirmwareExtranonce2Bounds gives each firmware an extranonce2 size:
// cgminer refuses one below 2 (initiate_stratum) and hashes, but never
// submits, one above 8 (stratum_sthread); the others mine with any size a
// pool may send.
func TestFirmwareExtranonce2Bounds(t *testing.T) {
	const (
		submits = iota
		refuses
		withholds
	)
	for _, tc := range []struct {
		fw   string
		size int
		want int
	}{
		{FirmwareCgminer, 1, refuses},
		{FirmwareCgminer, 2, submits},
		{FirmwareCgminer, 8, submits},
		{FirmwareCgminer, 9, withholds},
		{FirmwareCgminer, 16, withholds},
		{FirmwareESPMiner, 1, submits},
		{FirmwareESPMiner, 16, submits},
		{FirmwareBraiins, 1, submits},
		{FirmwareCPUMiner, 1, submits},
		{FirmwareCPUMiner, 16, submits},
		{"", 1, submits},
	} {
		t.Run(fmt.Sprintf("%s/%d", fwName(tc.fw), tc.size), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, nil)
			c.en2Size = tc.size
			if tc.want == refuses {
				if c.pump(func(*stratum.Message) bool { return false }) {
					t.Fatal("the miner went on after the subscribe answer")
				}
				if got := c.calls; len(got) != 1 || got[0] != stratum.MethodSubscribe {
					t.Fatalf("calls before hanging up %v", got)
				}
				c2 := p.accept() // and it comes back, as cgminer retries
				c2.en2Size = tc.size
				c2.pump(func(*stratum.Message) bool { return false })
				f.Close()
				if s := f.Stats(); s.Refused < 2 || s.Disconnects[CauseExtranonce2Size] != s.Refused || s.Submits != 0 {
					t.Fatalf("stats %s refused %d", s, s.Refused)
				}
				return
			}
			c.handshake()
			c.setDifficulty(fwDiff)
			c.notify(fwNotify("1", 1, true))
			if tc.want == withholds {
				waitFor(t, 10*time.Second, "shares found and withheld", func() bool {
					return f.Stats().Unsubmitted[UnsubmittedExtranonce2Size] >= 5
				})
				c.barrier()
				f.Close()
				if s := f.Stats(); len(c.shares) != 0 || s.Submits != 0 || s.Work != 0 {
					t.Fatalf("%d shares submitted; stats %s", len(c.shares), s)
				}
				return
			}
			s := c.sharesUntil("a share", func(fakeShare) bool { return true })
			if len(s.en2) != 2*tc.size || !c.meets(s, fwDiff) {
				t.Fatalf("share %+v with extranonce2 size %d", s, tc.size)
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareDifficultyFromNextNotify pins when a new difficulty applies:
// shares found after mining.set_difficulty but before the next notify are
// judged, and submitted, at the old difficulty of the work item they were
// found on; the next job's at the new one. The ledger and FleetStats.Work
// carry each share's own item difficulty, exactly.
func TestFirmwareDifficultyFromNextNotify(t *testing.T) {
	for _, fw := range append([]string{""}, Firmwares()...) {
		t.Run(fwName(fw), func(t *testing.T) {
			p := newFakePool(t)
			f, c, led := startFwFleet(t, p, fw, nil)
			c.reject = func(s fakeShare) bool { return s.job == "b" } // answered as duplicates
			c.handshake()
			c.setDifficulty(fwDiff)
			c.notify(fwNotify("a", 1, true))
			c.sharesUntil("a share of a", func(s fakeShare) bool { return s.job == "a" })
			c.setDifficulty(fwHard)
			c.barrier()
			easy := 0
			for range 8 {
				s := c.sharesUntil("a share of a after set_difficulty", func(s fakeShare) bool { return s.job == "a" })
				if !c.meets(s, fwDiff) {
					t.Fatalf("share %+v misses the old difficulty", s)
				}
				if !c.meets(s, fwHard) {
					easy++
				}
			}
			if easy == 0 {
				t.Fatal("every share after set_difficulty met the new difficulty: it was applied before the next notify")
			}
			c.notify(fwNotify("b", 1, true))
			for range 3 {
				s := c.sharesUntil("a share of b", func(s fakeShare) bool { return s.job == "b" })
				if !c.meets(s, fwHard) {
					t.Fatalf("share %+v of the next job misses the new difficulty", s)
				}
			}
			closeFleet(t, f, c)
			st := f.Stats()
			var work, accepted, serverWork float64
			var dups uint64
			for _, s := range c.shares {
				d := fwDiff
				if s.job == "b" {
					d = fwHard
					dups++
				}
				serverWork += d * 0x1p32
			}
			for _, e := range led.entries(t) {
				want := fwDiff
				if e.JobID == "b" {
					want = fwHard
				}
				if e.Difficulty != want {
					t.Fatalf("ledger %+v: difficulty %g, want %g", e, e.Difficulty, want)
				}
				work += e.Difficulty * 0x1p32
				if e.Result == ResultAccepted {
					accepted += e.Difficulty * 0x1p32
				}
			}
			if st.Work != work || st.Work != serverWork || st.AcceptedWork != accepted || st.AcceptedWork >= st.Work {
				t.Fatalf("work %v accepted %v; ledger %v accepted %v; pool saw %v", st.Work, st.AcceptedWork, work, accepted, serverWork)
			}
			if st.Duplicates != dups || st.Rejected[stratum.ReasonDuplicate.String()] != dups || st.Submits != uint64(len(c.shares)) {
				t.Fatalf("duplicates %d, pool answered %d duplicates of %d; stats %s", st.Duplicates, dups, len(c.shares), st)
			}
			if st.Difficulties != 2 || st.Jobs != 2 || st.CleanJobs != 2 {
				t.Fatalf("set_difficulty %d, jobs %d, clean %d", st.Difficulties, st.Jobs, st.CleanJobs)
			}
		})
	}
}

// TestCgminerStacksDifficulty: parse_diff keeps one difficulty per notify,
// so two set_difficulty before a notify apply to it and to the next one.
func TestCgminerStacksDifficulty(t *testing.T) {
	p := newFakePool(t)
	f, c, led := startFwFleet(t, p, FirmwareCgminer, nil)
	c.handshake()
	c.setDifficulty(fwDiff)
	c.notify(fwNotify("a", 1, true))
	c.sharesUntil("a share of a", func(s fakeShare) bool { return s.job == "a" })
	c.setDifficulty(0x1p-21)
	c.setDifficulty(fwHard)
	c.notify(fwNotify("b", 1, true))
	c.sharesUntil("a share of b", func(s fakeShare) bool { return s.job == "b" })
	c.notify(fwNotify("c", 1, true))
	c.sharesUntil("a share of c", func(s fakeShare) bool { return s.job == "c" })
	closeFleet(t, f, c)
	want := map[string]float64{"a": fwDiff, "b": 0x1p-21, "c": fwHard}
	for _, e := range led.entries(t) {
		if e.Difficulty != want[e.JobID] {
			t.Fatalf("ledger %+v: want difficulty %g", e, want[e.JobID])
		}
	}
	for _, s := range c.shares {
		if !c.meets(s, want[s.job]) {
			t.Fatalf("share %+v misses %g", s, want[s.job])
		}
	}
}

// TestFirmwareResentJob sends the job in hand again, non-clean, under a new
// id or the same one. ESP-Miner restarts extranonce2 at 0 for every notify
// (create_jobs_task), cpuminer for every new job id (stratum_notify), so
// they hash the same headers again; cgminer restarts only on clean_jobs and
// cpuminer ignores a repeated id, so they go on with new ones.
func TestFirmwareResentJob(t *testing.T) {
	for _, tc := range []struct {
		fw, id string
		repeat bool
	}{
		{FirmwareESPMiner, "2", true},
		{FirmwareESPMiner, "1", true},
		{FirmwareCPUMiner, "2", true},
		{FirmwareCPUMiner, "1", false},
		{FirmwareCgminer, "2", false},
		{FirmwareBraiins, "2", false},
		{"", "2", false},
	} {
		t.Run(fwName(tc.fw)+"/"+tc.id, func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, nil)
			c.handshake()
			c.setDifficulty(fwDiff)
			c.notify(fwNotify("1", 1, true))
			first := c.sharesUntil("a share", func(fakeShare) bool { return true })
			c.pump(func(*stratum.Message) bool { return len(c.shares) >= 5 })
			c.notify(fwNotify(tc.id, 1, false))
			c.barrier()
			// Every share the miner sent before it read the notify is
			// seen; look for one again among the next 400, more than an
			// item of the job in hand holds.
			seen := map[string]bool{}
			for _, s := range c.shares {
				seen[s.key()] = true
			}
			var again fakeShare
			found := false
			for range 400 {
				s := c.sharesUntil("a share", func(fakeShare) bool { return true })
				if seen[s.key()] {
					again, found = s, true
					break
				}
			}
			if found != tc.repeat {
				t.Fatalf("repeated a header: %v (%+v), want %v; first share %+v", found, again, tc.repeat, first)
			}
			if tc.repeat && (again.key() != first.key() || strings.Trim(again.en2, "0") != "") {
				t.Fatalf("first share after the restart %+v, want the first share of all %+v", again, first)
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareNonCleanNotify sends a non-clean notify while the miner
// hashes the job before it. Which firmware still submits shares of the old
// job after it has read the notify (the barrier's answer proves that)?
// cpuminer's threads finish their scan, the ASIC firmwares the work item in
// hand; a new previous block hash is a clean job to cgminer and Braiins OS,
// and cpuminer drops shares of the old block, but ESP-Miner only cleans on
// clean_jobs. Where the item in hand ends is chance: it may end before the
// next share, so a firmware that lags gets a few notifies to show it.
func TestFirmwareNonCleanNotify(t *testing.T) {
	for _, tc := range []struct {
		fw       string
		newBlock bool
		old      bool
	}{
		{FirmwareCPUMiner, false, true},
		{FirmwareCPUMiner, true, false},
		{FirmwareCgminer, false, true},
		{FirmwareCgminer, true, false},
		{FirmwareBraiins, false, true},
		{FirmwareBraiins, true, false},
		{FirmwareESPMiner, false, true},
		{FirmwareESPMiner, true, true},
	} {
		t.Run(fmt.Sprintf("%s/newblock=%v", fwName(tc.fw), tc.newBlock), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, nil)
			c.handshake()
			c.setDifficulty(fwDiff)
			prev := "j0"
			c.notify(fwNotify(prev, 0, true))
			c.sharesUntil("a share of the first job", func(s fakeShare) bool { return s.job == prev })
			// A round is over once it showed what it can: a share of the
			// old job, or (cpuminer, new block) one withheld as stale.
			// P(the item in hand ends before its next share) ≤ 512/2^14.
			old := 0
			shown := func() bool {
				switch {
				case tc.old:
					return old > 0
				case tc.fw == FirmwareCPUMiner:
					return f.Stats().Unsubmitted[UnsubmittedStale] > 0
				}
				return true
			}
			for round := 1; round <= 6 && (round == 1 || !shown()); round++ {
				id, block := "j"+strconv.Itoa(round), byte(0)
				if tc.newBlock {
					block = byte(round)
				}
				c.notify(fwNotify(id, block, false))
				c.barrier()
				c.sharesUntil("a share of "+id, func(s fakeShare) bool { return s.job == id })
				for _, s := range c.shares {
					if s.job == prev && s.barriers == round {
						old++
					}
				}
				prev = id
			}
			if (old > 0) != tc.old || !shown() {
				t.Fatalf("%d shares of the old job after the notify, want some: %v; stats %s", old, tc.old, f.Stats())
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareHandshake pins each firmware's opening: what it sends, in
// which order, and what it leaves out even when asked.
func TestFirmwareHandshake(t *testing.T) {
	ask := func(cfg *FleetConfig) {
		cfg.VersionRolling, cfg.ExtranonceSubscribe, cfg.SuggestDifficulty = true, true, 512
	}
	for _, tc := range []struct {
		fw    string
		calls []string
		sub   string // mining.subscribe params
		mask  string // asked for in mining.configure
	}{
		{"", []string{"mining.configure", "mining.subscribe", "mining.extranonce.subscribe", "mining.authorize", "mining.suggest_difficulty"}, `["stratumsim/1.0"]`, "1fffe000"},
		{FirmwareCgminer, []string{"mining.configure", "mining.subscribe", "mining.authorize", "mining.suggest_difficulty", "mining.extranonce.subscribe"}, `["cgminer/4.12.1"]`, "ffffffff"},
		{FirmwareESPMiner, []string{"mining.configure", "mining.subscribe", "mining.authorize", "mining.suggest_difficulty", "mining.extranonce.subscribe"}, `["bitaxe/BM1370/v2.9.0"]`, "ffffffff"},
		{FirmwareBraiins, []string{"mining.configure", "mining.subscribe", "mining.authorize"}, `["bosminer/1.0",null]`, "1fffe000"},
		{FirmwareCPUMiner, []string{"mining.subscribe", "mining.authorize"}, `["cpuminer/2.5.1"]`, ""},
	} {
		t.Run(fwName(tc.fw), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, func(cfg *FleetConfig) { ask(cfg); cfg.Idle = true })
			c.rollMask = 0x1fffe000
			if tc.fw == FirmwareCgminer || tc.fw == FirmwareBraiins {
				// mining.subscribe waits for mining.configure's answer.
				m, line, _ := c.recv()
				if string(m.Method) != stratum.MethodConfigure {
					t.Fatalf("first line %s", line)
				}
				select {
				case line := <-c.lines:
					t.Fatalf("%s sent %s before mining.configure was answered", tc.fw, line)
				case <-time.After(100 * time.Millisecond):
				}
				if err := c.handle(&m, line); err != nil {
					t.Fatal(err)
				}
			}
			c.handshake()
			c.barrier()
			if fmt.Sprint(c.calls) != fmt.Sprint(tc.calls) {
				t.Fatalf("calls %v, want %v", c.calls, tc.calls)
			}
			if got := c.params[stratum.MethodSubscribe][0]; !strings.Contains(got, `"params":`+tc.sub) {
				t.Fatalf("subscribe %s, want params %s", got, tc.sub)
			}
			if tc.mask != "" && !strings.Contains(c.params[stratum.MethodConfigure][0], `"`+tc.mask+`"`) {
				t.Fatalf("configure %s, want mask %s", c.params[stratum.MethodConfigure][0], tc.mask)
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareAnswers pins how each firmware answers mining.ping,
// client.get_version, client.show_message and a method it does not know.
func TestFirmwareAnswers(t *testing.T) {
	for _, tc := range []struct {
		fw   string
		want []string // answers to ids 1 (ping), 2 (get_version), 3 (show_message), 4 (unknown), in order
	}{
		{"", []string{`{"id":1,"result":null,"error":[20,"Unknown method",null]}`, `{"id":2,"result":"stratumsim/1.0","error":null}`, `{"id":4,"result":null,"error":[20,"Unknown method",null]}`}},
		{FirmwareCgminer, []string{`{"id":1,"result":"pong","error":null}`, `{"id":2,"result":"cgminer/4.12.1","error":null}`}},
		{FirmwareESPMiner, []string{`{"id":1,"method":"pong","params":[]}`}},
		{FirmwareBraiins, []string{`{"id":1,"result":"pong","error":null}`}},
		{FirmwareCPUMiner, []string{`{"id":2,"result":"cpuminer/2.5.1","error":null}`, `{"id":3,"result":true,"error":null}`}},
	} {
		t.Run(fwName(tc.fw), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, func(cfg *FleetConfig) { cfg.Idle = true })
			c.handshake()
			c.send(`{"id":1,"method":"mining.ping","params":[]}`,
				`{"id":2,"method":"client.get_version","params":[]}`,
				`{"id":3,"method":"client.show_message","params":["hello"]}`,
				`{"id":4,"method":"mining.frob","params":[]}`)
			c.sendBarrier()
			var got []string
			for {
				m, line, ok := c.recv()
				if !ok {
					t.Fatal("closed")
				}
				id, _ := stratum.IntParam(m.ID)
				if uint64(id) == c.nextBarrier {
					break
				}
				if m.IsResponse() || string(m.Method) == "pong" {
					got = append(got, line)
					continue
				}
				if err := c.handle(&m, line); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("answers\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareSetExtranonce pins what mining.set_extranonce does: from the
// next notify for stratumsim's own miners and for cgminer once it sent
// mining.extranonce.subscribe (bmminer's parse_extranonce); at once, for
// the next work item even of the job in hand, for ESP-Miner; not at all
// for Braiins OS and cpuminer.
func TestFirmwareSetExtranonce(t *testing.T) {
	newEn1 := []byte{0x11, 0x22, 0x33, 0x44}
	for _, tc := range []struct {
		fw        string
		subscribe bool
		applied   bool
		sameJob   bool // applied to shares of the job in hand
	}{
		{"", false, true, false},
		{FirmwareCgminer, false, false, false},
		{FirmwareCgminer, true, true, false},
		{FirmwareESPMiner, false, true, true},
		{FirmwareBraiins, true, false, false},
		{FirmwareCPUMiner, true, false, false},
	} {
		t.Run(fmt.Sprintf("%s/subscribe=%v", fwName(tc.fw), tc.subscribe), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, func(cfg *FleetConfig) { cfg.ExtranonceSubscribe = tc.subscribe })
			c.handshake()
			c.setDifficulty(fwDiff)
			c.notify(fwNotify("a", 1, true))
			c.sharesUntil("a share of a", func(s fakeShare) bool { return s.job == "a" })
			c.send(`{"id":null,"method":"mining.set_extranonce","params":["11223344",6]}`)
			c.barrier()
			isNew := func(s fakeShare) bool { return len(s.en2) == 12 }
			if tc.sameJob {
				s := c.sharesUntil("a share of a with the new extranonce", isNew)
				if h := c.hash(s, newEn1, 0); s.job != "a" || !stratum.DifficultyTarget(fwDiff).Meets(&h) {
					t.Fatalf("share %+v", s)
				}
			}
			c.notify(fwNotify("b", 1, true))
			c.barrier()
			for range 10 {
				s := c.sharesUntil("a share of b", func(s fakeShare) bool { return s.job == "b" && s.barriers == 2 })
				en1 := c.en1
				if tc.applied {
					en1 = newEn1
				}
				h := c.hash(s, en1, 0)
				if isNew(s) != tc.applied || !stratum.DifficultyTarget(fwDiff).Meets(&h) {
					t.Fatalf("share %+v of the next job; want the new extranonce: %v", s, tc.applied)
				}
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareSetVersionMask pins BIP310 mining.set_version_mask: cgminer
// (parse_vmask) and ESP-Miner roll within the new mask from the next job,
// narrower or wider; Braiins OS ignores it.
func TestFirmwareSetVersionMask(t *testing.T) {
	const narrow, wide = 0x00006000, 0x1fffe000
	for _, tc := range []struct {
		fw         string
		from, to   uint32
		followsNew bool
	}{
		{FirmwareCgminer, wide, narrow, true},
		{FirmwareCgminer, narrow, wide, true},
		{FirmwareESPMiner, wide, narrow, true},
		{FirmwareESPMiner, narrow, wide, true},
		{FirmwareBraiins, wide, narrow, false},
		{"", wide, narrow, true},
	} {
		t.Run(fmt.Sprintf("%s/%08x-%08x", fwName(tc.fw), tc.from, tc.to), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, func(cfg *FleetConfig) { cfg.VersionRolling = true })
			c.rollMask = tc.from
			c.handshake()
			c.setDifficulty(fwDiff)
			c.notify(fwNotify("a", 1, true))
			c.sharesUntil("a share of a", func(s fakeShare) bool { return s.job == "a" })
			c.send(fmt.Sprintf(`{"id":null,"method":"mining.set_version_mask","params":["%08x"]}`, tc.to))
			c.notify(fwNotify("b", 1, true))
			c.barrier()
			var union uint32
			for range 30 {
				s := c.sharesUntil("a share of b", func(s fakeShare) bool { return s.job == "b" && s.barriers == 1 })
				mask := tc.from
				if tc.followsNew {
					mask = tc.to
				}
				if h := c.hash(s, c.en1, mask); !s.version || s.bits&^mask != 0 || !stratum.DifficultyTarget(fwDiff).Meets(&h) {
					t.Fatalf("share %+v outside mask %08x", s, mask)
				}
				union |= s.bits
			}
			for _, s := range c.shares {
				if s.job == "a" && s.bits&^tc.from != 0 {
					t.Fatalf("share %+v of the first job outside %08x", s, tc.from)
				}
			}
			want, other := tc.from, tc.to
			if tc.followsNew {
				want, other = tc.to, tc.from
			}
			if want&^other != 0 && union&^other == 0 {
				t.Fatalf("30 shares rolled only bits %08x: the mask %08x was not used", union, want)
			}
			closeFleet(t, f, c)
		})
	}
}

// TestFirmwareReconnect pins where client.reconnect leads: ESP-Miner
// redials its configured pool whatever it is told, cgminer refuses another
// domain, cpuminer ignores a reconnect without host and port.
func TestFirmwareReconnect(t *testing.T) {
	other := newFakePool(t)
	_, port, _ := net.SplitHostPort(other.addr())
	pn, _ := strconv.Atoi(port)
	for _, tc := range []struct {
		fw, host string
		port     int
		to       string // "other", "same" or "" (stays connected)
	}{
		{"", "127.0.0.1", pn, "other"},
		{FirmwareESPMiner, "127.0.0.1", pn, "same"},
		{FirmwareCgminer, "127.0.0.1", pn, "other"},
		{FirmwareCgminer, "127.0.0.2", pn, ""},
		{FirmwareCPUMiner, "", pn, ""},
		{FirmwareCPUMiner, "127.0.0.1", pn, "other"},
	} {
		t.Run(fmt.Sprintf("%s/%s", fwName(tc.fw), tc.host), func(t *testing.T) {
			p := newFakePool(t)
			f, c, _ := startFwFleet(t, p, tc.fw, func(cfg *FleetConfig) { cfg.Idle = true })
			c.handshake()
			host := "null"
			if tc.host != "" {
				host = `"` + tc.host + `"`
			}
			c.send(fmt.Sprintf(`{"id":null,"method":"client.reconnect","params":[%s,%d,0]}`, host, tc.port))
			switch tc.to {
			case "":
				c.barrier()
				if s := f.Stats(); s.Reconnects != 0 {
					t.Fatalf("reconnected: %s", s)
				}
			case "same":
				p.accept().handshake()
			case "other":
				other.accept().handshake()
			}
			closeFleet(t, f, c)
		})
	}
}
